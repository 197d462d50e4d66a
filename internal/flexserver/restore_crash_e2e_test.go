package flexserver_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestCrashDuringRestore: the daemon is killed (SIGKILL) while a restore writes the new
// server's files. After the restart the restore's operation has failed saying why, and nothing
// of the new server is left — no record, no server directory, no repository, no mount — while
// the source is untouched and restores again.
func TestCrashDuringRestore(t *testing.T) {
	requireDataPlane(t)
	t.Parallel()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	src := createServer(t, d, "rg", "crashsrc", nil)
	sqlExec(t, d, src, "create table t (v text)", "insert into t values ('kept')")
	time.Sleep(1100 * time.Millisecond) // the restore point (whole seconds) is after the write
	srcID := src["id"].(string)
	before := world(t, d)
	mountsBefore, _ := os.ReadDir(filepath.Join(runDir, "mnt"))

	r := d.ARM(t, http.MethodPut, serverPath(d, "rg", "crashcopy")+backupsAPI,
		restoreBody("PointInTimeRestore", srcID, pointInTime(time.Now()), nil))
	if r.Status != http.StatusAccepted {
		t.Fatalf("restore: %d %s", r.Status, r.Raw)
	}
	asyncURL := r.Header.Get("Azure-AsyncOperation")
	// Kill once the restore is writing into the new server's volume.
	var newMount string
	deadline := time.Now().Add(3 * time.Minute)
	for newMount == "" {
		entries, _ := os.ReadDir(filepath.Join(runDir, "mnt"))
		for _, e := range entries {
			if !slices.ContainsFunc(mountsBefore, func(b os.DirEntry) bool { return b.Name() == e.Name() }) {
				if _, err := os.Stat(filepath.Join(plainDir(filepath.Join(runDir, "mnt", e.Name())), "pgdata")); err == nil {
					newMount = filepath.Join(runDir, "mnt", e.Name())
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restore never started writing its files\n%s", tail(d.Logs(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.Kill()
	d.StartAgain()

	op := d.WaitOperation(t, asyncURL, 3*time.Minute)
	errBody, _ := op["error"].(map[string]any)
	if op["status"] != "Failed" || errBody["code"] != "ServerCreationInterrupted" ||
		!strings.Contains(asString(errBody["message"]), "rolled back") {
		t.Fatalf("the interrupted restore's operation: %v", op)
	}
	gone(t, d, "rg", "crashcopy")
	if after := world(t, d); after != before {
		t.Fatalf("the interrupted restore left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if mounted(t, newMount) {
		t.Fatalf("the interrupted restore's volume is still mounted at %s", newMount)
	}
	if _, err := os.Stat(newMount); !os.IsNotExist(err) {
		t.Fatalf("the interrupted restore's mount point remains: %v", err)
	}

	// The source is as it was, and restores.
	if got := sqlValues(t, d, waitState(t, d, "rg", "crashsrc", "Ready", time.Minute), "select v from t"); strings.Join(got, ",") != "kept" {
		t.Fatalf("source rows after the crash: %v", got)
	}
	copySrv := restoreServer(t, d, "rg", "crashcopy2", restoreBody("PointInTimeRestore", srcID, pointInTime(time.Now()), nil))
	if got := sqlValues(t, d, copySrv, "select v from t"); strings.Join(got, ",") != "kept" {
		t.Fatalf("rows restored after the crash: %v", got)
	}
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
