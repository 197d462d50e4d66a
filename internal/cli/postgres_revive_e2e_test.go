package cli_test

import (
	"strings"
	"testing"
)

// TestPostgresReviveDroppedThroughCLI: a deleted server comes back under a new name, by its
// resource id, with the rows it had when it was deleted (the last ones written just before the
// delete); reviving a server that never existed, or one that is not deleted, is refused and
// creates nothing.
func TestPostgresReviveDroppedThroughCLI(t *testing.T) {
	e := newBackupE2E(t)
	password := e.create("rv-src")
	e.exec("rv-src", password, "create table t (v text); insert into t values ('kept')")
	srcID := e.tsv(e.pg("show", "-g", "rg", "-n", "rv-src", "--query", "id")...)

	// A live server is not revived: restore is for that.
	e.fails(1, "ERROR: (InvalidParameterValue)",
		e.pg("revive-dropped", "-g", "rg", "-n", "rv-none-1", "--source-server", srcID, "-l", "eastus")...)
	e.gone("rv-none-1")

	// Revive's point in time (the CLI's now, in whole seconds) must be after the write.
	e.wholeSecondPast(e.serverClock("rv-src", password))
	if r := e.ok(e.pg("delete", "-g", "rg", "-n", "rv-src", "--yes")...); r.Stdout != "" {
		t.Errorf("delete printed %q", r.Stdout)
	}
	e.gone("rv-src")

	var out map[string]any
	e.json(&out, e.pg("revive-dropped", "-g", "rg", "-n", "rv-revived", "--source-server", srcID, "-l", "eastus")...)
	de, _ := out["dataEncryption"].(map[string]any)
	if out["name"] != "rv-revived" || out["state"] != "Ready" || out["location"] != "eastus" || out["resourceGroup"] != "rg" ||
		de["type"] != "SystemManaged" || !strings.EqualFold(asString(out["sourceServerResourceId"]), srcID) {
		t.Fatalf("revive-dropped printed %v", out)
	}
	if got := e.values("rv-revived", password, "select v from t"); strings.Join(got, ",") != "kept" {
		t.Fatalf("revived rows = %v, want the row written before the delete", got)
	}

	// A server that never existed: the service's ResourceNotFound, exit 3, nothing created.
	unknown := strings.TrimSuffix(srcID, "rv-src") + "rv-never"
	e.fails(3, "ERROR: (ResourceNotFound)",
		e.pg("revive-dropped", "-g", "rg", "-n", "rv-none-2", "--source-server", unknown, "-l", "eastus")...)
	e.gone("rv-none-2")
	// The revived server is live, so it is not revived either.
	e.fails(1, "ERROR: (InvalidParameterValue)",
		e.pg("revive-dropped", "-g", "rg", "-n", "rv-none-3", "--source-server", "rv-revived", "-l", "eastus")...)
	e.gone("rv-none-3")
}
