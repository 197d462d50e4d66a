package flexserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const gib = 1 << 30

// storageDaemon starts a daemon whose servers get volumes of their own (fscrypt) and whose
// storage monitor measures every 200 ms.
func storageDaemon(t testing.TB) (*testenv.Daemon, string) {
	runDir := testenv.RuntimeDir(t)
	return testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--volume-layer", "fscrypt",
		"--storage-check-interval", "200ms"}}), runDir
}

// volumeDataDir finds a running server's plaintext data directory (the directory holding
// pgdata, inside its volume's filesystem) by its port.
func volumeDataDir(t testing.TB, d *testenv.Daemon, runDir string, srv map[string]any) string {
	t.Helper()
	port := ownPort(t, d, srv)
	var confs []string
	for _, pattern := range []string{"mnt/*/pgdata/postgresql.conf", "mnt/*/*/pgdata/postgresql.conf"} {
		m, err := filepath.Glob(filepath.Join(runDir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		confs = append(confs, m...)
	}
	for _, c := range confs {
		if b, err := os.ReadFile(c); err == nil && bytes.Contains(b, []byte(fmt.Sprintf("\nport = %d\n", port))) {
			return filepath.Dir(filepath.Dir(c))
		}
	}
	t.Fatalf("no volume of the server on port %d under %s", port, runDir)
	return ""
}

// statfs is the filesystem holding dir: its size and what a non-root user can still write.
func statfs(t testing.TB, dir string) (total, avail uint64) {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return s.Blocks * uint64(s.Bsize), s.Bavail * uint64(s.Bsize)
}

// fill allocates a file in dir until the filesystem is pct % used (counting what PostgreSQL
// can no longer write). fallocate makes unwritten extents: the volume's filesystem counts them
// as used at once, while its image on the host stays sparse.
func fill(t testing.TB, dir string, pct float64) string {
	t.Helper()
	total, avail := statfs(t, dir)
	want := uint64(pct / 100 * float64(total))
	used := total - avail
	if want <= used {
		t.Fatalf("%s is already %.1f%% used", dir, 100*float64(used)/float64(total))
	}
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(want-used)); err != nil {
		t.Fatalf("fallocate %d bytes in %s: %v", want-used, dir, err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	total, avail = statfs(t, dir)
	t.Logf("%s: %.1f%% used of %.1f GiB", dir, 100*float64(total-avail)/float64(total), float64(total)/gib)
	return f.Name()
}

// onlineGrowth: ext4 grows online here (EXT4_IOC_RESIZE_FS takes CAP_SYS_RESOURCE, which some
// hosts withhold even from root; the daemon then grows a server's storage with a restart).
func onlineGrowth(t testing.TB) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return false
}

// storageProps is properties.storage of a server.
func storageProps(t testing.TB, d *testenv.Daemon, group, name string) map[string]any {
	t.Helper()
	return props(serverRaw(t, d, group, name))["storage"].(map[string]any)
}

// patchStorage PATCHes properties.storage and returns the answer (202 with an operation, or
// the refusal).
func patchStorage(t testing.TB, d *testenv.Daemon, group, name string, storage map[string]any) testenv.ARMResponse {
	t.Helper()
	return d.ARM(t, http.MethodPatch, serverPath(d, group, name)+"?api-version=2025-08-01",
		map[string]any{"properties": map[string]any{"storage": storage}})
}

// insertErr inserts one row into table t as the administrator and returns PostgreSQL's answer.
func insertErr(t testing.TB, d *testenv.Daemon, srv map[string]any) error {
	t.Helper()
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), "INSERT INTO t VALUES (now())")
	return err
}

// isReadOnlyError: PostgreSQL refused a write in a read-only transaction (SQLSTATE 25006).
func isReadOnlyError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// storageMetric reads a server's storage metric (its maximum over the last 10 minutes).
func storageMetric(t testing.TB, d *testenv.Daemon, srv map[string]any, name string) (float64, bool) {
	t.Helper()
	now := time.Now().UTC()
	q := url.Values{"api-version": {"2023-10-01"}, "metricnames": {name}, "aggregation": {"Maximum"}, "interval": {"FULL"},
		"timespan": {now.Add(-10*time.Minute).Format(time.RFC3339) + "/" + now.Add(time.Minute).Format(time.RFC3339)}}
	r := d.ARM(t, http.MethodGet, srv["id"].(string)+"/providers/Microsoft.Insights/metrics?"+q.Encode(), nil)
	if r.Status != 200 {
		t.Fatalf("metrics: %d %s", r.Status, r.Raw)
	}
	v := r.Body["value"].([]any)[0].(map[string]any)
	if n := v["name"].(map[string]any)["value"]; n != name {
		t.Fatalf("metric %v, want %s", n, name)
	}
	data := v["timeseries"].([]any)[0].(map[string]any)["data"].([]any)
	max, ok := data[0].(map[string]any)["maximum"].(float64)
	return max, ok
}

// TestStorageAutoGrowAndResize: a server's volume is a filesystem of storageSizeGB GiB; storage
// autogrow grows it near full, a PATCH grows it with the server running (online, or with a
// restart where the host withholds online growth), a smaller size is refused in Azure's words; show and the metrics say how much is used.
func TestStorageAutoGrowAndResize(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, runDir := storageDaemon(t)
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "grows", map[string]any{"properties": map[string]any{
		"storage": map[string]any{"storageSizeGB": 32, "autoGrow": "Enabled"}}})
	dir := volumeDataDir(t, d, runDir, srv)
	if total, _ := statfs(t, dir); total > 32*gib || total < 30*gib {
		t.Fatalf("a 32 GiB server's filesystem has %.2f GiB", float64(total)/gib)
	}
	sqlExec(t, d, srv, "CREATE TABLE t (at timestamptz)", "INSERT INTO t SELECT now() FROM generate_series(1, 1000)")

	// show and the metrics say what is used.
	testkit.Eventually(t, time.Minute, "storage used in show", func() error {
		st := storageProps(t, d, "rg", "grows")
		if used, _ := st["storageUsedBytes"].(float64); used < 16<<20 || st["storagePercent"].(float64) > 10 || st["isReadOnly"] != false {
			return fmt.Errorf("storage %v", st)
		}
		return nil
	})
	if pct, ok := storageMetric(t, d, srv, "storage_percent"); !ok || pct <= 0 || pct > 10 {
		t.Fatalf("storage_percent of a new server: %v (%v)", pct, ok)
	}

	// At 90 % used, autogrow doubles the storage online.
	fill(t, dir, 90)
	testkit.Eventually(t, time.Minute, "autogrow to 64 GiB", func() error {
		p := props(serverRaw(t, d, "rg", "grows"))
		if st := p["storage"].(map[string]any); st["storageSizeGB"] != 64.0 || p["state"] != "Ready" {
			return fmt.Errorf("%v, storage %v", p["state"], st)
		}
		var s unix.Statfs_t
		if err := unix.Statfs(dir, &s); err != nil {
			return err // the server may be mounting its volume again
		}
		if total := s.Blocks * uint64(s.Bsize); total < 60*gib || total > 64*gib {
			return fmt.Errorf("the filesystem has %.2f GiB", float64(total)/gib)
		}
		return nil
	})
	waitActivity(t, d, "storageAutoGrow", func(e activityEvent) bool {
		return strings.EqualFold(e.ResourceID, srv["id"].(string)) && e.Properties["storageSizeGB"] == "64"
	})
	if err := insertErr(t, d, srv); err != nil {
		t.Fatalf("insert after autogrow: %v", err)
	}

	// A PATCH to a larger size grows the filesystem online: the same postmaster serves on.
	before := sqlValues(t, d, srv, "SELECT pg_postmaster_start_time()::text")[0]
	r := patchStorage(t, d, "rg", "grows", map[string]any{"storageSizeGB": 128})
	if r.Status != http.StatusAccepted {
		t.Fatalf("grow to 128 GiB: %d %s", r.Status, r.Raw)
	}
	waitSucceeded(t, d, "grow to 128 GiB", r.Header.Get("Azure-AsyncOperation"))
	if total, _ := statfs(t, dir); total < 120*gib || total > 128*gib {
		t.Fatalf("after growing to 128 GiB the filesystem has %.2f GiB", float64(total)/gib)
	}
	after := sqlValues(t, d, srv, "SELECT pg_postmaster_start_time()::text")[0]
	switch {
	case onlineGrowth(t) && after != before:
		t.Errorf("PostgreSQL restarted for the grow: started %s, then %s", before, after)
	case !onlineGrowth(t) && !strings.Contains(d.Logs(), `msg="server storage grows with a restart" server=grows size_gb=128`):
		t.Errorf("this host withholds CAP_SYS_RESOURCE, yet the daemon did not say it grew the storage with a restart")
	}
	if n := sqlValues(t, d, srv, "SELECT count(*)::text FROM t")[0]; n != "1001" {
		t.Errorf("after the grows, table t has %s rows, want 1001", n)
	}

	// A smaller size is refused, in Azure's words, and changes nothing.
	r = patchStorage(t, d, "rg", "grows", map[string]any{"storageSizeGB": 64})
	if r.Status != http.StatusBadRequest || !strings.Contains(r.ErrorMessage(), "Updating storage cannot be smaller than the original storage size 128 GiB.") {
		t.Fatalf("shrink to 64 GiB: %d %s", r.Status, r.Raw)
	}
	if st := storageProps(t, d, "rg", "grows"); st["storageSizeGB"] != 128.0 {
		t.Errorf("after a refused shrink: %v", st)
	}
	if total, _ := statfs(t, dir); total < 120*gib {
		t.Errorf("after a refused shrink the filesystem has %.2f GiB", float64(total)/gib)
	}
	// A size Azure does not offer is refused too.
	if r = patchStorage(t, d, "rg", "grows", map[string]any{"storageSizeGB": 200}); r.Status != http.StatusBadRequest {
		t.Errorf("grow to 200 GiB: %d %s", r.Status, r.Raw)
	}

	// A stopped server grows too: its filesystem has the new size when it starts.
	serverAction(t, d, "rg", "stop", "grows")
	r = patchStorage(t, d, "rg", "grows", map[string]any{"storageSizeGB": 256})
	if r.Status != http.StatusAccepted {
		t.Fatalf("grow a stopped server to 256 GiB: %d %s", r.Status, r.Raw)
	}
	waitSucceeded(t, d, "grow a stopped server to 256 GiB", r.Header.Get("Azure-AsyncOperation"))
	serverAction(t, d, "rg", "start", "grows")
	if total, _ := statfs(t, dir); total < 240*gib || total > 256*gib {
		t.Fatalf("after growing the stopped server to 256 GiB the filesystem has %.2f GiB", float64(total)/gib)
	}
	if n := sqlValues(t, d, srv, "SELECT count(*)::text FROM t")[0]; n != "1001" {
		t.Errorf("after the grows, table t has %s rows, want 1001", n)
	}
}

// TestStorageReadOnlyWhenFull: without autogrow, a server whose storage is 95 % used turns
// read-only and says so, stays read-only across a restart of the daemon, lets a session that
// asks for it delete data, and is writable again once space is freed.
func TestStorageReadOnlyWhenFull(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, runDir := storageDaemon(t)
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "fills", nil)
	dir := volumeDataDir(t, d, runDir, srv)
	sqlExec(t, d, srv, "CREATE TABLE t (at timestamptz)", "INSERT INTO t VALUES (now())")

	filler := fill(t, dir, 96)
	testkit.Eventually(t, time.Minute, "the server to be read-only", func() error {
		p := props(serverRaw(t, d, "rg", "fills"))
		st := p["storage"].(map[string]any)
		reason, _ := p["stateReason"].(string)
		if st["isReadOnly"] != true || !strings.Contains(reason, "read-only") || p["state"] != "Ready" {
			return fmt.Errorf("state %v, reason %q, storage %v", p["state"], reason, st)
		}
		return nil
	})
	// PostgreSQL reads its configuration again when the postmaster handles the reload's signal.
	testkit.Eventually(t, 10*time.Second, "PostgreSQL's read-only error", func() error {
		if err := insertErr(t, d, srv); !isReadOnlyError(err) {
			return fmt.Errorf("insert into a read-only server: %v", err)
		}
		return nil
	})
	waitActivity(t, d, "storageReadOnly", func(e activityEvent) bool {
		return strings.EqualFold(e.ResourceID, srv["id"].(string)) && e.Level == "Critical"
	})
	if pct, ok := storageMetric(t, d, srv, "storage_percent"); !ok || pct < 95 {
		t.Errorf("storage_percent of a full server: %v (%v)", pct, ok)
	}
	if st := storageProps(t, d, "rg", "fills"); st["storageSizeGB"] != 32.0 {
		t.Errorf("a server without autogrow grew: %v", st)
	}

	// A restarted daemon finds it as it was: still read-only.
	d.Restart()
	waitConnect(t, d, srv)
	if err := insertErr(t, d, srv); !isReadOnlyError(err) {
		t.Fatalf("insert after a restart of the daemon: %v, want PostgreSQL's read-only error", err)
	}

	// A session that asks for it may still delete data.
	sqlExec(t, d, srv, "SET default_transaction_read_only = off", "DELETE FROM t")

	// Space freed: writable again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the server to be writable again", func() error {
		if err := insertErr(t, d, srv); err != nil {
			return err
		}
		if st := storageProps(t, d, "rg", "fills"); st["isReadOnly"] != false {
			return fmt.Errorf("storage %v", st)
		}
		return nil
	})
	if reason, _ := props(serverRaw(t, d, "rg", "fills"))["stateReason"].(string); reason != "" {
		t.Errorf("a writable server's stateReason: %q", reason)
	}
	waitActivity(t, d, "storageReadWrite", func(e activityEvent) bool {
		return strings.EqualFold(e.ResourceID, srv["id"].(string))
	})
}

// TestStorageOnHostFilesystem: a gocryptfs server has no filesystem of its own: its usage is
// what its ciphertext takes, against storageSizeGB, which a PATCH raises without touching the
// running server.
func TestStorageOnHostFilesystem(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--volume-layer", "gocryptfs",
		"--storage-check-interval", "200ms"}})
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "shares", nil)
	// A new cluster's files (WAL segments included) take tens of MiB, far from the host's usage.
	used := func(sizeGB float64) float64 {
		var u float64
		testkit.Eventually(t, time.Minute, "storage used in show", func() error {
			st := storageProps(t, d, "rg", "shares")
			u, _ = st["storageUsedBytes"].(float64)
			free, _ := st["storageFreeBytes"].(float64)
			if u < 16<<20 || u > 1<<30 || free != sizeGB*gib-u || st["storageSizeGB"] != sizeGB {
				return fmt.Errorf("storage %v", st)
			}
			return nil
		})
		return u
	}
	used(32)
	sqlExec(t, d, srv, "CREATE TABLE t AS SELECT g, repeat('x', 1000) AS v FROM generate_series(1, 100000) g")
	before := sqlValues(t, d, srv, "SELECT pg_postmaster_start_time()::text")[0]
	r := patchStorage(t, d, "rg", "shares", map[string]any{"storageSizeGB": 64})
	if r.Status != http.StatusAccepted {
		t.Fatalf("grow to 64 GiB: %d %s", r.Status, r.Raw)
	}
	waitSucceeded(t, d, "grow to 64 GiB", r.Header.Get("Azure-AsyncOperation"))
	// The table's 100 MB are counted, against the new limit.
	if u := used(64); u < 100<<20 {
		t.Errorf("after writing 100 MB the server uses %.0f MiB", u/(1<<20))
	}
	if after := sqlValues(t, d, srv, "SELECT pg_postmaster_start_time()::text")[0]; after != before {
		t.Errorf("raising a gocryptfs server's limit restarted it: started %s, then %s", before, after)
	}
}
