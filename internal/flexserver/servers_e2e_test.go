package flexserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armpostgresqlflexibleservers4 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const adminPassword = "Str0ng!Passw0rd"

// requireDataPlane skips where servers cannot run at all, saying why (and fails instead where
// every end-to-end test must run: see testkit.Require).
func requireDataPlane(t testing.TB) {
	t.Helper()
	testkit.Require(t, testkit.DataPlane...)
}

func createGroup(t testing.TB, d *testenv.Daemon, name, location string) {
	t.Helper()
	r := d.ARM(t, http.MethodPut, fmt.Sprintf("/subscriptions/%s/resourcegroups/%s?api-version=2021-04-01", d.Profile().SubscriptionID, name),
		map[string]any{"location": location})
	if r.Status != 200 && r.Status != 201 {
		t.Fatalf("create group: %d %s", r.Status, r.Raw)
	}
}

func serverPath(d *testenv.Daemon, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.DBforPostgreSQL/flexibleServers/%s", d.Profile().SubscriptionID, group, name)
}

// serverRaw reads a server as JSON (for pgflex's extensions such as the port).
func serverRaw(t testing.TB, d *testenv.Daemon, group, name string) map[string]any {
	t.Helper()
	r := d.ARM(t, http.MethodGet, serverPath(d, group, name)+"?api-version=2025-08-01", nil)
	if r.Status != 200 {
		t.Fatalf("get server: %d %s", r.Status, r.Raw)
	}
	return r.Body
}

func props(m map[string]any) map[string]any { return m["properties"].(map[string]any) }

// connect opens a TLS connection (certificate verified against pgflex's CA) as the administrator.
func connect(t testing.TB, d *testenv.Daemon, srv map[string]any, db string) (*pgx.Conn, error) {
	t.Helper()
	p := props(srv)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=verify-full connect_timeout=5",
		p["fullyQualifiedDomainName"], int(p["port"].(float64)), p["administratorLogin"], db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = adminPassword
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(d.Profile().CACertificate))
	cfg.TLSConfig.RootCAs = pool
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// grepTree lists the files under root that contain any needle, skipping the paths in skip.
func grepTree(t testing.TB, root string, skip []string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		for _, s := range skip {
			if path == s {
				return filepath.SkipDir
			}
		}
		if !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				hits = append(hits, path)
			}
		}
		return nil
	})
	return hits
}

func mounted(t testing.TB, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// TestServerLifecycleWithAzureSDK: create, read back, encryption at rest on disk, stop, start,
// delete and re-create — through Azure's own SDK.
func TestServerLifecycleWithAzureSDK(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg1", "eastus")
	cred, opts := d.SDK()
	servers, err := armpostgresqlflexibleservers.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	poller, err := servers.BeginCreateOrUpdate(ctx, "rg1", "pg-one", armpostgresqlflexibleservers.Server{
		Location: to.Ptr("eastus"),
		SKU:      &armpostgresqlflexibleservers.SKU{Name: to.Ptr("Standard_B1ms"), Tier: to.Ptr(armpostgresqlflexibleservers.SKUTierBurstable)},
		Properties: &armpostgresqlflexibleservers.ServerProperties{
			AdministratorLogin: to.Ptr("pgadmin"), AdministratorLoginPassword: to.Ptr(adminPassword),
			Version: to.Ptr(armpostgresqlflexibleservers.PostgresMajorVersion("15")),
			Storage: &armpostgresqlflexibleservers.Storage{StorageSizeGB: to.Ptr[int32](32)},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatalf("create: %v\n%s", err, d.Logs())
	}
	got, err := servers.Get(ctx, "rg1", "pg-one", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.State != armpostgresqlflexibleservers.ServerStateReady ||
		*got.Properties.DataEncryption.Type != armpostgresqlflexibleservers.DataEncryptionTypeSystemManaged ||
		*got.SKU.Tier != armpostgresqlflexibleservers.SKUTierBurstable || *got.Properties.Storage.StorageSizeGB != 32 {
		t.Fatalf("server = %+v %+v", *got.Properties.State, *got.Properties.DataEncryption.Type)
	}

	// Write a marker the way a user would: into a table, a temp file, the server log and WAL.
	raw := serverRaw(t, d, "rg1", "pg-one")
	conn, err := connect(t, d, raw, "postgres")
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	marker := "pgflex-marker-" + hex.EncodeToString([]byte(time.Now().Format(time.RFC3339Nano)))
	for _, q := range []string{
		"CREATE TABLE secrets (id int, v text)",
		"INSERT INTO secrets SELECT g, '" + marker + "' || g FROM generate_series(1, 20000) g",
		"SET work_mem = '64kB'",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM (SELECT v FROM secrets ORDER BY v DESC) s").Scan(&n); err != nil || n != 20000 {
		t.Fatalf("sort through a temp file: %d %v", n, err)
	}
	if _, err := conn.Exec(ctx, "SELECT '"+marker+"'::int"); err == nil {
		t.Fatal("the bad cast should fail and be logged")
	}
	conn.Close(ctx)

	// Outside the mounted view, no file holds the marker: not the ciphertext, the header, the
	// state store, nor the daemon's own logs.
	if hits := grepTree(t, d.DataDir, nil, []byte(marker)); len(hits) > 0 {
		t.Fatalf("marker in plaintext under the data directory: %v", hits)
	}
	if hits := grepTree(t, runDir, []string{filepath.Join(runDir, "mnt")}, []byte(marker)); len(hits) > 0 {
		t.Fatalf("marker in plaintext under the runtime directory: %v", hits)
	}
	if strings.Contains(d.Logs(), marker) {
		t.Fatal("marker in the daemon's log")
	}
	// Inside the mounted view it is there: in the log and in the table.
	mnt := filepath.Join(runDir, "mnt")
	if hits := grepTree(t, mnt, nil, []byte(marker)); len(hits) == 0 {
		t.Fatal("marker not found through the mount: the test wrote nothing?")
	}

	// Stop: the plaintext view is gone and connections fail.
	stop, err := servers.BeginStop(ctx, "rg1", "pg-one", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stop.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatal(err)
	}
	got, _ = servers.Get(ctx, "rg1", "pg-one", nil)
	if *got.Properties.State != armpostgresqlflexibleservers.ServerStateStopped {
		t.Fatalf("state after stop = %s", *got.Properties.State)
	}
	entries, _ := os.ReadDir(mnt)
	for _, e := range entries {
		if mounted(t, filepath.Join(mnt, e.Name())) {
			t.Fatalf("%s still mounted after stop", e.Name())
		}
	}
	if c, err := connect(t, d, raw, "postgres"); err == nil {
		c.Close(ctx)
		t.Fatal("connection succeeded to a stopped server")
	}
	start, err := servers.BeginStart(ctx, "rg1", "pg-one", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatal(err)
	}
	conn, err = connect(t, d, raw, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM secrets WHERE v LIKE $1", marker+"%").Scan(&n); err != nil || n != 20000 {
		t.Fatalf("data after start: %d %v", n, err)
	}
	conn.Close(ctx)

	// Delete: files gone, and the name can be used again.
	uid := serverDirs(t, d)
	del, err := servers.BeginDelete(ctx, "rg1", "pg-one", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatal(err)
	}
	for _, u := range uid {
		if _, err := os.Stat(filepath.Join(d.DataDir, "servers", u)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("server files left after delete: %v", err)
		}
	}
	_, err = servers.Get(ctx, "rg1", "pg-one", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 {
		t.Fatalf("get after delete: %v", err)
	}
	again, err := servers.BeginCreateOrUpdate(ctx, "rg1", "pg-one", armpostgresqlflexibleservers.Server{Location: to.Ptr("eastus"),
		Properties: &armpostgresqlflexibleservers.ServerProperties{AdministratorLogin: to.Ptr("pgadmin"), AdministratorLoginPassword: to.Ptr(adminPassword),
			Storage: &armpostgresqlflexibleservers.Storage{StorageSizeGB: to.Ptr[int32](32)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.PollUntilDone(ctx, &runtimePollOptions); err != nil {
		t.Fatalf("re-create with the same name: %v", err)
	}
	// The older SDK (2024-08-01) reads the same server.
	old, err := armpostgresqlflexibleservers4.NewServersClient(d.Profile().SubscriptionID, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	og, err := old.Get(ctx, "rg1", "pg-one", nil)
	if err != nil || *og.Properties.State != armpostgresqlflexibleservers4.ServerStateReady {
		t.Fatalf("v4 get: %v", err)
	}
}

var runtimePollOptions = azruntime.PollUntilDoneOptions{Frequency: 500 * time.Millisecond}

// serverDirs lists the server directories under the data dir.
func serverDirs(t testing.TB, d *testenv.Daemon) []string {
	entries, err := os.ReadDir(filepath.Join(d.DataDir, "servers"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
