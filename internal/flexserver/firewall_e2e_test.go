package flexserver_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// connectFrom connects as the administrator to the server's host name on the endpoint, from the
// local address src (127.0.0.2, 127.0.0.3: loopback addresses this host has, so that the
// endpoint sees different clients).
func connectFrom(t testing.TB, d *testenv.Daemon, srv map[string]any, src string) (*pgx.Conn, error) {
	t.Helper()
	p := props(srv)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=pgadmin dbname=postgres sslmode=verify-full connect_timeout=5",
		p["fullyQualifiedDomainName"], d.PostgresPort()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = adminPassword
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(d.Profile().CACertificate))
	cfg.TLSConfig.RootCAs = pool
	// The endpoint listens on 127.0.0.1; an IPv4 source needs an IPv4 destination.
	cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	cfg.DialFunc = dialer.DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// mustConnectFrom connects from src and checks the session answers.
func mustConnectFrom(t testing.TB, d *testenv.Daemon, srv map[string]any, src string) *pgx.Conn {
	t.Helper()
	c, err := connectFrom(t, d, srv, src)
	if err != nil {
		t.Fatalf("connect from %s: %v", src, err)
	}
	var one int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query from %s: %v", src, err)
	}
	return c
}

// refusedFrom checks that a client at src is refused as Azure refuses one no rule admits.
func refusedFrom(t testing.TB, d *testenv.Daemon, srv map[string]any, src string) {
	t.Helper()
	c, err := connectFrom(t, d, srv, src)
	if err == nil {
		c.Close(context.Background())
		t.Fatalf("a client at %s connected", src)
	}
	want := fmt.Sprintf(`no pg_hba.conf entry for host "%s", user "pgadmin", database "postgres", SSL encryption`, src)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || pe.Severity != "FATAL" || pe.Message != want {
		t.Fatalf("client at %s: %v, want FATAL 28000 %q", src, err, want)
	}
}

func ruleNames(t testing.TB, ctx context.Context, rules *armpostgresqlflexibleservers.FirewallRulesClient, group, server string) []string {
	t.Helper()
	var names []string
	pager := rules.NewListByServerPager(group, server, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list firewall rules of %s: %v", server, err)
		}
		for _, r := range page.Value {
			names = append(names, fmt.Sprintf("%s=%s-%s", *r.Name, *r.Properties.StartIPAddress, *r.Properties.EndIPAddress))
		}
	}
	slices.Sort(names)
	return names
}

func putRule(t testing.TB, ctx context.Context, rules *armpostgresqlflexibleservers.FirewallRulesClient, group, server, name, start, end string) armpostgresqlflexibleservers.FirewallRule {
	t.Helper()
	p, err := rules.BeginCreateOrUpdate(ctx, group, server, name, armpostgresqlflexibleservers.FirewallRule{
		Properties: &armpostgresqlflexibleservers.FirewallRuleProperties{StartIPAddress: to.Ptr(start), EndIPAddress: to.Ptr(end)}}, nil)
	if err != nil {
		t.Fatalf("put firewall rule %s: %v", name, err)
	}
	res, err := p.PollUntilDone(ctx, &runtimePollOptions)
	if err != nil {
		t.Fatalf("put firewall rule %s: %v", name, err)
	}
	return res.FirewallRule
}

// TestFirewallRules: rules through Azure's SDK (v5), enforced at the endpoint for real: a
// client is admitted only from an address a rule covers (loopback included); a change takes
// effect for new connections at once and leaves established sessions alone; publicNetworkAccess
// Disabled refuses everyone; bad input is refused and changes nothing; rules survive a daemon
// restart, are copied by a restore, and go with their server.
func TestFirewallRules(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	testkit.Require(t, testkit.LocalhostNames)
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "pg-fw", nil)
	cred, opts := d.SDK()
	rules, err := armpostgresqlflexibleservers.NewFirewallRulesClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	servers, err := armpostgresqlflexibleservers.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}

	// No rule: nobody, loopback included.
	if got := ruleNames(t, ctx, rules, "rg", "pg-fw"); len(got) != 0 {
		t.Fatalf("a new server has rules: %v", got)
	}
	refusedFrom(t, d, srv, "127.0.0.1")

	fr := putRule(t, ctx, rules, "rg", "pg-fw", "allow-two", "127.0.0.2", "127.0.0.2")
	if *fr.Name != "allow-two" || *fr.Type != "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules" ||
		*fr.ID != serverPath(d, "rg", "pg-fw")+"/firewallRules/allow-two" || *fr.Properties.StartIPAddress != "127.0.0.2" {
		t.Fatalf("created rule: %+v %+v", fr, fr.Properties)
	}
	got, err := rules.Get(ctx, "rg", "pg-fw", "allow-two", nil)
	if err != nil || *got.Properties.EndIPAddress != "127.0.0.2" {
		t.Fatalf("get rule: %v %+v", err, got)
	}
	kept := mustConnectFrom(t, d, srv, "127.0.0.2")
	defer kept.Close(ctx)
	refusedFrom(t, d, srv, "127.0.0.3")
	refusedFrom(t, d, srv, "127.0.0.1")

	t.Run("a change takes effect at once; an established session stays", func(t *testing.T) {
		putRule(t, ctx, rules, "rg", "pg-fw", "allow-two", "127.0.0.3", "127.0.0.3")
		c := mustConnectFrom(t, d, srv, "127.0.0.3") // no wait: in force when the PUT is answered
		c.Close(ctx)
		refusedFrom(t, d, srv, "127.0.0.2")
		var one int
		if err := kept.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("the session from 127.0.0.2 ended with the rule's change: %v", err)
		}
		putRule(t, ctx, rules, "rg", "pg-fw", "range", "127.0.0.1", "127.0.0.2")
		if got, want := ruleNames(t, ctx, rules, "rg", "pg-fw"), []string{"allow-two=127.0.0.3-127.0.0.3", "range=127.0.0.1-127.0.0.2"}; !slices.Equal(got, want) {
			t.Fatalf("rules %v, want %v", got, want)
		}
		for _, src := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
			mustConnectFrom(t, d, srv, src).Close(ctx)
		}
		p, err := rules.BeginDelete(ctx, "rg", "pg-fw", "range", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, &runtimePollOptions); err != nil {
			t.Fatal(err)
		}
		refusedFrom(t, d, srv, "127.0.0.1")
		refusedFrom(t, d, srv, "127.0.0.2")
		mustConnectFrom(t, d, srv, "127.0.0.3").Close(ctx)
		if _, err := rules.Get(ctx, "rg", "pg-fw", "range", nil); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("get a deleted rule: %v", err)
		}
	})

	t.Run("bad input is refused and changes nothing", func(t *testing.T) {
		before := ruleNames(t, ctx, rules, "rg", "pg-fw")
		put := func(name string, props map[string]any) testenv.ARMResponse {
			return d.ARM(t, http.MethodPut, serverPath(d, "rg", "pg-fw")+"/firewallRules/"+name+"?api-version=2025-08-01", map[string]any{"properties": props})
		}
		addr := func(s, e string) map[string]any { return map[string]any{"startIpAddress": s, "endIpAddress": e} }
		for _, tc := range []struct {
			what, name string
			props      map[string]any
			code       string
		}{
			{"a malformed start", "allow-two", addr("127.0.0", "127.0.0.9"), "InvalidParameterValue"},
			{"a malformed end", "allow-two", addr("127.0.0.1", "127.0.0.256"), "InvalidParameterValue"},
			{"an IPv6 address", "allow-two", addr("::1", "::1"), "InvalidParameterValue"},
			{"leading zeros", "allow-two", addr("127.0.0.01", "127.0.0.9"), "InvalidParameterValue"},
			{"start above end", "allow-two", addr("127.0.0.9", "127.0.0.1"), "FirewallRuleStartIpAddressGreaterThanEndIpAddress"},
			{"no addresses", "allow-two", map[string]any{}, "InvalidParameterValue"},
			{"a bad name", "bad.name", addr("127.0.0.1", "127.0.0.1"), "InvalidParameterValue"},
			{"a name too long", strings.Repeat("r", 129), addr("127.0.0.1", "127.0.0.1"), "InvalidParameterValue"},
		} {
			r := put(tc.name, tc.props)
			if r.Status != http.StatusBadRequest || r.ErrorCode() != tc.code || r.ErrorMessage() == "" {
				t.Errorf("%s: %d %s, want 400 %s", tc.what, r.Status, r.Raw, tc.code)
			}
		}
		if after := ruleNames(t, ctx, rules, "rg", "pg-fw"); !slices.Equal(before, after) {
			t.Fatalf("rules changed by refused requests: %v -> %v", before, after)
		}
		mustConnectFrom(t, d, srv, "127.0.0.3").Close(ctx)
	})

	t.Run("publicNetworkAccess Disabled refuses everyone", func(t *testing.T) {
		setAccess := func(v armpostgresqlflexibleservers.ServerPublicNetworkAccessState) {
			p, err := servers.BeginUpdate(ctx, "rg", "pg-fw", armpostgresqlflexibleservers.ServerForPatch{
				Properties: &armpostgresqlflexibleservers.ServerPropertiesForPatch{Network: &armpostgresqlflexibleservers.Network{PublicNetworkAccess: to.Ptr(v)}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.PollUntilDone(ctx, &runtimePollOptions); err != nil {
				t.Fatal(err)
			}
		}
		setAccess(armpostgresqlflexibleservers.ServerPublicNetworkAccessStateDisabled)
		refusedFrom(t, d, srv, "127.0.0.3")
		setAccess(armpostgresqlflexibleservers.ServerPublicNetworkAccessStateEnabled)
		mustConnectFrom(t, d, srv, "127.0.0.3").Close(ctx)
	})

	t.Run("rules survive a daemon restart", func(t *testing.T) {
		before := ruleNames(t, ctx, rules, "rg", "pg-fw")
		d.Restart()
		waitState(t, d, "rg", "pg-fw", "Ready", 2*time.Minute)
		if after := ruleNames(t, ctx, rules, "rg", "pg-fw"); !slices.Equal(before, after) {
			t.Fatalf("rules after restart %v, want %v", after, before)
		}
		testkit.Eventually(t, time.Minute, "a connection from 127.0.0.3 after the restart", func() error {
			c, err := connectFrom(t, d, srv, "127.0.0.3")
			if err != nil {
				return err
			}
			return c.Close(ctx)
		})
		refusedFrom(t, d, srv, "127.0.0.2")
	})

	t.Run("a restore copies the rules", func(t *testing.T) {
		copySrv := restoreServer(t, d, "rg", "pg-fw-copy", restoreBody("PointInTimeRestore", serverPath(d, "rg", "pg-fw"), pointInTime(time.Now()), nil))
		if got, want := ruleNames(t, ctx, rules, "rg", "pg-fw-copy"), ruleNames(t, ctx, rules, "rg", "pg-fw"); !slices.Equal(got, want) {
			t.Fatalf("restored server's rules %v, want the source's %v", got, want)
		}
		mustConnectFrom(t, d, copySrv, "127.0.0.3").Close(ctx)
		refusedFrom(t, d, copySrv, "127.0.0.2")
	})

	t.Run("rules go with their server", func(t *testing.T) {
		kept.Close(ctx)
		p, err := servers.BeginDelete(ctx, "rg", "pg-fw", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, &runtimePollOptions); err != nil {
			t.Fatal(err)
		}
		if _, err := rules.Get(ctx, "rg", "pg-fw", "allow-two", nil); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("a rule of a deleted server: %v", err)
		}
		// A server created again under the name starts with no rules.
		createServer(t, d, "rg", "pg-fw", nil)
		if got := ruleNames(t, ctx, rules, "rg", "pg-fw"); len(got) != 0 {
			t.Fatalf("a re-created server has its predecessor's rules: %v", got)
		}
		refusedFrom(t, d, srv, "127.0.0.3")
	})
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}
