package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestPostgresFirewallRuleCommands: az's firewall-rule commands, flags and output against the
// fake provider (the real one: internal/flexserver TestFirewallRules, internal/azcompat).
func TestPostgresFirewallRuleCommands(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)
	fw := func(args ...string) (string, string, int) {
		return runCLI(t, o, append([]string{"postgres", "flexible-server", "firewall-rule"}, args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := fw(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	obj := func(s string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("not a JSON object: %v\n%s", err, s)
		}
		return m
	}

	rule := obj(ok("create", "-g", "rg", "-n", "srv1", "-r", "office", "--start-ip-address", "10.1.0.96", "--end-ip-address", "10.1.0.111"))
	if rule["name"] != "office" || rule["startIpAddress"] != "10.1.0.96" || rule["endIpAddress"] != "10.1.0.111" || rule["resourceGroup"] != "rg" ||
		rule["type"] != "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules" {
		t.Fatalf("create printed %v", rule)
	}
	// One address only: the rule is for it, named as az names it, with az's warning.
	out, errOut, code := fw("create", "-g", "rg", "-n", "srv1", "--start-ip-address", "192.0.2.7")
	named := obj(out)
	if code != 0 || !regexp.MustCompile(`^FirewallIPAddress_\d{4}-\d{1,2}-\d{1,2}_\d{1,2}-\d{1,2}-\d{1,2}$`).MatchString(named["name"].(string)) ||
		named["endIpAddress"] != "192.0.2.7" || !strings.Contains(errOut, "WARNING: Configuring server firewall rule to accept connections from '192.0.2.7'...") {
		t.Fatalf("create without a name: %d %v\n%s", code, named, errOut)
	}
	all := obj(ok("create", "-g", "rg", "-n", "srv1", "--start-ip-address", "0.0.0.0", "--end-ip-address", "255.255.255.255"))
	azure := obj(ok("create", "-g", "rg", "-n", "srv1", "--start-ip-address", "0.0.0.0"))
	if !strings.HasPrefix(all["name"].(string), "AllowAll_") || !strings.HasPrefix(azure["name"].(string), "AllowAllAzureServicesAndResourcesWithinAzureIps_") {
		t.Fatalf("az's names: %v, %v", all["name"], azure["name"])
	}
	if shown := obj(ok("show", "-g", "rg", "-n", "srv1", "-r", "office")); shown["id"] != rule["id"] {
		t.Fatalf("show printed %v", shown)
	}
	updated := obj(ok("update", "-g", "rg", "-n", "srv1", "-r", "office", "--start-ip-address", "10.1.0.1"))
	if updated["startIpAddress"] != "10.1.0.1" || updated["endIpAddress"] != "10.1.0.111" {
		t.Fatalf("update printed %v", updated)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(ok("list", "-g", "rg", "-n", "srv1")), &list); err != nil || len(list) != 4 {
		t.Fatalf("list: %v %v", err, list)
	}
	ok("delete", "-g", "rg", "-n", "srv1", "-r", "office", "--yes")
	if _, ok := x.rules["srv1"]["office"]; ok {
		t.Fatal("the rule was not deleted")
	}

	writes := len(x.writes())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "-g", "rg", "-n", "srv1", "-r", "x", "--start-ip-address", "10.0.0.1"}, "The firewall rule name can only contain 0-9, a-z, A-Z, '-' and '_'."},
		{[]string{"create", "-g", "rg", "-n", "srv1", "-r", "bad.name", "--start-ip-address", "10.0.0.1"}, "The firewall rule name can only contain"},
		{[]string{"create", "-g", "rg", "-n", "srv1", "--start-ip-address", "10.0.0.256"}, "Incorrect value for ip address. Ip address should be IPv4 format. Example: 12.12.12.12."},
		{[]string{"create", "-g", "rg", "-n", "srv1", "--start-ip-address", "10.0.0.9", "--end-ip-address", "10.0.0.1"}, "The end IP address is smaller than the start IP address."},
		{[]string{"update", "-g", "rg", "-n", "srv1", "-r", "office", "--end-ip-address", "::1"}, "Incorrect value for ip address."},
		{[]string{"delete", "-g", "rg", "-n", "srv1", "-r", "office"}, "Unable to prompt for confirmation as no tty available. Use --yes."},
	} {
		if _, errOut, code := fw(tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %s; want %q", tc.args, code, errOut, tc.want)
		}
	}
	// A server without public network access has no firewall rules, as az says.
	x.addServer("rg", "private", func(s map[string]any) {
		s["properties"].(map[string]any)["network"] = map[string]any{"publicNetworkAccess": "Disabled"}
	})
	if _, errOut, code := fw("create", "-g", "rg", "-n", "private", "--start-ip-address", "10.0.0.1"); code == 0 ||
		!strings.Contains(errOut, "Firewall rule operations cannot be requested for a private access enabled server.") {
		t.Errorf("a rule on a private server: exit %d, %s", code, errOut)
	}
	if len(x.writes()) != writes {
		t.Errorf("refused commands wrote: %v", x.writes()[writes:])
	}
}
