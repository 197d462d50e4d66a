package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestGroupFlowsThroughCLI drives a real daemon with the pgflex binary, as a user would.
func TestGroupFlowsThroughCLI(t *testing.T) {
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{})
	cfg := t.TempDir()
	run := func(stdin string, args ...string) testenv.CLIResult {
		t.Helper()
		return d.CLI(ctx, cfg, stdin, args...)
	}

	if r := run("", "login", "--profile", d.ProfilePath()); r.Code != 0 {
		t.Fatalf("login: %d %s", r.Code, r.Stderr)
	}
	r := run("", "account", "show")
	var acct map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &acct); err != nil || acct["id"] != d.Profile().SubscriptionID || acct["isDefault"] != true {
		t.Fatalf("account show: %v %s %s", err, r.Stdout, r.Stderr)
	}

	r = run("", "group", "create", "-n", "cli-rg", "-l", "eastus", "--tags", "env=test", "team=db")
	if r.Code != 0 {
		t.Fatalf("group create: %d %s", r.Code, r.Stderr)
	}
	var g map[string]any
	json.Unmarshal([]byte(r.Stdout), &g)
	if g["name"] != "cli-rg" || g["location"] != "eastus" || g["tags"].(map[string]any)["team"] != "db" {
		t.Fatalf("group create output: %s", r.Stdout)
	}
	if r := run("", "group", "show", "-n", "cli-rg", "--query", "name", "-o", "tsv"); r.Code != 0 || r.Stdout != "cli-rg\n" {
		t.Fatalf("--query name -o tsv = %q (%d %s)", r.Stdout, r.Code, r.Stderr)
	}
	run("", "group", "create", "-n", "cli-rg2", "-l", "westus")
	r = run("", "group", "list", "-o", "table")
	lines := strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n")
	if r.Code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "Name") || !strings.Contains(lines[0], "Location") ||
		!strings.HasPrefix(lines[1], "----") || !strings.Contains(r.Stdout, "cli-rg2") || !strings.Contains(r.Stdout, "westus") {
		t.Fatalf("group list -o table:\n%s", r.Stdout)
	}
	if r := run("", "group", "list", "--query", "[?location=='westus'].name", "-o", "tsv"); r.Stdout != "cli-rg2\n" {
		t.Fatalf("filtered list = %q", r.Stdout)
	}
	if r := run("", "group", "exists", "-n", "cli-rg"); strings.TrimSpace(r.Stdout) != "true" {
		t.Fatalf("exists = %q", r.Stdout)
	}

	// Errors: the service's code and message, az's exit codes, nothing changed.
	r = run("", "group", "create", "-n", "cli-rg", "-l", "westus")
	if r.Code != 1 || !strings.Contains(r.Stderr, "(InvalidResourceGroupLocation)") || !strings.Contains(r.Stderr, "Code: InvalidResourceGroupLocation") {
		t.Fatalf("conflicting create: %d %s", r.Code, r.Stderr)
	}
	r = run("", "group", "create", "-n", "bad.", "-l", "eastus")
	if r.Code != 1 || !strings.Contains(r.Stderr, "InvalidResourceGroup") {
		t.Fatalf("bad name: %d %s", r.Code, r.Stderr)
	}
	r = run("", "group", "show", "-n", "nope")
	if r.Code != 3 || !strings.Contains(r.Stderr, "ResourceGroupNotFound") {
		t.Fatalf("missing group: %d %s", r.Code, r.Stderr)
	}
	if r := run("", "group", "create", "-l", "eastus"); r.Code != 2 {
		t.Fatalf("missing --name: %d %s", r.Code, r.Stderr)
	}
	if r := run("", "group", "list", "--bogus-flag"); r.Code != 2 {
		t.Fatalf("unknown flag: %d %s", r.Code, r.Stderr)
	}
	if r := run("", "group", "show", "-n", "cli-rg", "--query", "location", "-o", "tsv"); r.Stdout != "eastus\n" {
		t.Fatalf("group changed by failed create: %q", r.Stdout)
	}

	// Defaults from configure, and delete with confirmation.
	if r := run("", "configure", "--defaults", "group=cli-rg2"); r.Code != 0 {
		t.Fatalf("configure: %s", r.Stderr)
	}
	if r := run("", "group", "show", "--query", "name", "-o", "tsv"); r.Stdout != "cli-rg2\n" {
		t.Fatalf("default group not used: %q %s", r.Stdout, r.Stderr)
	}
	if r := run("n\n", "group", "delete", "-n", "cli-rg2"); r.Code == 0 {
		t.Fatalf("delete without --yes and no terminal must refuse: %s", r.Stdout)
	}
	if r := run("", "group", "delete", "-n", "cli-rg2", "--yes"); r.Code != 0 {
		t.Fatalf("delete: %d %s", r.Code, r.Stderr)
	}
	if r := run("", "group", "exists", "-n", "cli-rg2"); strings.TrimSpace(r.Stdout) != "false" {
		t.Fatalf("exists after delete = %q", r.Stdout)
	}
	if r := run("", "group", "list", "-o", "none"); r.Stdout != "" || r.Code != 0 {
		t.Fatalf("-o none printed %q", r.Stdout)
	}
}
