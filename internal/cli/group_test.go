package cli

import (
	"fmt"
	"strings"
	"testing"
)

// withProfile points the CLI at the fake through PGFLEX_PROFILE.
func withProfile(t *testing.T, f *fakeDaemon) runOpts {
	t.Helper()
	return runOpts{configDir: t.TempDir(), env: map[string]string{"PGFLEX_PROFILE": f.writeProfile(t.TempDir())}}
}

func TestGroupCreate(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "group", "create", "-n", "rg1", "-l", "East US", "--tags", "env=dev", "team=db", "flag")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := `{
  "id": "/subscriptions/` + f.sub + `/resourceGroups/rg1",
  "location": "eastus",
  "managedBy": null,
  "name": "rg1",
  "properties": {
    "provisioningState": "Succeeded"
  },
  "tags": {
    "env": "dev",
    "flag": "",
    "team": "db"
  },
  "type": "Microsoft.Resources/resourceGroups"
}
`
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	// -g is the same argument as -n; the location comes from the configured default.
	runCLI(t, o, "configure", "--defaults", "location=westus")
	out, _, code = runCLI(t, o, "group", "create", "-g", "rg2", "--query", "{n:name, l:location}", "-o", "tsv")
	if code != 0 || out != "rg2\twestus\n" {
		t.Errorf("create with defaults: exit %d, %q", code, out)
	}
}

func TestGroupShowAndDefaults(t *testing.T) {
	f := newFakeDaemon(t)
	f.addGroup("rg1", "eastus")
	o := withProfile(t, f)
	out, _, code := runCLI(t, o, "group", "show", "--resource-group", "rg1", "-o", "table")
	if code != 0 || out != "Location    Name\n----------  ------\neastus      rg1\n" {
		t.Errorf("show: exit %d, %q", code, out)
	}
	_, errOut, code := runCLI(t, o, "group", "show", "-n", "nope")
	want := "ERROR: (ResourceGroupNotFound) Resource group 'nope' could not be found.\nCode: ResourceGroupNotFound\nMessage: Resource group 'nope' could not be found.\n"
	if code != exitNotFound || errOut != want {
		t.Errorf("missing group: exit %d, stderr %q", code, errOut)
	}
	// The configured default group and its environment override.
	runCLI(t, o, "configure", "--defaults", "group=rg1")
	if out, _, code := runCLI(t, o, "group", "show", "--query", "name", "-o", "tsv"); code != 0 || out != "rg1\n" {
		t.Errorf("show with default group: exit %d, %q", code, out)
	}
	o.env["PGFLEX_DEFAULTS_GROUP"] = "nope"
	if _, _, code := runCLI(t, o, "group", "show"); code != exitNotFound {
		t.Errorf("environment default not used: exit %d", code)
	}
}

func TestGroupListPagesAndFormats(t *testing.T) {
	f := newFakeDaemon(t)
	for i, loc := range []string{"eastus", "westus", "eastus", "northeurope", "eastus"} {
		f.addGroup(fmt.Sprintf("rg%d", i), loc)
	}
	o := withProfile(t, f)
	out, _, code := runCLI(t, o, "group", "list", "-o", "table")
	want := "Name    Location     Status\n" +
		"------  -----------  ---------\n" +
		"rg0     eastus       Succeeded\n" +
		"rg1     westus       Succeeded\n" +
		"rg2     eastus       Succeeded\n" +
		"rg3     northeurope  Succeeded\n" +
		"rg4     eastus       Succeeded\n"
	if code != 0 || out != want {
		t.Errorf("table: exit %d\n%s\nwant\n%s", code, out, want)
	}
	out, _, _ = runCLI(t, o, "group", "list", "--query", "[?location=='eastus'].name", "-o", "tsv")
	if out != "rg0\nrg2\nrg4\n" {
		t.Errorf("query: %q", out)
	}
	out, _, _ = runCLI(t, o, "group", "list", "--query", "[].{Group:name, Region:location} | [:2]", "-o", "table")
	if out != "Group    Region\n-------  --------\nrg0      eastus\nrg1      westus\n" {
		t.Errorf("query table: %q", out)
	}
	if out, _, _ := runCLI(t, o, "group", "list", "-o", "none"); out != "" {
		t.Errorf("none: %q", out)
	}
}

func TestGroupListTagFilter(t *testing.T) {
	f := newFakeDaemon(t)
	o := withProfile(t, f)
	runCLI(t, o, "group", "create", "-n", "a", "-l", "eastus", "--tags", "env=dev")
	runCLI(t, o, "group", "create", "-n", "b", "-l", "eastus", "--tags", "env=prod")
	runCLI(t, o, "group", "create", "-n", "c", "-l", "eastus")
	for tag, want := range map[string]string{"env": "a\nb\n", "ENV=prod": "b\n", "env=none": "", "other": ""} {
		out, _, code := runCLI(t, o, "group", "list", "--tag", tag, "--query", "[].name", "-o", "tsv")
		if code != 0 || out != want {
			t.Errorf("--tag %s: %q, want %q", tag, out, want)
		}
	}
}

func TestGroupExists(t *testing.T) {
	f := newFakeDaemon(t)
	f.addGroup("rg1", "eastus")
	o := withProfile(t, f)
	for name, want := range map[string]string{"rg1": "true\n", "RG1": "true\n", "nope": "false\n"} {
		out, errOut, code := runCLI(t, o, "group", "exists", "-n", name)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("exists %s: exit %d, %q, %q", name, code, out, errOut)
		}
	}
}

func TestGroupDeleteConfirmation(t *testing.T) {
	f := newFakeDaemon(t)
	f.addGroup("rg1", "eastus")
	o := withProfile(t, f)
	const prompt = "Are you sure you want to perform this operation? (y/n): "

	// No terminal on stdin: az warns and cancels.
	out, errOut, code := runCLI(t, o, "group", "delete", "-n", "rg1")
	if code != exitFailure || out != "" ||
		errOut != "WARNING: Unable to prompt for confirmation as no tty available. Use --yes.\nERROR: Operation cancelled.\n" {
		t.Errorf("no tty: exit %d, %q, %q", code, out, errOut)
	}
	// A terminal: the question on stdout, asked again until y or n.
	tty := o
	tty.terminal, tty.stdin = true, "maybe\nn\n"
	out, errOut, code = runCLI(t, tty, "group", "delete", "-n", "rg1")
	if code != exitFailure || out != prompt+prompt || !strings.Contains(errOut, "Operation cancelled.") {
		t.Errorf("answer n: exit %d, %q, %q", code, out, errOut)
	}
	if f.group("rg1") == nil {
		t.Fatal("group deleted without confirmation")
	}
	tty.stdin = "y\n"
	out, errOut, code = runCLI(t, tty, "group", "delete", "-n", "rg1")
	if code != 0 || out != prompt {
		t.Errorf("answer y: exit %d, %q, %q", code, out, errOut)
	}
	// The spinner ran on the terminal while the deletion was polled, and was erased.
	if !strings.Contains(errOut, " - Running ..\r") || !strings.HasSuffix(errOut, "\r\x1b[K") {
		t.Errorf("progress on stderr: %q", errOut)
	}
	if f.group("rg1") != nil {
		t.Error("group still exists after delete")
	}
}

func TestGroupDeleteNoWait(t *testing.T) {
	f := newFakeDaemon(t)
	f.addGroup("rg1", "eastus")
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "group", "delete", "-n", "rg1", "--yes", "--no-wait")
	if code != 0 || out != "" || errOut != "" {
		t.Errorf("exit %d, %q, %q", code, out, errOut)
	}
	for _, r := range f.seen() {
		if strings.Contains(r, "operationResults") {
			t.Errorf("--no-wait polled the operation: %s", r)
		}
	}
	if f.group("rg1") == nil {
		t.Error("the fake completed the deletion without being polled; the test proves nothing")
	}
	_, errOut, code = runCLI(t, o, "group", "delete", "-n", "missing", "-y")
	if code != exitNotFound || !strings.HasPrefix(errOut, "ERROR: (ResourceGroupNotFound)") {
		t.Errorf("delete missing: exit %d, %q", code, errOut)
	}
}
