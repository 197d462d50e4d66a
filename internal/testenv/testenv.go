// Package testenv starts real pgflex daemons for tests: the pgflex binary (built once per test
// process, or taken from $PGFLEX_BIN), a fresh data directory, a free loopback port, the profile
// the daemon writes, and helpers to drive it through Azure's SDK and through the CLI.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/profile"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a pgflex binary built from this source tree.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("PGFLEX_BIN"); p != "" {
			binPath = p
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "pgflex-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pgflex")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/pgflex")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Daemon is a pgflex serve process under test.
type Daemon struct {
	t       testing.TB
	Bin     string
	DataDir string
	Addr    string
	Args    []string
	cmd     *exec.Cmd
	// portBase claims a range of server ports: the daemon hands out portBase+1 to portBase+199,
	// and claim holds portBase itself open meanwhile (see claimPortRange).
	portBase int
	claim    net.Listener
	// pgAddr is the PostgreSQL endpoint's address: a free loopback port, never 5432 (other
	// test daemons and other engineers' servers run on this machine).
	pgAddr string
	done   chan struct{}
	logs   *lockedBuffer
	// readyTimeout bounds start-up.
	readyTimeout time.Duration
}

// Options tune a test daemon.
type Options struct {
	DataDir string   // default: a new temporary directory
	Args    []string // extra `pgflex serve` flags
	// ReadyTimeout bounds the daemon's start-up; default one minute.
	ReadyTimeout time.Duration
}

// Start starts `pgflex serve` and waits until it answers.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	d := &Daemon{t: t, Bin: Binary(t), DataDir: opts.DataDir, Args: opts.Args, logs: &lockedBuffer{}, readyTimeout: opts.ReadyTimeout}
	if d.readyTimeout == 0 {
		d.readyTimeout = time.Minute
	}
	if d.DataDir == "" {
		// The PostgreSQL user traverses to the backup repositories in the data directory.
		tmp := t.TempDir()
		for _, dir := range []string{filepath.Dir(tmp), tmp} {
			if err := os.Chmod(dir, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		d.DataDir = filepath.Join(tmp, "data")
	}
	// Registered before anything starts: a daemon that fails during start-up (or a test that
	// fails while it starts) is stopped, and its port range, servers and accounts released.
	t.Cleanup(func() {
		d.Stop()
		if d.claim != nil {
			d.claim.Close()
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Logs())
		}
		// The servers outlive the daemon: stop them before their accounts go, under the
		// runtime directory the test gave or else the daemon's default one.
		runtimeDir := filepath.Join("/run/pgflex", daemon.InstallationID(d.DataDir))
		for i, a := range d.Args {
			if a == "--runtime-dir" && i+1 < len(d.Args) {
				runtimeDir = d.Args[i+1]
			}
		}
		StopDataPlane(t, runtimeDir)
		RemoveAccounts(t, d.DataDir)
	})
	d.Addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	d.pgAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	d.portBase, d.claim = claimPortRange(t)
	d.start()
	return d
}

// claimPortRange picks a range of server ports for one test daemon. Test daemons run side by
// side, in this process and in the other packages' test processes, so a random pick alone
// would now and then give two daemons the same ports: each range's first port is held open as
// a claim that every process sees, and a range whose first port is taken is not used.
func claimPortRange(t testing.TB) (int, net.Listener) {
	t.Helper()
	for range 100 {
		// Below Linux's ephemeral ports (32768 and up): a server's port must not be taken by
		// the source port of some connection between its allocation and PostgreSQL's bind
		// (seen as "could not bind IPv4 address: Address already in use" under load).
		base := 20000 + 200*rand.IntN(60)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base)); err == nil {
			return base, l
		}
	}
	t.Fatal("no free range of server ports")
	return 0, nil
}

func (d *Daemon) start() {
	d.t.Helper()
	// d.Args come last: a test's own --postgres-addr wins.
	args := append([]string{"serve", "--data-dir", d.DataDir, "--addr", d.Addr, "--postgres-addr", d.pgAddr,
		"--server-port-min", strconv.Itoa(d.portBase + 1), "--server-port-max", strconv.Itoa(d.portBase + 199)}, d.Args...)
	d.cmd = exec.Command(d.Bin, args...)
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start daemon: %v", err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.done)
	d.waitReady()
}

func (d *Daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(d.readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			d.t.Fatalf("daemon exited during start-up:\n%s", d.Logs())
		default:
		}
		if p, err := profile.Load(filepath.Join(d.DataDir, "profile.json")); err == nil && p.Endpoint == "https://"+d.Addr {
			if hc, err := azcred.HTTPClient([]byte(p.CACertificate)); err == nil {
				if resp, err := hc.Get(p.Endpoint + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("daemon did not become ready within %s:\n%s", d.readyTimeout, d.Logs())
}

// Logs returns what the daemon printed so far.
func (d *Daemon) Logs() string { return d.logs.String() }

// Profile reads the profile the daemon wrote.
func (d *Daemon) Profile() *profile.Profile {
	d.t.Helper()
	p, err := profile.Load(d.ProfilePath())
	if err != nil {
		d.t.Fatal(err)
	}
	return p
}

// PostgresPort is the port of the daemon's PostgreSQL endpoint, where every server is reached
// by its fullyQualifiedDomainName.
func (d *Daemon) PostgresPort() int {
	d.t.Helper()
	return d.Profile().PostgresPort
}

// ProfilePath is the daemon's profile file.
func (d *Daemon) ProfilePath() string { return filepath.Join(d.DataDir, "profile.json") }

// SDK returns a credential and client options for Azure's SDK clients against this daemon.
func (d *Daemon) SDK() (*azcred.ClientSecretCredential, *arm.ClientOptions) {
	d.t.Helper()
	cred, opts, err := azcred.FromProfile(d.Profile())
	if err != nil {
		d.t.Fatal(err)
	}
	return cred, opts
}

// Stop sends SIGTERM and waits for a graceful exit (SIGKILL after 30 s).
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// Kill sends SIGKILL, as a crash would.
func (d *Daemon) Kill() {
	d.cmd.Process.Kill()
	<-d.done
}

// Restart starts the daemon again on the same data directory and address.
func (d *Daemon) Restart() {
	d.t.Helper()
	d.Stop()
	d.start()
}

// StartAgain starts a stopped or killed daemon again.
func (d *Daemon) StartAgain() {
	d.t.Helper()
	d.start()
}

// Exited reports whether the daemon process has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// CLIResult is one CLI run.
type CLIResult struct {
	Stdout, Stderr string
	Code           int
}

// CLI runs the pgflex CLI against this daemon, with its own config directory.
func (d *Daemon) CLI(ctx context.Context, configDir string, stdin string, args ...string) CLIResult {
	d.t.Helper()
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	cmd.Env = append(os.Environ(), "PGFLEX_PROFILE="+d.ProfilePath(), "PGFLEX_CONFIG_DIR="+configDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = bytes.NewBufferString(stdin)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("run CLI %v: %v", args, err)
	}
	return CLIResult{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
