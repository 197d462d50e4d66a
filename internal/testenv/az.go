package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testkit"
)

// AZLogin is how an AZ signs in.
type AZLogin int

const (
	// AZServicePrincipal: az login --service-principal as the administrator, the secret read
	// from standard input (--password=@-), never on a command line.
	AZServicePrincipal AZLogin = iota
	// AZIdentity: az login --identity through the daemon's managed-identity endpoint
	// (MSI_ENDPOINT, set for every command of this AZ). The daemon must have been started
	// with --msi-endpoint, which the endpoint is off without.
	AZIdentity
	// AZNoLogin: the cloud is registered and selected, nobody is signed in.
	AZNoLogin
)

// AZOptions tune NewAZ.
type AZOptions struct {
	Login AZLogin
	// Timeout bounds each az command; default two minutes.
	Timeout time.Duration
}

// AZ is Microsoft's az CLI pointed at a test daemon: its own AZURE_CONFIG_DIR, telemetry and
// survey prompts off, REQUESTS_CA_BUNDLE holding the system's CAs and pgflex's, the daemon
// registered as the cloud "pgflex" from `pgflex cloud show-config`, and (by default) signed in.
type AZ struct {
	t testing.TB
	d *Daemon
	// Dir is AZURE_CONFIG_DIR. az keeps its login there, the service principal's secret
	// included (in plaintext, as az does on Linux); it is a test's temporary directory.
	Dir     string
	env     []string
	timeout time.Duration
}

// AZResult is one az run.
type AZResult struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

// String is the command line and what it printed, for failure messages.
func (r AZResult) String() string {
	return fmt.Sprintf("az %s\nexit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// JSON decodes stdout, failing t if the command failed or printed no JSON.
func (r AZResult) JSON(t testing.TB) any {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("az failed:\n%s", r)
	}
	var v any
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("az printed no JSON (%v):\n%s", err, r)
	}
	return v
}

// Object decodes stdout as one JSON object.
func (r AZResult) Object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.JSON(t).(map[string]any)
	if !ok {
		t.Fatalf("az printed no JSON object:\n%s", r)
	}
	return m
}

// NewAZ prepares az for d. It skips (fails under CI) without az or *.localhost resolution.
func NewAZ(t testing.TB, d *Daemon, opts AZOptions) *AZ {
	t.Helper()
	testkit.Require(t, testkit.AZ)
	a := &AZ{t: t, d: d, Dir: t.TempDir(), timeout: opts.Timeout}
	if a.timeout == 0 {
		a.timeout = 2 * time.Minute
	}
	p := d.Profile()
	system, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("system CA bundle: %v", err)
	}
	bundle := filepath.Join(a.Dir, "ca-bundle.pem")
	if err := os.WriteFile(bundle, append(append(system, '\n'), p.CACertificate...), 0o644); err != nil {
		t.Fatal(err)
	}
	a.env = azEnv(os.Environ(), map[string]string{
		"AZURE_CONFIG_DIR":                    a.Dir,
		"AZURE_CORE_COLLECT_TELEMETRY":        "false", // no telemetry upload process left behind
		"AZURE_CORE_SURVEY_MESSAGE":           "false",
		"AZURE_CORE_NO_COLOR":                 "true",
		"AZURE_CORE_OUTPUT":                   "json",
		"AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
		"REQUESTS_CA_BUNDLE":                  bundle,
		"NO_PROXY":                            "localhost,127.0.0.1,.localhost",
		"no_proxy":                            "localhost,127.0.0.1,.localhost",
	})
	if opts.Login == AZIdentity {
		if !slices.Contains(d.Args, "--msi-endpoint") {
			t.Fatal("testenv.AZIdentity needs a daemon started with --msi-endpoint (testenv.Options.Args)")
		}
		a.env = append(a.env, "MSI_ENDPOINT="+p.Endpoint+"/msi/token")
	}
	t.Cleanup(a.checkNoneLeft)

	cfg := d.CLI(context.Background(), t.TempDir(), "", "cloud", "show-config")
	if cfg.Code != 0 {
		t.Fatalf("pgflex cloud show-config: exit %d\n%s", cfg.Code, cfg.Stderr)
	}
	cloudFile := filepath.Join(a.Dir, "pgflex-cloud.json")
	if err := os.WriteFile(cloudFile, []byte(cfg.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Must(t, "cloud", "register", "-n", "pgflex", "--cloud-config", "@"+cloudFile)
	a.Must(t, "cloud", "set", "-n", "pgflex")
	switch opts.Login {
	case AZServicePrincipal:
		a.MustStdin(t, p.ClientSecret, "login", "--service-principal", "-u", p.ClientID,
			// "--password=@-", not "-p @-": az puts the secret in place of "@-" before parsing, and
			// a secret that starts with "-" would then read as an option.
			"--password=@-", "--tenant", p.TenantID)
	case AZIdentity:
		a.Must(t, "login", "--identity")
	}
	return a
}

// azEnv is base without the variables that would point az elsewhere or sign it in otherwise,
// plus set.
func azEnv(base []string, set map[string]string) []string {
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AZURE_"), strings.HasPrefix(k, "MSI_"), strings.HasPrefix(k, "IDENTITY_"),
			strings.HasPrefix(k, "PGFLEX_"), k == "REQUESTS_CA_BUNDLE", k == "CURL_CA_BUNDLE", k == "ARM_CLOUD_METADATA_URL",
			k == "ACC_CLOUD", k == "APPSETTING_WEBSITE_SITE_NAME", strings.EqualFold(k, "no_proxy"):
			continue
		}
		out = append(out, kv)
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// Run runs az with args and returns what it did, whatever its exit code. t (the running test
// or subtest) fails only if az cannot be run or does not finish.
func (a *AZ) Run(t testing.TB, args ...string) AZResult {
	t.Helper()
	return a.run(t, "", args)
}

// RunStdin runs az with args and stdin.
func (a *AZ) RunStdin(t testing.TB, stdin string, args ...string) AZResult {
	t.Helper()
	return a.run(t, stdin, args)
}

// Must runs az and fails t, with the command line and output, unless it exits 0.
func (a *AZ) Must(t testing.TB, args ...string) AZResult {
	t.Helper()
	r := a.run(t, "", args)
	if r.Code != 0 {
		t.Fatalf("az failed:\n%s", r)
	}
	return r
}

// MustStdin is Must with stdin.
func (a *AZ) MustStdin(t testing.TB, stdin string, args ...string) AZResult {
	t.Helper()
	r := a.run(t, stdin, args)
	if r.Code != 0 {
		t.Fatalf("az failed:\n%s", r)
	}
	return r
}

func (a *AZ) run(t testing.TB, stdin string, args []string) AZResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "az", args...)
	cmd.Env = a.env
	cmd.Dir = a.Dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := AZResult{Args: args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("az did not finish within %s:\n%s", a.timeout, r)
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run az %v: %v", args, err)
	}
	return r
}

// Leftovers lists the processes still running with this AZ's configuration directory in
// their environment: az's own children (a telemetry upload, an update check) would be there.
func (a *AZ) Leftovers() []int {
	needle := []byte("AZURE_CONFIG_DIR=" + a.Dir + "\x00")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, dir := range dirs {
		env, err := os.ReadFile(dir + "/environ")
		if err != nil || !bytes.Contains(env, needle) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(dir)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (a *AZ) checkNoneLeft() {
	if pids := a.Leftovers(); len(pids) > 0 {
		a.t.Errorf("az left processes running: %v", pids)
	}
}
