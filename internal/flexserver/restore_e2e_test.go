package flexserver_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// dekHeader reads the wrapped-DEK header beside a server's volume.
func dekHeader(t testing.TB, d *testenv.Daemon, uid string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.DataDir, "servers", uid, "header.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// walSegments lists the archived WAL segments of a repository.
func walSegments(t testing.TB, repo string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(repo, "archive"), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && walSegment.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("archive of %s: %v", repo, err)
	}
	return out
}

// newEntries are the entries of after that before lacks.
func newEntries(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			out = append(out, a)
		}
	}
	return out
}

// waitGeoKeyStatus waits until the server's geoBackupEncryptionKeyStatus is status.
func waitGeoKeyStatus(t testing.TB, d *testenv.Daemon, group, name, status string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		srv := serverRaw(t, d, group, name)
		enc, _ := props(srv)["dataEncryption"].(map[string]any)
		if enc["geoBackupEncryptionKeyStatus"] == status {
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s: geoBackupEncryptionKeyStatus %v, not %s, after %s", name, enc["geoBackupEncryptionKeyStatus"], status, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestGeoRestoreUnderTheGeoKey is issue 7's acceptance for geo-redundant backups of a
// customer-managed-key server: the geo key (in the paired region's vault, reached through an
// identity of its own) encrypts repository 2; a geo-restore into the paired region yields the
// data in a service-managed-key server; revoking only the geo key pauses the copies without
// touching the server, makes geo-restore fail naming that key, and leaves point-in-time restore
// from repository 1 working.
func TestGeoRestoreUnderTheGeoKey(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	began := time.Now()
	runDir := testenv.RuntimeDir(t)
	// The key monitor checks every second, so that it notices the geo key's revocation soon.
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--key-check-interval", "1s"}})
	createGroup(t, d, "rg", "eastus")
	east := newKMS(t, d, "rg", "kvbkeast", false)
	west := newKMSIn(t, d, "rg", "kvbkwest", "westus", false)
	primaryKey := east.createKey("primary")
	geoKey := west.createKey("geo")
	pid := east.createIdentity("bk-primary-id")
	gid := east.createIdentity("bk-geo-id")
	// Each identity reaches its own vault only.
	east.grant(pid.principal)
	west.grant(gid.principal)

	createStart := time.Now()
	src := createServer(t, d, "rg", "geo-src", map[string]any{
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{pid.id: map[string]any{}, gid.id: map[string]any{}}},
		"properties": map[string]any{"backup": map[string]any{"geoRedundantBackup": "Enabled"},
			"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": primaryKey, "primaryUserAssignedIdentityId": pid.id,
				"geoBackupKeyURI": geoKey, "geoBackupUserAssignedIdentityId": gid.id}},
	})
	t.Logf("create (customer-managed keys, geo-redundant backup): %s", time.Since(createStart).Round(time.Millisecond))
	srcID := src["id"].(string)
	dirs := serverDirs(t, d)
	if len(dirs) != 1 {
		t.Fatalf("server directories: %v", dirs)
	}
	uid := dirs[0]
	if enc := props(src)["dataEncryption"].(map[string]any); enc["geoBackupEncryptionKeyStatus"] != "Valid" || enc["primaryEncryptionKeyStatus"] != "Valid" {
		t.Fatalf("source's dataEncryption: %v", enc)
	}
	marker := newMarker(t)

	ok := t.Run("both repositories encrypted, marker in neither", func(t *testing.T) {
		writeSecret(t, d, src, marker)
		sqlExec(t, d, src, "CREATE TABLE rows (v text)", "INSERT INTO rows VALUES ('G1')")
		takeBackup(t, d, "rg", "geo-src", "geo-full")
		checkEncryptedRepository(t, repoDir(d, "eastus", uid))
		checkEncryptedRepository(t, repoDir(d, "westus", uid))
		if hits := grepTree(t, filepath.Join(d.DataDir, "regions"), nil, []byte(marker)); len(hits) > 0 {
			t.Fatalf("marker in plaintext in backup files: %v", hits)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("geo-restore to a region that is not the pair is refused", func(t *testing.T) {
		for _, region := range []string{"northeurope", "eastus"} {
			refused(t, d, "rg", "geo-none", restoreBody("GeoRestore", srcID, "", map[string]any{"location": region}),
				http.StatusBadRequest, "InvalidGeoRestoreLocation")
			gone(t, d, "rg", "geo-none")
		}
	})

	ok = t.Run("geo-restore into the paired region, as a service-managed-key server", func(t *testing.T) {
		before := serverDirs(t, d)
		copySrv := restoreServer(t, d, "rg", "geo-copy", restoreBody("GeoRestore", srcID, "", map[string]any{"location": "westus"}))
		p := props(copySrv)
		if copySrv["location"] != "westus" || !strings.EqualFold(fmt.Sprint(p["sourceServerResourceId"]), srcID) {
			t.Fatalf("geo-restored server: %v", copySrv)
		}
		enc := p["dataEncryption"].(map[string]any)
		if enc["type"] != "SystemManaged" || enc["primaryKeyURI"] != nil || enc["primaryUserAssignedIdentityId"] != nil || enc["geoBackupKeyURI"] != nil {
			t.Fatalf("geo-restored server's dataEncryption: %v, want SystemManaged and no key", enc)
		}
		// Its DEK is its own, wrapped by the service: no customer key store named.
		nuid := newDir(t, before, serverDirs(t, d))
		if kid := fmt.Sprint(dekHeader(t, d, nuid)["keyId"]); strings.Contains(kid, "kvbkeast") || strings.Contains(kid, "kvbkwest") {
			t.Fatalf("the SMK server's DEK is wrapped by a customer key: %s", kid)
		}
		// Its own repository is in its own region.
		if _, err := os.Stat(repoDir(d, "westus", nuid)); err != nil {
			t.Fatalf("the geo-restored server has no repository in westus: %v", err)
		}
		if n := secretRows(t, d, copySrv, marker); n != "1000" {
			t.Fatalf("geo-restored server: %s marker rows, want 1000", n)
		}
		if got := sqlValues(t, d, copySrv, "SELECT v FROM rows"); strings.Join(got, ",") != "G1" {
			t.Fatalf("geo-restored server's rows: %v, want G1", got)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("geo key revoked: copies paused, geo-restore refused, point-in-time restore works", func(t *testing.T) {
		west.policyOp("remove", policy(d, gid.principal, "get", "list", "wrapKey", "unwrapKey"))
		srv := waitGeoKeyStatus(t, d, "rg", "geo-src", "Invalid", 30*time.Second)
		if p := props(srv); p["state"] != "Ready" || p["dataEncryption"].(map[string]any)["primaryEncryptionKeyStatus"] != "Valid" {
			t.Fatalf("source after the geo key's revocation: state %v, dataEncryption %v", p["state"], p["dataEncryption"])
		}

		// Rows C after the revocation, the time T, rows D: the source keeps archiving into
		// repository 1, and no longer into repository 2.
		east1, west1 := walSegments(t, repoDir(d, "eastus", uid)), walSegments(t, repoDir(d, "westus", uid))
		sqlExec(t, d, src, "INSERT INTO rows VALUES ('C1')")
		time.Sleep(1500 * time.Millisecond)
		target := time.Now().UTC().Truncate(time.Second)
		time.Sleep(time.Until(target.Add(1500 * time.Millisecond)))
		sqlExec(t, d, src, "INSERT INTO rows VALUES ('D1')")

		r := refused(t, d, "rg", "geo-refused", restoreBody("GeoRestore", srcID, "", map[string]any{"location": "westus"}),
			http.StatusBadRequest, "SourceBackupKeyUnusable")
		if msg := r.ErrorMessage(); !strings.Contains(msg, "kvbkwest") || !strings.Contains(msg, "/keys/geo") {
			t.Fatalf("geo-restore with the geo key revoked: message %q does not name the geo key %s", msg, geoKey)
		}
		gone(t, d, "rg", "geo-refused")

		pitr := restoreServer(t, d, "rg", "geo-pitr", restoreBody("PointInTimeRestore", srcID, pointInTime(target), map[string]any{"location": "eastus"}))
		if got := sqlValues(t, d, pitr, "SELECT v FROM rows ORDER BY v"); strings.Join(got, ",") != "C1,G1" {
			t.Fatalf("point-in-time restore to %s with the geo key revoked: rows %v, want C1,G1", target, got)
		}
		east2, west2 := walSegments(t, repoDir(d, "eastus", uid)), walSegments(t, repoDir(d, "westus", uid))
		if added := newEntries(east1, east2); len(added) == 0 {
			t.Fatalf("no WAL archived into repository 1 after the geo key's revocation (the restore read rows C from it?)")
		}
		if added := newEntries(west1, west2); len(added) > 0 {
			t.Fatalf("WAL archived into repository 2 while its key is revoked: %v", added)
		}
		if enc := props(pitr)["dataEncryption"].(map[string]any); enc["type"] != "SystemManaged" {
			t.Fatalf("restored server's dataEncryption: %v", enc)
		}
		if p := props(serverRaw(t, d, "rg", "geo-src")); p["state"] != "Ready" {
			t.Fatalf("source after the restores: %v", p["state"])
		}
	})
	t.Logf("test: %s", time.Since(began).Round(time.Millisecond))
}
