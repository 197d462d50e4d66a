package flexserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// Issue 7's acceptance suite at the provider level: continuous backups into encrypted
// pgBackRest repositories, the backups resource, point-in-time restore, geo-restore, revival of
// a dropped server, and the switch between service- and customer-managed keys that only a
// restore allows. Each test runs one real daemon whose servers run real PostgreSQL and archive
// into real repositories; it drives the ARM API as a client would.

const backupsAPI = "?api-version=2025-08-01"

// pointInTime renders a restore time as a client sends it.
func pointInTime(at time.Time) string { return at.UTC().Format(time.RFC3339) }

// timeProp parses an RFC 3339 property.
func timeProp(t testing.TB, m map[string]any, key string) time.Time {
	t.Helper()
	s, _ := m[key].(string)
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s = %q is not an RFC 3339 time: %v (in %v)", key, m[key], err, m)
	}
	return at
}

// earliestRestore is the server's properties.backup.earliestRestoreDate.
func earliestRestore(t testing.TB, srv map[string]any) time.Time {
	t.Helper()
	b, ok := props(srv)["backup"].(map[string]any)
	if !ok {
		t.Fatalf("server has no properties.backup: %v", props(srv))
	}
	return timeProp(t, b, "earliestRestoreDate")
}

// restoreBody is a server PUT with createMode mode from the server srcID; pit empty sends no
// pointInTimeUTC; extra merges like createServer's (properties merged key by key).
func restoreBody(mode, srcID, pit string, extra map[string]any) map[string]any {
	p := map[string]any{"createMode": mode, "sourceServerResourceId": srcID}
	if pit != "" {
		p["pointInTimeUTC"] = pit
	}
	body := map[string]any{"properties": p}
	for k, v := range extra {
		if k == "properties" {
			for pk, pv := range v.(map[string]any) {
				p[pk] = pv
			}
			continue
		}
		body[k] = v
	}
	return body
}

// restoreServer sends a restore and waits for it: 202, an operation that succeeds, a Ready
// server.
func restoreServer(t testing.TB, d *testenv.Daemon, group, name string, body map[string]any) map[string]any {
	t.Helper()
	began := time.Now()
	r := d.ARM(t, http.MethodPut, serverPath(d, group, name)+backupsAPI, body)
	if r.Status != http.StatusAccepted || r.Header.Get("Azure-AsyncOperation") == "" {
		t.Fatalf("restore %s: %d %s", name, r.Status, r.Raw)
	}
	if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 5*time.Minute); op["status"] != "Succeeded" {
		t.Fatalf("restore %s: %v\n%s", name, op, tail(d.Logs(), 60))
	}
	srv := serverRaw(t, d, group, name)
	if props(srv)["state"] != "Ready" {
		t.Fatalf("restored server %s is %v", name, props(srv)["state"])
	}
	t.Logf("restore %s (%s): %s", name, props(body)["createMode"], time.Since(began).Round(time.Millisecond))
	return srv
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// world is what a refused restore must leave as it was: the servers of the subscription, the
// server directories, and the backup repositories of every region.
func world(t testing.TB, d *testenv.Daemon) string {
	t.Helper()
	var names []string
	for next := "/subscriptions/" + d.Profile().SubscriptionID + "/providers/Microsoft.DBforPostgreSQL/flexibleServers" + backupsAPI; next != ""; {
		r := d.ARM(t, http.MethodGet, next, nil)
		if r.Status != 200 {
			t.Fatalf("list servers: %d %s", r.Status, r.Raw)
		}
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Value {
			names = append(names, strings.ToLower(v.ID))
		}
		next = page.NextLink
	}
	names = append(names, serverDirs(t, d)...)
	repos, _ := filepath.Glob(filepath.Join(d.DataDir, "regions", "*", "backups", "*"))
	names = append(names, repos...)
	slices.Sort(names)
	return strings.Join(names, "\n")
}

// refused sends a restore that must be refused at once with status and code (empty: any), and
// checks that it created nothing. It returns the answer for the caller's checks of the message.
func refused(t testing.TB, d *testenv.Daemon, group, name string, body map[string]any, status int, code string) testenv.ARMResponse {
	t.Helper()
	before := world(t, d)
	r := d.ARM(t, http.MethodPut, serverPath(d, group, name)+backupsAPI, body)
	if r.Status != status || r.ErrorCode() == "" || (code != "" && r.ErrorCode() != code) || r.ErrorMessage() == "" {
		t.Fatalf("%s into %s/%s: %d %s, want %d %s", props(body)["createMode"], group, name, r.Status, r.Raw, status, code)
	}
	if after := world(t, d); after != before {
		t.Fatalf("a refused restore changed the world:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	return r
}

// gone checks that a server does not exist.
func gone(t testing.TB, d *testenv.Daemon, group, name string) {
	t.Helper()
	if r := d.ARM(t, http.MethodGet, serverPath(d, group, name)+backupsAPI, nil); r.Status != http.StatusNotFound {
		t.Fatalf("server %s/%s after a refused restore: %d %s", group, name, r.Status, r.Raw)
	}
}

func backupPath(d *testenv.Daemon, group, server, backup string) string {
	return serverPath(d, group, server) + "/backups/" + backup
}

// listBackups reads the server's backups, every page.
func listBackups(t testing.TB, d *testenv.Daemon, group, server string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for next := serverPath(d, group, server) + "/backups" + backupsAPI; next != ""; {
		r := d.ARM(t, http.MethodGet, next, nil)
		if r.Status != 200 {
			t.Fatalf("list backups of %s: %d %s", server, r.Status, r.Raw)
		}
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"nextLink"`
		}
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Value...)
		next = page.NextLink
	}
	return out
}

func backupNames(list []map[string]any) []string {
	var out []string
	for _, b := range list {
		n, _ := b["name"].(string)
		out = append(out, n)
	}
	return out
}

// automaticBackups are the backups of the list that pgflex took itself.
func automaticBackups(t testing.TB, list []map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, b := range list {
		if p, _ := b["properties"].(map[string]any); p["source"] == "Automatic" {
			out = append(out, b)
		}
	}
	return out
}

// checkBackup checks the shape of one backup of server: id, name, type, properties.
func checkBackup(t testing.TB, b map[string]any, server, name, backupType, source string) time.Time {
	t.Helper()
	p, _ := b["properties"].(map[string]any)
	id, _ := b["id"].(string)
	if b["name"] != name || b["type"] != "Microsoft.DBforPostgreSQL/flexibleServers/backups" ||
		!strings.HasSuffix(strings.ToLower(id), strings.ToLower("/flexibleServers/"+server+"/backups/"+name)) ||
		p["backupType"] != backupType || p["source"] != source {
		t.Fatalf("backup %s of %s: %v; want backupType %s, source %s", name, server, b, backupType, source)
	}
	return timeProp(t, p, "completedTime")
}

// takeBackup takes an on-demand backup (PUT, long-running) and returns the backup's GET.
func takeBackup(t testing.TB, d *testenv.Daemon, group, server, name string) map[string]any {
	t.Helper()
	began := time.Now()
	r := d.ARM(t, http.MethodPut, backupPath(d, group, server, name)+backupsAPI, nil)
	if r.Status != http.StatusAccepted || r.Header.Get("Azure-AsyncOperation") == "" {
		t.Fatalf("on-demand backup %s: %d %s", name, r.Status, r.Raw)
	}
	if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 5*time.Minute); op["status"] != "Succeeded" {
		t.Fatalf("on-demand backup %s: %v\n%s", name, op, tail(d.Logs(), 60))
	}
	g := d.ARM(t, http.MethodGet, backupPath(d, group, server, name)+backupsAPI, nil)
	if g.Status != 200 {
		t.Fatalf("get backup %s after it succeeded: %d %s", name, g.Status, g.Raw)
	}
	t.Logf("on-demand backup %s of %s: %s", name, server, time.Since(began).Round(time.Millisecond))
	return g.Body
}

// sqlExec runs statements on a server as its administrator.
func sqlExec(t testing.TB, d *testenv.Daemon, srv map[string]any, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatalf("connect to %v: %v", srv["name"], err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s on %v: %v", s, srv["name"], err)
		}
	}
}

// sqlValues runs a query whose rows are one text column.
func sqlValues(t testing.TB, d *testenv.Daemon, srv map[string]any, query string, args ...any) []string {
	t.Helper()
	ctx := context.Background()
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatalf("connect to %v: %v", srv["name"], err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, query, args...)
	if err != nil {
		t.Fatalf("%s on %v: %v", query, srv["name"], err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s on %v: %v", query, srv["name"], err)
	}
	return out
}

// newMarker is a string that appears nowhere unless a test wrote it.
func newMarker(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pgflex-backup-marker-" + hex.EncodeToString(b)
}

// writeSecret writes 1000 rows carrying marker into table secret.
func writeSecret(t testing.TB, d *testenv.Daemon, srv map[string]any, marker string) {
	t.Helper()
	sqlExec(t, d, srv, "CREATE TABLE secret (v text)",
		"INSERT INTO secret SELECT '"+marker+"-' || g FROM generate_series(1, 1000) g")
}

// secretRows counts the rows of table secret carrying marker.
func secretRows(t testing.TB, d *testenv.Daemon, srv map[string]any, marker string) string {
	t.Helper()
	v := sqlValues(t, d, srv, "SELECT count(*)::text FROM secret WHERE v LIKE $1", marker+"-%")
	return strings.Join(v, ",")
}

// newDir is the one entry of after that before lacks.
func newDir(t testing.TB, before, after []string) string {
	t.Helper()
	added := newEntries(before, after)
	if len(added) != 1 {
		t.Fatalf("expected one new server directory, got %v (before %v)", added, before)
	}
	return added[0]
}

func repoDir(d *testenv.Daemon, region, uid string) string {
	return filepath.Join(d.DataDir, "regions", region, "backups", uid)
}

var walSegment = regexp.MustCompile(`^[0-9A-F]{24}`)

// checkEncryptedRepository checks a pgBackRest repository: it holds archived WAL and a backup
// manifest, and every file pgBackRest wrote into it begins with the header of its aes-256-cbc
// cipher (OpenSSL's "Salted__"): an unencrypted repository, lz4-compressed, would not.
func checkEncryptedRepository(t testing.TB, dir string) {
	t.Helper()
	var files, wal, manifests int
	var plain []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !e.Type().IsRegular() || !(strings.HasPrefix(rel, "archive/") || strings.HasPrefix(rel, "backup/")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		files++
		if !bytes.HasPrefix(b, []byte("Salted__")) {
			plain = append(plain, rel)
		}
		switch {
		case strings.HasPrefix(rel, "archive/") && walSegment.MatchString(e.Name()):
			wal++
		case strings.HasPrefix(rel, "backup/") && strings.HasPrefix(e.Name(), "backup.manifest"):
			manifests++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("repository %s: %v", dir, err)
	}
	if wal == 0 || manifests == 0 {
		t.Fatalf("repository %s holds %d archived WAL segments and %d backup manifests among %d files: nothing was backed up there", dir, wal, manifests, files)
	}
	if len(plain) > 0 {
		t.Fatalf("repository %s: files not encrypted (no aes-256-cbc header): %v", dir, plain)
	}
	t.Logf("repository %s: %d encrypted files, %d WAL segments, %d manifests", dir, files, wal, manifests)
}

// TestBackupsAndPointInTimeRestore is issue 7's acceptance on one service-managed-key source:
// the automatic backup and earliestRestoreDate, the backups resource, a marker in no
// repository file, a point-in-time restore between two writes, the refusals that create
// nothing, and the revival of the deleted source into a customer-managed-key server.
func TestBackupsAndPointInTimeRestore(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	began := time.Now()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	createGroup(t, d, "rg2", "eastus")
	k := newKMS(t, d, "rg", "kvrestore", false)
	kid := k.createKey("restorekey")
	id := k.createIdentity("restore-id")
	k.grant(id.principal)

	createStart := time.Now()
	src := createServer(t, d, "rg", "bk-src", nil)
	createDone := time.Now()
	t.Logf("create with its initial backup: %s", createDone.Sub(createStart).Round(time.Millisecond))
	srcID := src["id"].(string)
	dirs := serverDirs(t, d)
	if len(dirs) != 1 {
		t.Fatalf("server directories: %v", dirs)
	}
	uid := dirs[0]
	earliest := earliestRestore(t, src)
	marker := newMarker(t)

	ok := t.Run("automatic backup and earliestRestoreDate", func(t *testing.T) {
		// Never before the server existed; not after its create finished (the initial backup is
		// part of the create), give or take pgBackRest's whole seconds.
		if earliest.Before(createStart.Truncate(time.Second)) || earliest.After(createDone.Add(2*time.Second)) {
			t.Fatalf("earliestRestoreDate %s, want within the create [%s, %s]", earliest, createStart, createDone)
		}
		list := listBackups(t, d, "rg", "bk-src")
		auto := automaticBackups(t, list)
		if len(auto) != 1 {
			t.Fatalf("backups after create: %v, want one automatic backup", list)
		}
		name := auto[0]["name"].(string)
		if !strings.HasPrefix(name, "backup_") {
			t.Fatalf("automatic backup named %q, want backup_...", name)
		}
		completed := checkBackup(t, auto[0], "bk-src", name, "Full", "Automatic")
		if completed.Before(createStart.Truncate(time.Second)) || completed.After(createDone.Add(time.Second)) {
			t.Fatalf("automatic backup completed %s, outside the create [%s, %s]", completed, createStart, createDone)
		}
		g := d.ARM(t, http.MethodGet, backupPath(d, "rg", "bk-src", name)+backupsAPI, nil)
		if g.Status != 200 {
			t.Fatalf("get %s: %d %s", name, g.Status, g.Raw)
		}
		checkBackup(t, g.Body, "bk-src", name, "Full", "Automatic")
		// Automatic backups are the service's: the customer cannot delete them.
		if r := d.ARM(t, http.MethodDelete, backupPath(d, "rg", "bk-src", name)+backupsAPI, nil); r.Status != http.StatusBadRequest || r.ErrorCode() == "" {
			t.Fatalf("delete of the automatic backup: %d %s", r.Status, r.Raw)
		}
		if got := backupNames(listBackups(t, d, "rg", "bk-src")); !slices.Contains(got, name) {
			t.Fatalf("the automatic backup is gone after a refused delete: %v", got)
		}
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("on-demand backup, marker in no repository file", func(t *testing.T) {
		writeSecret(t, d, src, marker)
		before := time.Now()
		b := takeBackup(t, d, "rg", "bk-src", "ondemand-1")
		completed := checkBackup(t, b, "bk-src", "ondemand-1", "Customer On-Demand", "Customer")
		if completed.Before(before.Truncate(time.Second)) || completed.After(time.Now().Add(time.Second)) {
			t.Fatalf("on-demand backup completed %s, not during its operation (from %s)", completed, before)
		}
		automatic := backupNames(automaticBackups(t, listBackups(t, d, "rg", "bk-src")))
		if got := backupNames(listBackups(t, d, "rg", "bk-src")); len(automatic) == 0 || !slices.Contains(got, automatic[0]) || !slices.Contains(got, "ondemand-1") {
			t.Fatalf("backups listed: %v, want the automatic one and ondemand-1", got)
		}
		if r := d.ARM(t, http.MethodPut, backupPath(d, "rg", "bk-src", "ondemand-1")+backupsAPI, nil); r.Status != http.StatusConflict {
			t.Fatalf("a second backup named ondemand-1: %d %s", r.Status, r.Raw)
		}
		if r := d.ARM(t, http.MethodGet, backupPath(d, "rg", "bk-src", "no-such-backup")+backupsAPI, nil); r.Status != http.StatusNotFound {
			t.Fatalf("get of a backup that does not exist: %d %s", r.Status, r.Raw)
		}

		// The backup holds the marker's table and forced its WAL into the archive: repository
		// 1 has both, encrypted; no repository in the paired region (geo-redundancy is off).
		checkEncryptedRepository(t, repoDir(d, "eastus", uid))
		if _, err := os.Stat(repoDir(d, "westus", uid)); err == nil {
			t.Fatalf("a repository in the paired region for a server without geo-redundant backup")
		}
		if hits := grepTree(t, filepath.Join(d.DataDir, "regions"), nil, []byte(marker)); len(hits) > 0 {
			t.Fatalf("marker in plaintext in backup files: %v", hits)
		}
		if strings.Contains(d.Logs(), marker) {
			t.Fatal("marker in the daemon's log")
		}

		// Delete: gone from GET and from the list.
		r := d.ARM(t, http.MethodDelete, backupPath(d, "rg", "bk-src", "ondemand-1")+backupsAPI, nil)
		switch r.Status {
		case http.StatusAccepted:
			if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 2*time.Minute); op["status"] != "Succeeded" {
				t.Fatalf("delete ondemand-1: %v", op)
			}
		case http.StatusOK, http.StatusNoContent:
		default:
			t.Fatalf("delete ondemand-1: %d %s", r.Status, r.Raw)
		}
		if r := d.ARM(t, http.MethodGet, backupPath(d, "rg", "bk-src", "ondemand-1")+backupsAPI, nil); r.Status != http.StatusNotFound {
			t.Fatalf("get of a deleted backup: %d %s", r.Status, r.Raw)
		}
		// (Deleting the newest backup may add an automatic one in its place: not checked.)
		if got := backupNames(listBackups(t, d, "rg", "bk-src")); slices.Contains(got, "ondemand-1") || !slices.Contains(got, automatic[0]) {
			t.Fatalf("backups after the delete: %v, want %s and not ondemand-1", got, automatic[0])
		}
	})
	if !ok {
		t.FailNow()
	}

	var pitr map[string]any
	ok = t.Run("point-in-time restore: rows before T, not after", func(t *testing.T) {
		// Rows A, the time T, rows B; T in whole seconds, a second clear of both writes.
		for time.Now().Before(earliest.Add(time.Second)) {
			time.Sleep(100 * time.Millisecond)
		}
		sqlExec(t, d, src, "CREATE TABLE rows (v text)", "INSERT INTO rows VALUES ('A1'), ('A2')")
		time.Sleep(1500 * time.Millisecond)
		target := time.Now().UTC().Truncate(time.Second)
		time.Sleep(time.Until(target.Add(1500 * time.Millisecond)))
		sqlExec(t, d, src, "INSERT INTO rows VALUES ('B1')")

		before := serverDirs(t, d)
		restoreStart := time.Now()
		// No location: the source's is the default.
		pitr = restoreServer(t, d, "rg", "bk-pitr", restoreBody("PointInTimeRestore", srcID, pointInTime(target), nil))
		p, sp := props(pitr), props(src)
		if pitr["location"] != "eastus" || !strings.EqualFold(fmt.Sprint(p["sourceServerResourceId"]), srcID) ||
			p["version"] != sp["version"] || p["administratorLogin"] != sp["administratorLogin"] ||
			fmt.Sprint(pitr["sku"]) != fmt.Sprint(src["sku"]) || fmt.Sprint(p["storage"]) != fmt.Sprint(sp["storage"]) {
			t.Fatalf("restored server %v\nsource %v", pitr, src)
		}
		if enc := p["dataEncryption"].(map[string]any); enc["type"] != "SystemManaged" {
			t.Fatalf("restored server's dataEncryption: %v", enc)
		}
		if got := sqlValues(t, d, pitr, "SELECT v FROM rows ORDER BY v"); strings.Join(got, ",") != "A1,A2" {
			t.Fatalf("restored to %s: rows %v, want A1,A2 (written before) and not B1 (after)", target, got)
		}
		if n := secretRows(t, d, pitr, marker); n != "1000" {
			t.Fatalf("restored server: %s marker rows, want 1000", n)
		}
		// The new server is a server of its own: its own directory, repository and automatic
		// backup, and an earliest restore date of its own.
		nuid := newDir(t, before, serverDirs(t, d))
		if e := earliestRestore(t, pitr); e.Before(restoreStart.Truncate(time.Second)) {
			t.Fatalf("restored server's earliestRestoreDate %s is before it was created (%s)", e, restoreStart)
		}
		if auto := automaticBackups(t, listBackups(t, d, "rg", "bk-pitr")); len(auto) != 1 {
			t.Fatalf("restored server's automatic backups: %v", auto)
		}
		if _, err := os.Stat(repoDir(d, "eastus", nuid)); err != nil {
			t.Fatalf("restored server has no repository of its own: %v", err)
		}
		// The source is unchanged.
		s := serverRaw(t, d, "rg", "bk-src")
		if props(s)["state"] != "Ready" || props(s)["sourceServerResourceId"] != nil {
			t.Fatalf("source after the restore: %v", props(s))
		}
		if got := sqlValues(t, d, s, "SELECT v FROM rows ORDER BY v"); strings.Join(got, ",") != "A1,A2,B1" {
			t.Fatalf("source's rows after the restore: %v", got)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("refusals create nothing", func(t *testing.T) {
		ok := restoreBody("PointInTimeRestore", srcID, pointInTime(time.Now().Add(-time.Second)), nil)
		refused(t, d, "rg", "bk-pitr", ok, http.StatusConflict, "ServerNameAlreadyExists")
		if p := props(serverRaw(t, d, "rg", "bk-pitr")); p["state"] != "Ready" || !strings.EqualFold(fmt.Sprint(p["sourceServerResourceId"]), srcID) {
			t.Fatalf("the existing server after a refused restore onto its name: %v", p)
		}
		// Server names are global: a name taken in another group is taken.
		refused(t, d, "rg2", "bk-src", ok, http.StatusConflict, "ServerNameAlreadyExists")
		gone(t, d, "rg2", "bk-src")

		r := refused(t, d, "rg", "bk-none-1", restoreBody("PointInTimeRestore", srcID, pointInTime(earliest.Add(-time.Second)), nil),
			http.StatusBadRequest, "InvalidRestorePointInTime")
		msg := r.ErrorMessage()
		if !strings.Contains(strings.ToLower(msg), "earliest") || !strings.Contains(msg, earliest.UTC().Format("2006-01-02")) ||
			!strings.Contains(msg, earliest.UTC().Format("15:04:05")) {
			t.Errorf("restore before earliestRestoreDate %s: message %q does not say so and give the date", earliest, msg)
		}
		gone(t, d, "rg", "bk-none-1")

		r = refused(t, d, "rg", "bk-none-2", restoreBody("PointInTimeRestore", srcID, pointInTime(time.Now().Add(time.Hour)), nil),
			http.StatusBadRequest, "InvalidRestorePointInTime")
		if !strings.Contains(strings.ToLower(r.ErrorMessage()), "future") {
			t.Errorf("restore to a time in the future: message %q does not say so", r.ErrorMessage())
		}
		gone(t, d, "rg", "bk-none-2")

		unknown := serverPath(d, "rg", "no-such-source")
		r = refused(t, d, "rg", "bk-none-3", restoreBody("PointInTimeRestore", unknown, pointInTime(time.Now()), nil),
			http.StatusNotFound, "ResourceNotFound")
		if !strings.Contains(r.ErrorMessage(), "no-such-source") {
			t.Errorf("restore of an unknown source: message %q does not name it", r.ErrorMessage())
		}
		gone(t, d, "rg", "bk-none-3")

		refused(t, d, "rg", "bk-none-4", restoreBody("GeoRestore", srcID, "", map[string]any{"location": "westus"}),
			http.StatusBadRequest, "GeoRedundantBackupNotEnabled")
		gone(t, d, "rg", "bk-none-4")

		// A point-in-time restore stays in the source's region.
		refused(t, d, "rg", "bk-none-5", restoreBody("PointInTimeRestore", srcID, pointInTime(time.Now()), map[string]any{"location": "westus"}),
			http.StatusBadRequest, "")
		gone(t, d, "rg", "bk-none-5")
	})

	t.Run("revive the dropped source into a customer-managed-key server", func(t *testing.T) {
		r := d.ARM(t, http.MethodDelete, serverPath(d, "rg", "bk-src")+backupsAPI, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("delete the source: %d %s", r.Status, r.Raw)
		}
		if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 2*time.Minute); op["status"] != "Succeeded" {
			t.Fatalf("delete the source: %v", op)
		}
		gone(t, d, "rg", "bk-src")
		// Its backups stay for the retention period.
		checkEncryptedRepository(t, repoDir(d, "eastus", uid))

		since := time.Now()
		revived := restoreServer(t, d, "rg", "bk-revived", restoreBody("ReviveDropped", srcID, pointInTime(time.Now()), map[string]any{
			"location": "eastus",
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{id.id: map[string]any{}}},
			"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": kid,
				"primaryUserAssignedIdentityId": id.id}},
		}))
		p := props(revived)
		enc := p["dataEncryption"].(map[string]any)
		if enc["type"] != "AzureKeyVault" || enc["primaryKeyURI"] != kid || !strings.EqualFold(fmt.Sprint(enc["primaryUserAssignedIdentityId"]), id.id) ||
			enc["primaryKeyVersionInUse"] != version(kid) {
			t.Fatalf("revived server's dataEncryption: %v", enc)
		}
		if !strings.EqualFold(fmt.Sprint(p["sourceServerResourceId"]), srcID) {
			t.Fatalf("revived server's sourceServerResourceId: %v", p["sourceServerResourceId"])
		}
		// Its DEK is wrapped by the customer's key, through its identity: the header beside
		// its volume names the key, and the key store's audit shows the identity wrapping.
		s := &cmkSuite{t: t, d: d}
		h, nuid := s.headerAndUID("restorekey")
		if nuid == uid || h["keyVersion"] != version(kid) {
			t.Fatalf("revived server's DEK header %v (server %s, source %s)", h, nuid, uid)
		}
		if ops := keyOps(s.audit(k.vaultPath(), "restorekey"), since); ops["KeyWrap "+id.principal] == 0 {
			t.Fatalf("the key store saw no wrapKey by the revived server's identity: %v", ops)
		}
		// The data as the source left it: the marker's table and every row (B1's commit
		// reached the archive: the point-in-time restore above stopped on it).
		if n := secretRows(t, d, revived, marker); n != "1000" {
			t.Fatalf("revived server: %s marker rows, want 1000", n)
		}
		if got := sqlValues(t, d, revived, "SELECT v FROM rows ORDER BY v"); strings.Join(got, ",") != "A1,A2,B1" {
			t.Fatalf("revived server's rows: %v, want A1,A2,B1", got)
		}
	})
	t.Logf("test: %s", time.Since(began).Round(time.Millisecond))
}
