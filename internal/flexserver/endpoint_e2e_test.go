package flexserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	armpostgresqlflexibleservers4 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// endpointSuffix is the DNS suffix this test gives its daemon: not the default, to show that the
// names, the certificates and the routing follow the setting.
const endpointSuffix = "db.pgflex-test.localhost"

// TestServersReachedByHostName: servers are reached as Azure's are, {name}.{suffix} on one
// port (the daemon's PostgreSQL endpoint), by Azure's SDK view, pgx and psql (libpq, as az
// prints the connection string and with verify-full against the profile's CA); each name
// reaches its own server; names that reach no running server, clients without TLS or without a
// server name get PostgreSQL errors; cancel requests reach the backend they name; the
// endpoint holds nothing once its clients are gone.
func TestServersReachedByHostName(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	testkit.Require(t, testkit.PSQL)
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t), "--postgres-dns-suffix", endpointSuffix}})
	createGroup(t, d, "rg1", "eastus")
	cred, opts := d.SDK()
	v5, err := armpostgresqlflexibleservers.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"pg-route-a", "pg-route-b"}
	var pollers []*azruntime.Poller[armpostgresqlflexibleservers.ServersClientCreateOrUpdateResponse]
	for _, name := range names {
		p, err := v5.BeginCreateOrUpdate(ctx, "rg1", name, burstableServer(), nil)
		if err != nil {
			t.Fatal(err)
		}
		pollers = append(pollers, p)
	}
	for _, p := range pollers {
		if _, err := p.PollUntilDone(ctx, &runtimePollOptions); err != nil {
			t.Fatalf("create: %v\n%s", err, d.Logs())
		}
	}
	for _, name := range names {
		allowLoopback(t, d, serverPath(d, "rg1", name))
	}
	port := d.PostgresPort()
	if port == 0 || port == 5432 {
		t.Fatalf("the test daemon's endpoint port is %d: the profile must name the free port it was given", port)
	}

	// Azure's SDK (both major versions) sees the host name; the raw view has no port of the
	// server's own.
	v4, err := armpostgresqlflexibleservers4.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	raws := map[string]map[string]any{}
	for _, name := range names {
		want := name + "." + endpointSuffix
		got5, err := v5.Get(ctx, "rg1", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got4, err := v4.Get(ctx, "rg1", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h := strOf(got5.Properties.FullyQualifiedDomainName); h != want {
			t.Errorf("v5 SDK: fullyQualifiedDomainName %q, want %q", h, want)
		}
		if h := strOf(got4.Properties.FullyQualifiedDomainName); h != want {
			t.Errorf("v4 SDK: fullyQualifiedDomainName %q, want %q", h, want)
		}
		raws[name] = serverRaw(t, d, "rg1", name)
		if p, ok := props(raws[name])["port"]; ok {
			t.Errorf("the view still publishes a port: %v", p)
		}
	}

	// Each name reaches its own server: a marker written through one name is read back
	// through the same name only.
	for _, name := range names {
		conn, err := connect(t, d, raws[name], "postgres")
		if err != nil {
			t.Fatalf("connect %s by name: %v", name, err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE whoami (v text); INSERT INTO whoami VALUES ('server-"+name+"')"); err != nil {
			t.Fatal(err)
		}
		// The TLS session is the server's own: its certificate, not the endpoint's.
		peer := conn.PgConn().Conn().(*tls.Conn).ConnectionState().PeerCertificates[0]
		if peer.Subject.CommonName != name {
			t.Errorf("TLS peer %q, want the server %s", peer.Subject.CommonName, name)
		}
		// For its host name only: not for the loopback names every server shares, nor for
		// Azure's domain.
		if want := []string{name + "." + endpointSuffix}; !slices.Equal(peer.DNSNames, want) || len(peer.IPAddresses) != 0 {
			t.Errorf("the server's certificate covers %v %v, want %v only", peer.DNSNames, peer.IPAddresses, want)
		}
		conn.Close(ctx)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte(d.Profile().CACertificate), 0o600); err != nil {
		t.Fatal(err)
	}
	psql := func(conninfo string, args ...string) (string, error) {
		cmd := exec.Command("psql", append([]string{conninfo, "-X", "-A", "-t"}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGCONNECT_TIMEOUT=15")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, name := range names {
		host := props(raws[name])["fullyQualifiedDomainName"].(string)
		for _, conninfo := range []string{
			// As az prints it (with the test endpoint's port, which is not 5432).
			fmt.Sprintf("postgresql://pgadmin:%s@%s:%d/postgres?sslmode=require", adminPassword, host, port),
			fmt.Sprintf("host=%s port=%d user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=%s", host, port, caFile),
			// Azure's own suffix, which az's show-connection-string writes (with
			// sslmode=require), is an alias by default (hostaddr stands in for DNS).
			fmt.Sprintf("host=%s.postgres.database.azure.com hostaddr=127.0.0.1 port=%d user=pgadmin dbname=postgres sslmode=require", name, port),
		} {
			out, err := psql(conninfo, "-c", "SELECT v FROM whoami")
			if err != nil || strings.TrimSpace(out) != "server-"+name {
				t.Errorf("psql %s: %v %q, want server-%s", strings.Replace(conninfo, adminPassword, "***", 1), err, out, name)
			}
		}
	}

	// Cancel requests (libpq's and pgx's: unencrypted, no server name) reach the backend they
	// name, on either server.
	for _, name := range names {
		conn, err := connect(t, d, raws[name], "postgres")
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { _, err := conn.Exec(ctx, "SELECT pg_sleep(300)"); errc <- err }()
		watch, err := connect(t, d, raws[name], "postgres")
		if err != nil {
			t.Fatal(err)
		}
		pid := conn.PgConn().PID()
		testkit.Eventually(t, 30*time.Second, "the query running on "+name, func() error {
			var n int
			if err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", int(pid)).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("%d running, %v", n, err)
			}
			return nil
		})
		if err := conn.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		var pe *pgconn.PgError
		if err := <-errc; !errors.As(err, &pe) || pe.Code != "57014" {
			t.Errorf("%s: query after its cancel request: %v, want 57014 (canceled)", name, err)
		}
		watch.Close(ctx)
		conn.Close(ctx)
	}
	// psql's Ctrl-C (libpq's PQcancel) too.
	{
		host := props(raws[names[0]])["fullyQualifiedDomainName"].(string)
		cmd := exec.Command("psql", fmt.Sprintf("host=%s port=%d user=pgadmin dbname=postgres sslmode=require application_name=ctrl-c", host, port),
			"-X", "-c", "SELECT pg_sleep(300)")
		cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		watch, err := connect(t, d, raws[names[0]], "postgres")
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal(err)
		}
		testkit.Eventually(t, 30*time.Second, "psql's query running", func() error {
			var n int
			if err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ctrl-c' AND state = 'active'").Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("%d running, %v", n, err)
			}
			return nil
		})
		watch.Close(ctx)
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err == nil || !strings.Contains(out.String(), "ERROR:  canceling statement due to user request") {
			t.Errorf("psql after Ctrl-C: %v\n%s", err, out.String())
		}
	}

	// What reaches no running server gets a PostgreSQL error, which psql prints.
	serverAction(t, d, "rg1", "stop", names[1])
	for _, tc := range []struct {
		what, conninfo, want string
	}{
		{"unknown name", fmt.Sprintf("host=nosuch.%s port=%d user=pgadmin dbname=postgres sslmode=require", endpointSuffix, port),
			`FATAL:  server "nosuch" was not found`},
		{"stopped server", fmt.Sprintf("host=%s.%s port=%d user=pgadmin dbname=postgres sslmode=verify-full sslrootcert=%s", names[1], endpointSuffix, port, caFile),
			`FATAL:  server "` + names[1] + `" is stopped`},
		{"no server name", fmt.Sprintf("host=127.0.0.1 port=%d user=pgadmin dbname=postgres sslmode=require", port),
			"FATAL:  no server name: connect to the server by its host name, {server}." + endpointSuffix},
		{"name under another suffix", fmt.Sprintf("host=%s.postgres.localhost port=%d user=pgadmin dbname=postgres sslmode=require", names[0], port),
			`is not the host name of a server: servers are reached as {server}.` + endpointSuffix},
		{"no TLS", fmt.Sprintf("host=%s.%s port=%d user=pgadmin dbname=postgres sslmode=disable", names[0], endpointSuffix, port),
			`FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "pgadmin", database "postgres", no encryption`},
	} {
		out, err := psql(tc.conninfo, "-c", "SELECT 1")
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: psql %v\n%s\nwant %q", tc.what, err, out, tc.want)
		}
	}
	_, err = connect(t, d, raws[names[1]], "postgres")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P03" {
		t.Errorf("pgx to a stopped server: %v, want 57P03 (cannot connect now)", err)
	}

	// Every connection is over: the endpoint holds none, and counted what it did.
	testkit.Eventually(t, 30*time.Second, "the endpoint idle", func() error {
		m := endpointMetrics(t, d)
		if m["pending"] != 0 || m["spliced"] != 0 {
			return fmt.Errorf("metrics %v", m)
		}
		return nil
	})
	if m := endpointMetrics(t, d); m["routed_total"] < 14 || m["refused_total"] < 6 || m["cancel_requests_total"] < 3 {
		t.Errorf("endpoint metrics %v", m)
	}
}

var endpointMetricRE = regexp.MustCompile(`(?m)^pgflex_postgres_endpoint_(\w+) (\S+)$`)

// endpointMetrics reads the endpoint's metrics from the daemon's /metrics.
func endpointMetrics(t testing.TB, d *testenv.Daemon) map[string]float64 {
	t.Helper()
	r := d.Do(t, http.MethodGet, "/metrics", "", nil)
	out := map[string]float64{}
	for _, m := range endpointMetricRE.FindAllStringSubmatch(string(r.Raw), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	if len(out) != 7 {
		t.Fatalf("endpoint metrics %v in:\n%s", out, r.Raw)
	}
	return out
}

func strOf(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
