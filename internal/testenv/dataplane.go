package testenv

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// RuntimeDir makes a runtime directory for a test daemon's servers (mounts and sockets), whose
// ancestors the servers' accounts can traverse, and registers a cleanup that stops what the
// servers left running: by design servers outlive the daemon (a restarted daemon adopts them),
// so a test must end their PostgreSQL processes and unmount their volumes itself.
func RuntimeDir(t testing.TB) string {
	t.Helper()
	// Not under /tmp: the servers' sandboxes replace /tmp with a private directory.
	if err := os.MkdirAll("/run/pgflex-test", 0o711); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("/run/pgflex-test", "run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "run")
	t.Cleanup(func() {
		StopDataPlane(t, dir)
		os.RemoveAll(tmp)
	})
	return dir
}

// StopDataPlane kills the PostgreSQL servers mounted under runtimeDir and unmounts them, then
// ends any PostgreSQL or gocryptfs process still working under runtimeDir (a mount that was
// detached lazily no longer shows in mountinfo, but its processes live on).
func StopDataPlane(t testing.TB, runtimeDir string) {
	defer killUnder(runtimeDir)
	fscrypt := &volume.Fscrypt{Logger: slog.New(slog.DiscardHandler)}
	for _, m := range testkit.Mounts(t) {
		mnt := m.Point
		if !strings.HasPrefix(mnt, runtimeDir+"/") {
			continue
		}
		plain := mnt
		if m.FSType == "ext4" {
			plain = fscrypt.DataDir(mnt)
		}
		if b, err := os.ReadFile(filepath.Join(plain, "pgdata", "postmaster.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if m.FSType == "ext4" {
			// The key first, so that nothing readable outlives a lazy detach.
			if err := fscrypt.Unmount(context.Background(), mnt); err != nil {
				fscrypt.RemoveKey(mnt)
				if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
					t.Logf("cleanup: unmount %s: %v", mnt, err)
				}
			}
			continue
		}
		if err := exec.Command("fusermount3", "-u", mnt).Run(); err != nil {
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Logf("cleanup: unmount %s: %v", mnt, err)
			}
		}
	}
}

// killUnder ends the postgres and gocryptfs processes whose command line names a path under dir.
func killUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if base := filepath.Base(args[0]); base != "postgres" && base != "gocryptfs" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		syscall.Kill(pid, syscall.SIGQUIT) // postgres: immediate shutdown; gocryptfs: exits
		for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// RemoveAccounts ends the processes of the OS accounts a daemon made for its servers (by design
// servers outlive the daemon) and removes the accounts. Tests call it when they are done with a
// daemon's data directory.
func RemoveAccounts(t testing.TB, dataDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, err := osuser.ListByComment("pgflex " + daemon.InstallationID(dataDir) + " ")
	if err != nil {
		t.Logf("cleanup: list accounts: %v", err)
		return
	}
	for _, n := range names {
		if u, err := osuser.Lookup(n); err == nil {
			if err := procfs.KillUser(ctx, u.UID); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		if err := osuser.Remove(ctx, n); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}
