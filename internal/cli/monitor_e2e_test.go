package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestActivityLogShowsKeyMonitorEvents: the key monitor follows a rotated versionless key, and
// `monitor activity-log list` shows that event with its cause, scoped by group, resource and
// time as az scopes it.
func TestActivityLogShowsKeyMonitorEvents(t *testing.T) {
	requireServers(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t), "--key-check-interval", "300ms"}})
	c := &pgCLI{t: t, d: d, cfg: t.TempDir()}
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
	c.ok("group", "create", "-n", "othergroup", "-l", "eastus", "-o", "none")
	c.ok("keyvault", "create", "-g", "rg", "-n", "alvault", "-l", "eastus", "--enable-purge-protection", "true", "-o", "none")
	kid := c.tsv("keyvault", "key", "create", "--vault-name", "alvault", "-n", "key", "--query", "key.kid")
	principal := c.tsv("identity", "create", "-g", "rg", "-n", "alid", "-l", "eastus", "--query", "principalId")
	c.ok("keyvault", "set-policy", "-g", "rg", "-n", "alvault", "--object-id", principal, "--key-permissions", "wrapKey", "unwrapKey", "get", "list", "-o", "none")
	versionless := kid[:strings.LastIndex(kid, "/")]
	serverID := c.tsv("postgres", "flexible-server", "create", "-g", "rg", "-n", "al-one", "--identity", "alid", "--key", versionless,
		"--tier", "Burstable", "--sku-name", "Standard_B1ms", "--storage-size", "32", "-u", "pgadmin", "--query", "id")

	list := []string{"monitor", "activity-log", "list"}
	updated := "[?operationName.value=='Microsoft.DBforPostgreSQL/flexibleServers/keyVersionUpdated/action']"
	newKid := c.tsv("keyvault", "key", "rotate", "--vault-name", "alvault", "-n", "key", "--query", "key.kid")
	var event map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var events []map[string]any
		c.json(&events, append(list, "-g", "rg", "--query", updated)...)
		if len(events) > 0 {
			event = events[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no keyVersionUpdated event 30 s after the rotation to %s", newKid)
		}
	}
	props, _ := event["properties"].(map[string]any)
	if !strings.EqualFold(event["resourceId"].(string), serverID) || event["resourceGroupName"] != "rg" || event["level"] != "Informational" ||
		event["caller"] != "pgflex" || event["status"].(map[string]any)["value"] != "Succeeded" ||
		props["keyId"] != newKid || props["previousKeyId"] != kid ||
		!strings.Contains(event["description"].(string), "Automatic key version update") || !strings.Contains(event["description"].(string), newKid) {
		t.Fatalf("event = %v", event)
	}

	// The cause is readable with --query, and each scope finds it or leaves it out.
	count := func(args ...string) string {
		t.Helper()
		return c.tsv(append(append(list, args...), "--query", updated+" | length(@)")...)
	}
	cause := c.tsv(append(list, "--resource-id", serverID, "--query", updated+" | [0].properties.keyId")...)
	if cause != newKid {
		t.Errorf("--resource-id: keyId %q, want %s", cause, newKid)
	}
	ts, err := time.Parse(time.RFC3339Nano, event["eventTimestamp"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "1"},
		{[]string{"-g", "othergroup"}, "0"},
		{[]string{"--resource-id", strings.Replace(serverID, "/al-one", "/al-two", 1)}, "0"},
		{[]string{"-g", "rg", "--start-time", ts.Add(time.Second).Format(time.RFC3339)}, "0"},
		{[]string{"-g", "rg", "--start-time", ts.Add(-time.Minute).Format(time.RFC3339), "--offset", "2m"}, "1"},
		{[]string{"-g", "rg", "--end-time", ts.Add(-time.Second).Format(time.RFC3339)}, "0"},
		{[]string{"-g", "rg", "--status", "Failed"}, "0"},
		{[]string{"-g", "rg", "--caller", "someone@example.com"}, "0"},
	} {
		if got := count(tc.args...); got != tc.want {
			t.Errorf("%v: %s keyVersionUpdated events, want %s", tc.args, got, tc.want)
		}
	}

	// --select cuts each event to the named properties; -o table shows az's columns.
	var selected []map[string]any
	c.json(&selected, append(list, "-g", "rg", "--select", "operationName", "properties", "--max-events", "1")...)
	if len(selected) != 1 || len(selected[0]) != 2 || selected[0]["properties"] == nil {
		t.Errorf("--select: %v", selected)
	}
	table := c.ok(append(list, "--resource-id", serverID, "-o", "table")...).Stdout
	if !strings.HasPrefix(table, "Caller") || !strings.Contains(table, "EventTimestamp") || !strings.Contains(table, "Automatic key version update") {
		t.Errorf("table:\n%s", table)
	}
	var raw []json.RawMessage
	c.json(&raw, append(list, "--max-events", "0")...)
	if len(raw) != 0 {
		t.Errorf("--max-events 0: %d events", len(raw))
	}
}
