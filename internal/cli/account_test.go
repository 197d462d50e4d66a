package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccountShow(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "account", "show")
	want := `{
  "environmentName": "AzureCloud",
  "homeTenantId": "` + f.tenant + `",
  "id": "` + f.sub + `",
  "isDefault": true,
  "managedByTenants": [],
  "name": "pgflex",
  "state": "Enabled",
  "tenantId": "` + f.tenant + `",
  "user": {
    "name": "pgflex-admin",
    "type": "servicePrincipal"
  }
}
`
	if code != 0 || out != want || errOut != "" {
		t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, want)
	}
	out, _, _ = runCLI(t, o, "account", "show", "-o", "table")
	if !strings.HasPrefix(out, "EnvironmentName    HomeTenantId                          IsDefault    Name    State    TenantId\n") {
		t.Errorf("table: %q", out)
	}
}

func TestAccountSubscriptionSelection(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	for _, args := range [][]string{
		{"account", "show", "--subscription", "PGFLEX"},
		{"account", "show", "--subscription", strings.ToUpper(f.sub)},
		{"account", "show", "-n", "pgflex"},
	} {
		out, errOut, code := runCLI(t, o, append(args, "--query", "id", "-o", "tsv")...)
		if code != 0 || out != f.sub+"\n" {
			t.Errorf("%v: exit %d, %q, %q", args, code, out, errOut)
		}
	}
	_, errOut, code := runCLI(t, o, "group", "list", "--subscription", "nosuch")
	if code != exitFailure || errOut != "ERROR: Subscription 'nosuch' not found. Check the spelling and casing and try again.\n" {
		t.Errorf("unknown subscription: exit %d, %q", code, errOut)
	}
}

func TestAccountList(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	out, _, code := runCLI(t, o, "account", "list", "-o", "table")
	want := "Name    CloudName    SubscriptionId                        TenantId                              State    IsDefault\n" +
		"------  -----------  ------------------------------------  ------------------------------------  -------  -----------\n" +
		"pgflex  AzureCloud   " + f.sub + "  " + f.tenant + "  Enabled  True\n"
	if code != 0 || out != want {
		t.Errorf("table:\n%s\nwant\n%s", out, want)
	}
	out, _, _ = runCLI(t, o, "account", "list", "--all", "--query", "[].[name, state, isDefault]", "-o", "tsv")
	if out != "pgflex\tEnabled\tTrue\nother\tDisabled\tFalse\n" {
		t.Errorf("--all: %q", out)
	}
}

func TestAccountListLocations(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	out, _, code := runCLI(t, o, "account", "list-locations", "-o", "table")
	want := "DisplayName    Name    RegionalDisplayName\n" +
		"-------------  ------  ---------------------\n" +
		"East US        eastus  (US) East US\n" +
		"West US        westus  (US) West US\n"
	if code != 0 || out != want {
		t.Errorf("table:\n%s\nwant\n%s", out, want)
	}
	out, _, _ = runCLI(t, o, "account", "list-locations", "--query", "[?name=='eastus'].metadata.pairedRegion[0].name", "-o", "tsv")
	if out != "westus\n" {
		t.Errorf("paired region: %q", out)
	}
}

func TestLoginLogout(t *testing.T) {
	f := newFakeDaemon(t)
	cfgDir := t.TempDir()
	profile := f.writeProfile(t.TempDir())
	o := runOpts{configDir: cfgDir}

	out, errOut, code := runCLI(t, o, "login", "--profile", profile, "--query", "[].{id:id, default:isDefault}", "-o", "tsv")
	if code != 0 || out != f.sub+"\tTrue\n" || errOut != "" {
		t.Fatalf("login: exit %d, %q, %q", code, out, errOut)
	}
	cfg, err := LoadConfig(cfgDir)
	if err != nil || cfg.Profile != profile {
		t.Fatalf("stored profile %q, %v", cfg.Profile, err)
	}
	if out, _, code := runCLI(t, o, "group", "exists", "-n", "x"); code != 0 || out != "false\n" {
		t.Errorf("after login: exit %d, %q", code, out)
	}
	if _, _, code := runCLI(t, o, "logout"); code != 0 {
		t.Errorf("logout: exit %d", code)
	}
	if _, errOut, code := runCLI(t, o, "group", "list"); code != exitFailure || !strings.Contains(errOut, "pgflex login") {
		t.Errorf("after logout: exit %d, %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, o, "logout"); code != exitFailure || errOut != "ERROR: There are no active accounts.\n" {
		t.Errorf("second logout: exit %d, %q", code, errOut)
	}
}

func TestLoginRejectsBadProfiles(t *testing.T) {
	f := newFakeDaemon(t)
	cfgDir := t.TempDir()
	o := runOpts{configDir: cfgDir}
	if _, errOut, code := runCLI(t, o, "login"); code != exitUsage || errOut != "ERROR: the following arguments are required: --profile\n" {
		t.Errorf("no profile: exit %d, %q", code, errOut)
	}
	p := f.profile()
	p.ClientSecret = "wrong"
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeProfileFile(t, bad, p)
	_, errOut, code := runCLI(t, o, "login", "--profile", bad)
	if code != exitFailure || errOut != "ERROR: Authentication failed: AADSTS7000215: Invalid client secret provided.\n" {
		t.Errorf("wrong secret: exit %d, %q", code, errOut)
	}
	p = f.profile()
	p.CACertificate = ""
	writeProfileFile(t, bad, p)
	_, errOut, code = runCLI(t, o, "login", "--profile", bad)
	if code != exitFailure || errOut != "ERROR: The profile file '"+bad+"' is invalid: it lacks caCertificate\n" {
		t.Errorf("incomplete profile: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); !os.IsNotExist(err) {
		t.Error("a failed login stored a configuration")
	}
	// PGFLEX_PROFILE names the profile too.
	o.env = map[string]string{"PGFLEX_PROFILE": f.writeProfile(t.TempDir())}
	if _, errOut, code := runCLI(t, o, "login", "-o", "none"); code != 0 {
		t.Errorf("login from PGFLEX_PROFILE: exit %d, %q", code, errOut)
	}
}

func TestDebugAndVerboseOutput(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	_, errOut, code := runCLI(t, o, "group", "list", "--debug")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, f.secret) || strings.Contains(errOut, "eyJfake") {
		t.Errorf("--debug printed a secret or a token:\n%s", errOut)
	}
	for _, want := range []string{
		"DEBUG: cli.pgflex.client: Request URL: '" + f.srv.URL + "/subscriptions/" + f.sub + "/resourcegroups?api-version=2021-04-01'",
		"DEBUG: cli.pgflex.client:     'Authorization': '*****'",
		"INFO: cli.pgflex: Command ran in ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--debug output lacks %q", want)
		}
	}
	_, errOut, _ = runCLI(t, o, "group", "list", "--verbose")
	if !strings.HasPrefix(errOut, "INFO: Command ran in ") || strings.Contains(errOut, "DEBUG") {
		t.Errorf("--verbose: %q", errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, runOpts{}, "version")
	if code != 0 || out != "{\n  \"extensions\": {},\n  \"pgflex\": \"1.2.3\"\n}\n" {
		t.Errorf("exit %d, %q", code, out)
	}
}

func writeProfileFile(t *testing.T, path string, p *Profile) {
	t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
