package flexserver_test

import (
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestAutomaticBackupSchedule: with --backup-interval 12s the daemon takes a new automatic full
// backup of a running server every 12 s, on top of the one taken at creation; the retention (7
// days) keeps them all, so earliestRestoreDate stays at the first.
func TestAutomaticBackupSchedule(t *testing.T) {
	requireDataPlane(t)
	t.Parallel()
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t), "--backup-interval", "12s"}})
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "scheduled", nil)
	first := earliestRestore(t, srv)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		auto := automaticBackups(t, listBackups(t, d, "rg", "scheduled"))
		if len(auto) >= 3 {
			var times []time.Time
			for _, b := range auto {
				times = append(times, timeProp(t, props(b), "completedTime"))
			}
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < 9*time.Second {
					t.Fatalf("automatic backups %s apart, closer than the 12 s interval allows: %v", gap, times)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d automatic backups after 3 minutes with a 12 s interval\n%s", len(auto), tail(d.Logs(), 30))
		}
		time.Sleep(time.Second)
	}
	if got := earliestRestore(t, serverRaw(t, d, "rg", "scheduled")); !got.Equal(first) {
		t.Fatalf("earliestRestoreDate moved from %s to %s although the retention keeps every backup", first, got)
	}
}
