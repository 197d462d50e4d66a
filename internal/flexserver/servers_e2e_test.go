package flexserver_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armpostgresqlflexibleservers4 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

const adminPassword = "Str0ng!Passw0rd"

// requireDataPlane skips where servers cannot run at all, saying why (and fails instead where
// every end-to-end test must run: see testkit.Require).
func requireDataPlane(t testing.TB) {
	t.Helper()
	// Servers are reached by their host names, {server}.postgres.localhost.
	testkit.Require(t, append(testkit.DataPlane, testkit.LocalhostNames)...)
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

// connect opens a TLS connection (certificate verified against pgflex's CA) as the
// administrator, as a client of the service does: to the server's fullyQualifiedDomainName on
// the daemon's PostgreSQL endpoint.
func connect(t testing.TB, d *testenv.Daemon, srv map[string]any, db string) (*pgx.Conn, error) {
	t.Helper()
	// Servers have no firewall rules at first, as on Azure: this client's address needs one.
	allowLoopback(t, d, srv["id"].(string))
	p := props(srv)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=verify-full connect_timeout=5",
		p["fullyQualifiedDomainName"], d.PostgresPort(), p["administratorLogin"], db))
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

// loopbackRule is the firewall rule the tests' helpers give servers: clients on the daemon's host
// connect from 127.0.0.1, and loopback clients need a rule as any other.
const loopbackRule = "test-loopback"

// allowLoopback sets loopbackRule on the server with resource id id, and waits for its
// operation. A server being deleted refuses (409): a test of that connects to be refused.
func allowLoopback(t testing.TB, d *testenv.Daemon, id string) {
	t.Helper()
	r := d.ARM(t, http.MethodPut, id+"/firewallRules/"+loopbackRule+"?api-version=2025-08-01",
		map[string]any{"properties": map[string]any{"startIpAddress": "127.0.0.1", "endIpAddress": "127.0.0.1"}})
	switch r.Status {
	case http.StatusAccepted:
		if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute); op["status"] != "Succeeded" {
			t.Fatalf("firewall rule on %s: %v", id, op)
		}
	case http.StatusConflict, http.StatusNotFound:
	default:
		t.Fatalf("firewall rule on %s: %d %s", id, r.Status, r.Raw)
	}
}

// ownPort is the port the server's own PostgreSQL listens on behind the endpoint (not
// published: the server says it).
func ownPort(t testing.TB, d *testenv.Daemon, srv map[string]any) int {
	t.Helper()
	conn, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var port int
	if err := conn.QueryRow(context.Background(), "SELECT current_setting('port')::int").Scan(&port); err != nil {
		t.Fatal(err)
	}
	return port
}

// burstableServer is the smallest server (Burstable B1ms, 32 GB, PostgreSQL 15) in eastus, with
// pgadmin as its administrator, as the SDK creates it.
func burstableServer() armpostgresqlflexibleservers.Server {
	return armpostgresqlflexibleservers.Server{
		Location: to.Ptr("eastus"),
		SKU:      &armpostgresqlflexibleservers.SKU{Name: to.Ptr("Standard_B1ms"), Tier: to.Ptr(armpostgresqlflexibleservers.SKUTierBurstable)},
		Properties: &armpostgresqlflexibleservers.ServerProperties{
			AdministratorLogin: to.Ptr("pgadmin"), AdministratorLoginPassword: to.Ptr(adminPassword),
			Version: to.Ptr(armpostgresqlflexibleservers.PostgresMajorVersion("15")),
			Storage: &armpostgresqlflexibleservers.Storage{StorageSizeGB: to.Ptr[int32](32)},
		},
	}
}

// grepTree lists the files under root that contain any needle, leaving out the paths in skip
// and the FUSE mounts below root (plaintext views: a scan of what lies outside them must not
// read them; root itself may be one). It fails the test on any read error but a file vanishing
// meanwhile, and when it read no file at all: an empty or wrong root cannot pass for "nothing
// found".
func grepTree(t testing.TB, root string, skip []string, needles ...[]byte) []string {
	t.Helper()
	set := testkit.Needles{}
	for i, n := range needles {
		set.Add(fmt.Sprintf("needle %d", i), n)
	}
	skip = append([]string(nil), skip...)
	for _, m := range testkit.Mounts(t) {
		if (m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.")) && strings.HasPrefix(m.Point, root+"/") {
			skip = append(skip, m.Point)
		}
	}
	res := testkit.ScanFiles(t, []string{root}, set, testkit.ScanOptions{Skip: skip})
	if res.Files == 0 {
		t.Fatalf("grepTree read no file under %s", root)
	}
	var hits []string
	for _, h := range res.Hits {
		if !slices.Contains(hits, h.Path) {
			hits = append(hits, h.Path)
		}
	}
	return hits
}

// mounted reports whether dir is a mount point.
func mounted(t testing.TB, dir string) bool {
	t.Helper()
	return testkit.Mounted(t, dir)
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
	poller, err := servers.BeginCreateOrUpdate(ctx, "rg1", "pg-one", burstableServer(), nil)
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

	// Write a marker the way a user would: into a table (and so into WAL), the server log (a
	// failed cast quotes it), and a temporary file that a sort spills while a cursor keeps it open.
	raw := serverRaw(t, d, "rg1", "pg-one")
	volUID, mnt := serverMount(t, d, runDir, raw)
	pgdata := filepath.Join(plainDir(mnt), "pgdata")
	conn, err := connect(t, d, raw, "postgres")
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	marker := uniqueMarker(t, "pgflex-marker-")
	for _, q := range []string{
		"CREATE TABLE secrets (id int, v text)",
		"INSERT INTO secrets SELECT g, '" + marker + "' || g FROM generate_series(1, 20000) g",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT '"+marker+"'::int"); err == nil {
		t.Fatal("the bad cast should fail and be logged")
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, q := range []string{"SET LOCAL work_mem = '64kB'", "DECLARE spill CURSOR FOR SELECT v FROM secrets ORDER BY v DESC"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.QueryRow(ctx, "FETCH 1 FROM spill").Scan(&first); err != nil || !strings.HasPrefix(first, marker) {
		t.Fatalf("sort through a temp file: %q %v", first, err)
	}

	// The server's TLS private key is in its data directory, inside the volume: it must not be
	// outside either.
	keyPEM, err := os.ReadFile(filepath.Join(pgdata, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatalf("server.key is not PEM")
	}
	tlsKey, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("server.key: %v", err)
	}
	needles := testkit.Needles{}.Add("marker", []byte(marker)).AddPrivateKey(t, "server TLS key", tlsKey)

	// Positive control, with the temp file still open: the same scanner, through the mount,
	// finds the marker in WAL, in the temp file and in the server log (the logging collector
	// writes asynchronously: wait for it), and the TLS key in server.key.
	var inside testkit.ScanResult
	testkit.Eventually(t, 30*time.Second, "the marker through the mount", func() error {
		inside = testkit.ScanFiles(t, []string{mnt}, needles, testkit.ScanOptions{})
		for _, where := range []string{"pg_wal", "base/pgsql_tmp", "log"} {
			if !inside.Has("marker", filepath.Join(pgdata, where)) {
				return fmt.Errorf("not in %s; found in %v", where, inside.Paths("marker"))
			}
		}
		return nil
	})
	if !hitsWithPrefix(inside, "server TLS key", filepath.Join(pgdata, "server.key")) {
		t.Fatalf("the scan does not find the TLS key in server.key: %v", inside.Hits)
	}
	t.Logf("through the mount: %d files read, marker in %d", inside.Files, len(inside.Paths("marker")))

	// Outside the mounted view, nothing holds either, while they are all there: not the
	// ciphertext, the header, the state store, the repository, the runtime directory, /tmp,
	// /var/log, nor the daemon's own log.
	// Everything written is on the disk first (fscrypt encrypts at writeback). Under fscrypt a
	// control written outside the policy, in the filesystem's root, must be found in the image:
	// the scan reads what the image holds.
	syncFS(t, mnt)
	outside := needles
	image := filepath.Join(d.DataDir, "servers", volUID, "cipher", "volume.img")
	fscrypt := volume.DetectLayer(filepath.Dir(image)) == volume.LayerFscrypt
	if fscrypt {
		control := uniqueMarker(t, "pgflex-image-control-")
		if err := os.WriteFile(filepath.Join(mnt, "control"), []byte(strings.Repeat(control, 64)), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(mnt, "control"))
		syncFS(t, mnt)
		outside = testkit.Needles{"image control": []byte(control)}
		for k, v := range needles {
			outside[k] = v
		}
	}
	out := scanOutside(t, d, runDir, outside)
	if fscrypt {
		if got := out.Paths("image control"); len(got) != 1 || got[0] != image {
			t.Fatalf("positive control: the control written outside the policy was found in %v, want the image %s", got, image)
		}
		out.Hits = slices.DeleteFunc(out.Hits, func(h testkit.Hit) bool { return h.Needle == "image control" })
	}
	if len(out.Hits) > 0 {
		t.Fatalf("in plaintext outside the mount: %v", out.Hits)
	}
	if hits := daemonLogHits(t, d, needles, "pg-one"); len(hits) > 0 {
		t.Fatalf("in the daemon's log: %v", hits)
	}
	// The temp file was there all along (so its absence outside means something).
	if tmp, _ := filepath.Glob(filepath.Join(pgdata, "base", "pgsql_tmp", "pgsql_tmp*")); len(tmp) == 0 {
		t.Fatal("the sort's temp file was gone before the scan ended")
	}
	if _, err := tx.Exec(ctx, "CLOSE spill"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

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
	if left := testkit.MountsUnder(t, filepath.Join(runDir, "mnt")); len(left) > 0 {
		t.Fatalf("still mounted after stop: %v", left)
	}
	// The shutdown (a checkpoint, the last log lines) spilled nothing either.
	if out := scanOutside(t, d, runDir, needles); len(out.Hits) > 0 {
		t.Fatalf("in plaintext outside the volume after stop: %v", out.Hits)
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
	var n int
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

// syncFS writes the filesystem of dir to its disk.
func syncFS(t testing.TB, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatalf("syncfs %s: %v", dir, err)
	}
}
