package azcompat_test

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestFirewallRulesWithAzureCLI: az 2.45's `postgres flexible-server firewall-rule` commands and
// create's --public-access <address> against the daemon, and what psql gets before and after.
func TestFirewallRulesWithAzureCLI(t *testing.T) {
	testkit.Require(t, append(testkit.DataPlane, testkit.PSQL, testkit.LocalhostNames)...)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	az := testenv.NewAZ(t, d, testenv.AZOptions{})
	az.Must(t, "group", "create", "-n", "rg", "-l", "eastus")
	fw := func(args ...string) testenv.AZResult {
		return az.Must(t, append([]string{"postgres", "flexible-server", "firewall-rule"}, args...)...)
	}
	names := func() []string {
		var out []string
		for _, r := range fw("list", "-g", "rg", "-n", "az-fw").JSON(t).([]any) {
			m := r.(map[string]any)
			out = append(out, fmt.Sprintf("%s=%s-%s", m["name"], m["startIpAddress"], m["endIpAddress"]))
		}
		slices.Sort(out)
		return out
	}
	conninfo := fmt.Sprintf("host=az-fw.postgres.localhost port=%d user=fwadmin password=Tq8#Lorem-Ipsum! dbname=postgres sslmode=require", d.PostgresPort())
	psqlOut := func() (string, error) {
		cmd := exec.Command("psql", conninfo, "-X", "-A", "-t", "-c", "SELECT 'in'")
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=15")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	refused := `FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "fwadmin", database "postgres", SSL encryption`

	// --public-access with one address: az creates the server, then a rule named as it names them.
	out := az.Must(t, "postgres", "flexible-server", "create", "-g", "rg", "-n", "az-fw", "--version", "15", "--admin-user", "fwadmin",
		"--admin-password", "Tq8#Lorem-Ipsum!", "--public-access", "127.0.0.1", "--yes", "-l", "eastus").Object(t)
	first := str(out, "firewallName")
	if !regexp.MustCompile(`^FirewallIPAddress_\d{4}-\d{1,2}-\d{1,2}_\d{1,2}-\d{1,2}-\d{1,2}$`).MatchString(first) {
		t.Fatalf("create printed firewallName %q: %v", first, out)
	}
	if got, want := names(), []string{first + "=127.0.0.1-127.0.0.1"}; !slices.Equal(got, want) {
		t.Fatalf("rules after create: %v, want %v", got, want)
	}
	if got, err := psqlOut(); err != nil || got != "in" {
		t.Fatalf("psql with create's rule: %v %s", err, got)
	}

	rule := fw("create", "-g", "rg", "-n", "az-fw", "-r", "office", "--start-ip-address", "10.1.0.0", "--end-ip-address", "10.1.255.255").Object(t)
	if str(rule, "name") != "office" || str(rule, "type") != "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules" ||
		str(rule, "resourceGroup") != "rg" || str(rule, "startIpAddress") != "10.1.0.0" || str(rule, "endIpAddress") != "10.1.255.255" {
		t.Fatalf("firewall-rule create printed %v", rule)
	}
	if shown := fw("show", "-g", "rg", "-n", "az-fw", "-r", "office").Object(t); str(shown, "id") != str(rule, "id") || str(shown, "endIpAddress") != "10.1.255.255" {
		t.Fatalf("firewall-rule show printed %v", shown)
	}
	updated := fw("update", "-g", "rg", "-n", "az-fw", "-r", "office", "--end-ip-address", "10.1.0.255").Object(t)
	if str(updated, "startIpAddress") != "10.1.0.0" || str(updated, "endIpAddress") != "10.1.0.255" {
		t.Fatalf("firewall-rule update printed %v", updated)
	}
	if got, want := names(), []string{first + "=127.0.0.1-127.0.0.1", "office=10.1.0.0-10.1.0.255"}; !slices.Equal(got, want) {
		t.Fatalf("rules: %v, want %v", got, want)
	}

	// Without the rule for 127.0.0.1, psql is refused as Azure refuses it.
	fw("delete", "-g", "rg", "-n", "az-fw", "-r", first, "--yes")
	if got, want := names(), []string{"office=10.1.0.0-10.1.0.255"}; !slices.Equal(got, want) {
		t.Fatalf("rules after delete: %v, want %v", got, want)
	}
	if got, err := psqlOut(); err == nil || !strings.Contains(got, refused) {
		t.Fatalf("psql without a rule: %v %s, want %q", err, got, refused)
	}
	// The server refuses what az lets through (az 2.45 checks only the form of the addresses).
	r := az.Run(t, "postgres", "flexible-server", "firewall-rule", "create", "-g", "rg", "-n", "az-fw", "-r", "bad",
		"--start-ip-address", "10.0.0.01", "--end-ip-address", "10.0.0.9")
	refusedWith(t, r, "InvalidParameterValue")
	if got, want := names(), []string{"office=10.1.0.0-10.1.0.255"}; !slices.Equal(got, want) {
		t.Fatalf("rules after a refused create: %v, want %v", got, want)
	}
}
