package cli_test

import (
	"strings"
	"testing"
)

// TestPostgresParametersThroughCLI: parameter list, show and set as az's, on a real server: a
// dynamic parameter seen by SHOW at once, a static one pending until restart, refusals that
// change nothing, a reset to the default, and values that survive a stop and start.
func TestPostgresParametersThroughCLI(t *testing.T) {
	c := newPgCLI(t)
	pg := func(args ...string) []string { return append([]string{"postgres", "flexible-server"}, args...) }
	c.ok("group", "create", "-n", "rg1", "-l", "eastus")
	password := c.tsv(pg("create", "-g", "rg1", "-n", "pgcli-params", "-u", "pgadmin", "--tier", "Burstable",
		"--sku-name", "Standard_B1ms", "--storage-size", "32", "--query", "password")...)
	sql := func(q string) string {
		t.Helper()
		return c.tsv(pg("execute", "-n", "pgcli-params", "-g", "rg1", "-u", "pgadmin", "-p", password, "-q", q, "--query", "[0].*")...)
	}
	param := func(name, query string) string {
		t.Helper()
		return c.tsv(pg("parameter", "show", "-g", "rg1", "-s", "pgcli-params", "-n", name, "--query", query)...)
	}

	table := c.ok(pg("parameter", "list", "-g", "rg1", "-s", "pgcli-params", "-o", "table")...).Stdout
	head := strings.Fields(strings.SplitN(table, "\n", 2)[0])
	if strings.Join(head, " ") != "Name DataType DefaultValue Source AllowedValues" || !strings.Contains(table, "max_connections") {
		t.Fatalf("list -o table:\n%.600s", table)
	}
	if got := param("max_connections", "[value, defaultValue, dataType, isDynamicConfig]"); got != "50\n50\nInteger\nfalse" {
		t.Fatalf("max_connections: %q", got)
	}

	// Dynamic: at once.
	if got := c.tsv(pg("parameter", "set", "-g", "rg1", "-s", "pgcli-params", "-n", "log_min_duration_statement", "-v", "500",
		"--query", "[value, source]")...); got != "500\nuser-override" {
		t.Fatalf("set log_min_duration_statement: %q", got)
	}
	if got := sql("show log_min_duration_statement"); got != "500ms" {
		t.Fatalf("SHOW log_min_duration_statement = %q", got)
	}

	// Static: pending until restart.
	if got := c.tsv(pg("parameter", "set", "-g", "rg1", "-s", "pgcli-params", "-n", "max_connections", "--value", "60",
		"--query", "isConfigPendingRestart")...); got != "true" {
		t.Fatalf("set max_connections: pending %q", got)
	}
	if got := sql("show max_connections"); got != "50" {
		t.Fatalf("SHOW max_connections = %q before the restart", got)
	}
	c.ok(pg("restart", "-g", "rg1", "-n", "pgcli-params")...)
	if got := sql("show max_connections"); got != "60" {
		t.Fatalf("SHOW max_connections = %q after the restart", got)
	}
	if got := param("max_connections", "isConfigPendingRestart"); got != "false" {
		t.Fatalf("pending after the restart: %q", got)
	}

	// Refusals: az's "(Code) Message", exit 1, nothing changed.
	c.fails(1, "(ParameterIsReadOnly) The configuration 'fsync' is read-only",
		pg("parameter", "set", "-g", "rg1", "-s", "pgcli-params", "-n", "fsync", "-v", "off")...)
	c.fails(1, "(InvalidParameterValue) Invalid value given for parameter max_connections.",
		pg("parameter", "set", "-g", "rg1", "-s", "pgcli-params", "-n", "max_connections", "-v", "1")...)
	// A show of something missing exits 3, as az's show commands do.
	c.fails(3, "(ConfigurationNotExists) The configuration 'nope' does not exist for pgcli-params server version 15.",
		pg("parameter", "show", "-g", "rg1", "-s", "pgcli-params", "-n", "nope")...)
	if got := param("max_connections", "value"); got != "60" {
		t.Fatalf("max_connections after refusals: %q", got)
	}

	// Survives a stop and start.
	c.ok(pg("stop", "-g", "rg1", "-n", "pgcli-params")...)
	c.ok(pg("start", "-g", "rg1", "-n", "pgcli-params")...)
	if got := sql("select current_setting('max_connections') || ' ' || current_setting('log_min_duration_statement')"); got != "60 500ms" {
		t.Fatalf("after stop and start: %q", got)
	}

	// Without --value and --source: back to the default, as az does.
	if got := c.tsv(pg("parameter", "set", "-g", "rg1", "-s", "pgcli-params", "-n", "log_min_duration_statement",
		"--query", "[value, source]")...); got != "-1\nsystem-default" {
		t.Fatalf("reset: %q", got)
	}
	if got := sql("show log_min_duration_statement"); got != "-1" {
		t.Fatalf("SHOW log_min_duration_statement = %q after the reset", got)
	}
}
