package azcompat_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestParametersWithAzureCLI: az postgres flexible-server parameter list, show and set
// against pgflex: a dynamic parameter seen by SHOW at once, a static one pending until
// restart, a read-only one refused, a reset without --value (az sends the default back).
func TestParametersWithAzureCLI(t *testing.T) {
	testkit.Require(t, append(testkit.DataPlane, testkit.PSQL, testkit.LocalhostNames)...)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	az := testenv.NewAZ(t, d, testenv.AZOptions{})
	az.Must(t, "group", "create", "-n", "rg", "-l", "eastus")
	const password = "Tq8#Lorem-Ipsum!"
	// A firewall rule for this machine (psql connects from 127.0.0.1), made by az's create.
	az.Must(t, "postgres", "flexible-server", "create", "--resource-group", "rg", "--name", "az-params", "--version", "15",
		"--admin-user", "seedadmin", "--admin-password", password, "--public-access", "127.0.0.1", "--yes", "-l", "eastus",
		"--tier", "Burstable", "--sku-name", "Standard_B1ms", "--storage-size", "32")
	conninfo := fmt.Sprintf("postgresql://seedadmin:%s@az-params.postgres.localhost:%d/postgres?sslmode=require",
		strings.ReplaceAll(password, "#", "%23"), d.PostgresPort())
	param := []string{"postgres", "flexible-server", "parameter"}
	p := func(args ...string) []string { return append(append([]string{}, param...), args...) }

	list, _ := az.Must(t, p("list", "-g", "rg", "-s", "az-params")...).JSON(t).([]any)
	if len(list) < 300 {
		t.Fatalf("parameter list: %d parameters", len(list))
	}
	table := az.Must(t, p("list", "-g", "rg", "-s", "az-params", "-o", "table")...).Stdout
	if !strings.HasPrefix(strings.TrimSpace(table), "Name") || !strings.Contains(table, "AllowedValues") {
		t.Fatalf("parameter list -o table:\n%.400s", table)
	}
	shown := az.Must(t, p("show", "-g", "rg", "-s", "az-params", "-n", "max_connections")...).Object(t)
	if str(shown, "value") != "50" || str(shown, "dataType") != "Integer" || str(shown, "source") != "system-default" {
		t.Fatalf("parameter show max_connections: %v", shown)
	}

	set := az.Must(t, p("set", "-g", "rg", "-s", "az-params", "-n", "log_min_duration_statement", "-v", "750")...).Object(t)
	if str(set, "value") != "750" || str(set, "source") != "user-override" {
		t.Fatalf("parameter set: %v", set)
	}
	if got := psql(t, nil, conninfo, "SHOW log_min_duration_statement"); got != "750ms" {
		t.Fatalf("SHOW log_min_duration_statement = %q", got)
	}

	set = az.Must(t, p("set", "-g", "rg", "-s", "az-params", "-n", "max_connections", "--value", "70")...).Object(t)
	if set["isConfigPendingRestart"] != true {
		t.Fatalf("parameter set max_connections: %v", set)
	}
	az.Must(t, "postgres", "flexible-server", "restart", "-g", "rg", "-n", "az-params")
	if got := psql(t, nil, conninfo, "SHOW max_connections"); got != "70" {
		t.Fatalf("SHOW max_connections after the restart = %q", got)
	}

	refusedWith(t, az.Run(t, p("set", "-g", "rg", "-s", "az-params", "-n", "fsync", "-v", "off")...), "(ParameterIsReadOnly)")
	refusedWith(t, az.Run(t, p("set", "-g", "rg", "-s", "az-params", "-n", "max_connections", "-v", "9")...), "(InvalidParameterValue) Invalid value given for parameter max_connections.")
	refusedWith(t, az.Run(t, p("show", "-g", "rg", "-s", "az-params", "-n", "no_such")...), "(ConfigurationNotExists)")

	// Without --value: az reads the default and sends it back; the override is gone.
	reset := az.Must(t, p("set", "-g", "rg", "-s", "az-params", "-n", "log_min_duration_statement")...).Object(t)
	if str(reset, "value") != "-1" || str(reset, "source") != "system-default" {
		t.Fatalf("parameter set without --value: %v", reset)
	}
	if got := psql(t, nil, conninfo, "SHOW log_min_duration_statement"); got != "-1" {
		t.Fatalf("SHOW log_min_duration_statement after the reset = %q", got)
	}
}
