package flexserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// showSetting reads a parameter as the server's PostgreSQL has it now (SHOW).
func showSetting(t testing.TB, d *testenv.Daemon, name, param string) string {
	t.Helper()
	conn, err := connect(t, d, serverRaw(t, d, "rg", name), "postgres")
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT current_setting($1)", param).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestServerParametersWithAzureSDK: list, show and set through the SDK's ConfigurationsClient
// on a real server: a dynamic parameter applies at once, a static one at the next restart;
// refusals change nothing; overrides survive a daemon restart and go into a restored server.
func TestServerParametersWithAzureSDK(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	createGroup(t, d, "rg", "eastus")
	cred, opts := d.SDK()
	servers, err := armpostgresqlflexibleservers.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := armpostgresqlflexibleservers.NewConfigurationsClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	poller, err := servers.BeginCreateOrUpdate(ctx, "rg", "pg-params", burstableServer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatalf("create: %v\n%s", err, d.Logs())
	}
	set := func(name, value string) (armpostgresqlflexibleservers.Configuration, error) {
		p, err := configs.BeginPut(ctx, "rg", "pg-params", name, armpostgresqlflexibleservers.ConfigurationForUpdate{
			Properties: &armpostgresqlflexibleservers.ConfigurationProperties{Value: to.Ptr(value), Source: to.Ptr("user-override")}}, nil)
		if err != nil {
			return armpostgresqlflexibleservers.Configuration{}, err
		}
		res, err := p.PollUntilDone(ctx, &runtimePollOptions)
		return res.Configuration, err
	}
	get := func(name string) *armpostgresqlflexibleservers.ConfigurationProperties {
		t.Helper()
		c, err := configs.Get(ctx, "rg", "pg-params", name, nil)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		return c.Properties
	}

	t.Run("list", func(t *testing.T) {
		pager := configs.NewListByServerPager("rg", "pg-params", nil)
		seen := map[string]*armpostgresqlflexibleservers.ConfigurationProperties{}
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page.Value {
				seen[*c.Name] = c.Properties
			}
		}
		if len(seen) < 300 {
			t.Fatalf("%d parameters listed", len(seen))
		}
		mc := seen["max_connections"]
		if mc == nil || *mc.Value != "50" || *mc.DefaultValue != "50" || *mc.DataType != armpostgresqlflexibleservers.ConfigurationDataTypeInteger ||
			*mc.IsDynamicConfig || *mc.IsReadOnly || *mc.Source != "system-default" || *mc.AllowedValues != "25-5000" {
			t.Fatalf("max_connections of a B1ms: %+v", mc)
		}
		if f := seen["fsync"]; f == nil || !*f.IsReadOnly {
			t.Fatalf("fsync: %+v", f)
		}
		if r := seen["require_secure_transport"]; r == nil || *r.Value != "on" || *r.DataType != armpostgresqlflexibleservers.ConfigurationDataTypeBoolean {
			t.Fatalf("require_secure_transport: %+v", r)
		}
		if got := showSetting(t, d, "pg-params", "max_connections"); got != "50" {
			t.Fatalf("SHOW max_connections = %s, want the SKU's 50", got)
		}
	})

	t.Run("dynamic parameter applies at once", func(t *testing.T) {
		c, err := set("log_min_duration_statement", "250")
		if err != nil {
			t.Fatalf("set: %v\n%s", err, tail(d.Logs(), 30))
		}
		if *c.Properties.Value != "250" || *c.Properties.Source != "user-override" || *c.Properties.IsConfigPendingRestart {
			t.Fatalf("after set: %+v", c.Properties)
		}
		testEventually(t, func() error {
			if got := showSetting(t, d, "pg-params", "log_min_duration_statement"); got != "250ms" {
				return errors.New("SHOW log_min_duration_statement = " + got)
			}
			return nil
		})
	})

	t.Run("azure.extensions allow-list", func(t *testing.T) {
		c, err := set("azure.extensions", "CITEXT")
		if err != nil || *c.Properties.Value != "citext" || *c.Properties.DataType != armpostgresqlflexibleservers.ConfigurationDataTypeSet {
			t.Fatalf("set azure.extensions: %+v %v", c.Properties, err)
		}
		// The reload is a signal: the postmaster reads the file a moment later.
		testEventually(t, func() error {
			if got := showSetting(t, d, "pg-params", "azure.extensions"); got != "citext" {
				return errors.New("SHOW azure.extensions = " + got)
			}
			return nil
		})
		// Extensions are created in a database the administrator owns.
		r := d.ARM(t, http.MethodPut, serverPath(d, "rg", "pg-params")+"/databases/appdb?api-version=2025-08-01",
			map[string]any{"properties": map[string]any{"charset": "UTF8"}})
		if r.Status != http.StatusAccepted {
			t.Fatalf("create database: %d %s", r.Status, r.Raw)
		}
		if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute); op["status"] != "Succeeded" {
			t.Fatalf("create database: %v", op)
		}
		conn, err := connect(t, d, serverRaw(t, d, "rg", "pg-params"), "appdb")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE EXTENSION citext"); err != nil {
			t.Fatalf("an allowed extension: %v", err)
		}
		if _, err := conn.Exec(ctx, "CREATE EXTENSION pg_trgm"); err == nil || !strings.Contains(err.Error(), "pg_trgm") {
			t.Fatalf("an extension left out of azure.extensions: %v", err)
		}
		if _, err := set("azure.extensions", "plpython3u"); err == nil {
			t.Fatal("an extension pgflex does not offer was accepted")
		}
	})

	t.Run("static parameter pending until restart", func(t *testing.T) {
		if _, err := set("max_connections", "80"); err != nil {
			t.Fatal(err)
		}
		if p := get("max_connections"); *p.Value != "80" || !*p.IsConfigPendingRestart {
			t.Fatalf("after set: %+v", p)
		}
		if got := showSetting(t, d, "pg-params", "max_connections"); got != "50" {
			t.Fatalf("SHOW max_connections = %s before the restart", got)
		}
		if st := restartServer(t, d, "pg-params"); st != "Succeeded" {
			t.Fatalf("restart: %s", st)
		}
		if p := get("max_connections"); *p.IsConfigPendingRestart {
			t.Fatalf("after restart: %+v", p)
		}
		if got := showSetting(t, d, "pg-params", "max_connections"); got != "80" {
			t.Fatalf("SHOW max_connections = %s after the restart", got)
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		tests := []struct {
			name, value string
			status      int
			code        string
		}{
			{"fsync", "off", http.StatusBadRequest, "ParameterIsReadOnly"},
			{"shared_preload_libraries", "plpython3u", http.StatusBadRequest, "ParameterIsReadOnly"},
			{"require_secure_transport", "maybe", http.StatusBadRequest, "InvalidParameterValue"},
			{"max_connections", "100000", http.StatusBadRequest, "InvalidParameterValue"},
			{"max_connections", "lots", http.StatusBadRequest, "InvalidParameterValue"},
			{"enable_seqscan", "maybe", http.StatusBadRequest, "InvalidParameterValue"},
			{"log_min_duration_statement", "250\nfsync = off", http.StatusBadRequest, "InvalidParameterValue"},
			{"no_such_parameter", "1", http.StatusNotFound, "ConfigurationNotExists"},
		}
		for _, tt := range tests {
			_, err := set(tt.name, tt.value)
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != tt.status || re.ErrorCode != tt.code {
				t.Errorf("set %s=%q: %v, want %d %s", tt.name, tt.value, err, tt.status, tt.code)
			}
		}
		if p := get("max_connections"); *p.Value != "80" {
			t.Fatalf("max_connections after refusals: %+v", p)
		}
		// A value only PostgreSQL can judge (a time zone that does not exist): the operation
		// fails with PostgreSQL's refusal, and the server keeps its previous value, in the API
		// and in the running server (its file is written back too: a restored server below starts from it).
		tz := showSetting(t, d, "pg-params", "timezone")
		_, err := set("timezone", "Nowhere/Atlantis")
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.ErrorCode != "InvalidParameterValue" || !strings.Contains(err.Error(), "Nowhere/Atlantis") {
			t.Fatalf("set timezone=Nowhere/Atlantis: %v, want InvalidParameterValue naming the value", err)
		}
		if p := get("timezone"); *p.Source != "system-default" {
			t.Fatalf("timezone after PostgreSQL's refusal: %s (%s)", *p.Value, *p.Source)
		}
		if got := showSetting(t, d, "pg-params", "timezone"); got != tz {
			t.Fatalf("SHOW timezone = %s after a refused change, want %s", got, tz)
		}
		if got := showSetting(t, d, "pg-params", "fsync"); got != "on" {
			t.Fatalf("SHOW fsync = %s", got)
		}
		if _, err := configs.Get(ctx, "rg", "pg-params", "no_such_parameter", nil); err == nil {
			t.Fatal("get of an unknown parameter succeeded")
		}
	})

	t.Run("require_secure_transport", func(t *testing.T) {
		testkit.Require(t, testkit.PSQL)
		psql := func(user string) (string, error) {
			cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
				fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable connect_timeout=5", d.PostgresPort(), user))
			cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword)
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		// On (the default): a client without TLS is refused as Azure refuses it.
		if out, err := psql("pgadmin@pg-params"); err == nil || !strings.Contains(out, "no pg_hba.conf entry") || !strings.Contains(out, "no encryption") {
			t.Fatalf("plaintext with require_secure_transport on: %v %s", err, out)
		}
		if _, err := set("require_secure_transport", "OFF"); err != nil {
			t.Fatal(err)
		}
		if p := get("require_secure_transport"); *p.Value != "off" || *p.IsConfigPendingRestart {
			t.Fatalf("after set: %+v", p)
		}
		if out, err := psql("pgadmin@pg-params"); err != nil || out != "f" {
			t.Fatalf("plaintext as pgadmin@pg-params with require_secure_transport off: %v %s", err, out)
		}
		// Without a server in the user name the endpoint cannot tell the server.
		if out, err := psql("pgadmin"); err == nil || !strings.Contains(out, "no pg_hba.conf entry") {
			t.Fatalf("plaintext as pgadmin: %v %s", err, out)
		}
		// TLS still works.
		if got := showSetting(t, d, "pg-params", "ssl"); got != "on" {
			t.Fatalf("SHOW ssl = %s", got)
		}
		if _, err := set("require_secure_transport", "on"); err != nil {
			t.Fatal(err)
		}
		if out, err := psql("pgadmin@pg-params"); err == nil || !strings.Contains(out, "no pg_hba.conf entry") {
			t.Fatalf("plaintext with require_secure_transport on again: %v %s", err, out)
		}
	})

	t.Run("overrides survive a daemon restart", func(t *testing.T) {
		d.Restart()
		testEventually(t, func() error {
			if props(serverRaw(t, d, "rg", "pg-params"))["state"] != "Ready" {
				return errors.New("not ready")
			}
			return nil
		})
		if p := get("log_min_duration_statement"); *p.Value != "250" || *p.Source != "user-override" {
			t.Fatalf("after daemon restart: %+v", p)
		}
		if got := showSetting(t, d, "pg-params", "max_connections"); got != "80" {
			t.Fatalf("SHOW max_connections = %s after the daemon's restart", got)
		}
	})

	t.Run("reset to the default", func(t *testing.T) {
		// PATCH, as az's parameter set sends.
		p, err := configs.BeginUpdate(ctx, "rg", "pg-params", "log_min_duration_statement", armpostgresqlflexibleservers.ConfigurationForUpdate{
			Properties: &armpostgresqlflexibleservers.ConfigurationProperties{Source: to.Ptr("system-default")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, &runtimePollOptions); err != nil {
			t.Fatal(err)
		}
		if p := get("log_min_duration_statement"); *p.Value != "-1" || *p.Source != "system-default" {
			t.Fatalf("after reset: %+v", p)
		}
		testEventually(t, func() error {
			if got := showSetting(t, d, "pg-params", "log_min_duration_statement"); got != "-1" {
				return errors.New("SHOW log_min_duration_statement = " + got)
			}
			return nil
		})
	})

	t.Run("restored server keeps the overrides", func(t *testing.T) {
		src := serverRaw(t, d, "rg", "pg-params")
		time.Sleep(2 * time.Second)
		restoreServer(t, d, "rg", "pg-params-copy", restoreBody("PointInTimeRestore", src["id"].(string), pointInTime(time.Now().Add(-time.Second)), nil))
		c, err := configs.Get(ctx, "rg", "pg-params-copy", "max_connections", nil)
		if err != nil || *c.Properties.Value != "80" || *c.Properties.IsConfigPendingRestart {
			t.Fatalf("restored server's max_connections: %+v %v", c.Properties, err)
		}
		if got := showSetting(t, d, "pg-params-copy", "max_connections"); got != "80" {
			t.Fatalf("SHOW max_connections = %s on the restored server", got)
		}
	})
}

// testEventually retries fn for up to 30 s.
func testEventually(t testing.TB, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
