package flexserver_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestFailedBuildKeepsEvidence is issue 12's "a failed create keeps its evidence": a server
// whose build fails inside PostgreSQL is rolled back, and what PostgreSQL logged last reaches
// the operation's error and the activity log, with no credential in either. The failure is a
// real one: the WAL segments of the source's backup are removed from its repository, so that
// a point-in-time restore (a create in createMode PointInTimeRestore) restores the backup's
// files and PostgreSQL's recovery then cannot find its checkpoint.
func TestFailedBuildKeepsEvidence(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	createGroup(t, d, "rg", "eastus")
	const password = "Evidence-Pass-7d54abb2!"
	src := createServer(t, d, "rg", "ev-src", map[string]any{"properties": map[string]any{"administratorLoginPassword": password}})
	dirs := serverDirs(t, d)
	if len(dirs) != 1 {
		t.Fatalf("server directories: %v", dirs)
	}
	// Every segment archived so far, the first backup's included, is lost from the repository.
	repo := repoDir(d, "eastus", dirs[0])
	removed := 0
	err := filepath.WalkDir(filepath.Join(repo, "archive"), func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && walSegment.MatchString(e.Name()) {
			removed++
			return os.Remove(path)
		}
		return nil
	})
	if err != nil || removed == 0 {
		t.Fatalf("removing archived WAL from %s: %d removed, %v", repo, removed, err)
	}

	// A point after the first backup became consistent (the earliest restore point).
	target := earliestRestore(t, serverRaw(t, d, "rg", "ev-src")).Add(time.Second).Truncate(time.Second)
	time.Sleep(time.Until(target.Add(100 * time.Millisecond)))
	before := world(t, d)
	body := restoreBody("PointInTimeRestore", src["id"].(string), pointInTime(target), nil)
	r := d.ARM(t, http.MethodPut, serverPath(d, "rg", "ev-copy")+backupsAPI, body)
	if r.Status != http.StatusAccepted {
		t.Fatalf("restore: %d %s", r.Status, r.Raw)
	}
	op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 5*time.Minute)
	raw, _ := json.Marshal(op)
	if op["status"] != "Failed" {
		t.Fatalf("restore without its WAL: %s, want Failed", raw)
	}
	opErr, _ := op["error"].(map[string]any)
	msg, _ := opErr["message"].(string)

	t.Run("rolled back", func(t *testing.T) {
		gone(t, d, "rg", "ev-copy")
		if after := world(t, d); after != before {
			t.Fatalf("a failed restore left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("the operation's error says what PostgreSQL said", func(t *testing.T) {
		if opErr["code"] != "RestoreFailed" {
			t.Fatalf("error code %v, want RestoreFailed: %s", opErr["code"], raw)
		}
		// PostgreSQL 15's own words when recovery finds no checkpoint in the restored files,
		// and not the service's internals (its paths).
		if !strings.Contains(msg, `failed: PostgreSQL reported "FATAL: could not locate required checkpoint record"`) ||
			strings.Contains(msg, d.DataDir) || strings.Contains(msg, "/run/") {
			t.Fatalf("error message does not carry PostgreSQL's reason alone: %q", msg)
		}
		info, _ := opErr["additionalInfo"].([]any)
		if len(info) != 1 {
			t.Fatalf("additionalInfo: %v", opErr["additionalInfo"])
		}
		entry := info[0].(map[string]any)
		lines, _ := entry["info"].(map[string]any)["lines"].([]any)
		if entry["type"] != "PostgreSQLLog" || len(lines) < 2 || len(lines) > 40 {
			t.Fatalf("additionalInfo entry: %v", entry)
		}
		var log strings.Builder
		for _, l := range lines {
			log.WriteString(l.(string) + "\n")
		}
		// The log shows the recovery asking for WAL and failing: evidence, not a summary.
		for _, want := range []string{"starting point-in-time recovery", "FATAL:  could not locate required checkpoint record"} {
			if !strings.Contains(log.String(), want) {
				t.Fatalf("the log lines lack %q:\n%s", want, log.String())
			}
		}
	})

	t.Run("the activity log records the failed write", func(t *testing.T) {
		var found *activityEvent
		for _, e := range activity(t, d) {
			if e.OperationName.Value == "Microsoft.DBforPostgreSQL/flexibleServers/write" && strings.HasSuffix(e.ResourceID, "/flexibleServers/ev-copy") {
				found = &e
				break
			}
		}
		if found == nil {
			t.Fatal("no flexibleServers/write event for ev-copy")
		}
		if found.Status.Value != "Failed" || found.Level != "Error" || found.Description != msg ||
			found.Properties["statusCode"] != "RestoreFailed" || !strings.Contains(found.Properties["postgresqlLog"], "could not locate required checkpoint record") {
			t.Fatalf("event: %+v", *found)
		}
		if admin := testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default")); found.Caller != admin {
			t.Fatalf("event caller %q, want the administrator's object id %s", found.Caller, admin)
		}
	})

	t.Run("no credential in the evidence", func(t *testing.T) {
		evidence := string(raw)
		for _, e := range activity(t, d) {
			b, _ := json.Marshal(e)
			evidence += string(b)
		}
		// The positive control: the scan finds what is there.
		if !strings.Contains(evidence, "could not locate required checkpoint record") {
			t.Fatal("control: the evidence scanned lacks the log line it carries")
		}
		for _, needle := range []string{password, "SCRAM-SHA-256$"} {
			if strings.Contains(evidence, needle) {
				t.Fatalf("the evidence holds %q", needle)
			}
		}
	})
}
