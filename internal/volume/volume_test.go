package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/pgflex/pgflex/internal/testkit"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireFUSE skips the test when real mounts cannot be made here (fails instead where every
// end-to-end test must run: see testkit.Require).
func requireFUSE(t *testing.T) {
	t.Helper()
	testkit.Require(t, testkit.Root, testkit.FUSE)
	if err := (&Gocryptfs{}).Available(); err != nil {
		t.Fatalf("gocryptfs: %v", err)
	}
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestVolume returns a volume in a fresh temporary directory whose mount
// is removed when the test ends, pass or fail. It is registered after
// t.TempDir so that it runs first (cleanups run last-in first-out).
func newTestVolume(t *testing.T) *Volume {
	t.Helper()
	tmp := t.TempDir()
	// The unprivileged user must be able to traverse down to the mount.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	v := &Volume{Dir: filepath.Join(tmp, "vol")}
	t.Cleanup(func() { cleanupMount(t, v) })
	return v
}

func cleanupMount(t *testing.T, v *Volume) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pids := fuseServerPIDs(t, v.CipherDir())
	if err := v.Unmount(ctx); err != nil {
		t.Logf("cleanup: unmount: %v; detaching", err)
		_ = syscall.Unmount(v.MountDir(), syscall.MNT_DETACH)
	}
	for _, pid := range pids { // the FUSE server exits on unmount; make sure
		waitGone(pid, 5*time.Second)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// fuseServerPIDs finds the gocryptfs processes serving cipherDir.
func fuseServerPIDs(t *testing.T, cipherDir string) []int {
	t.Helper()
	abs, _ := filepath.Abs(cipherDir)
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if filepath.Base(args[0]) != "gocryptfs" {
			continue
		}
		for _, a := range args {
			if a == abs {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func waitGone(pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return // exited; its reaper (init) has not collected it yet
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantState(t *testing.T, v *Volume, want State) {
	t.Helper()
	got, err := v.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if got != want {
		t.Fatalf("Status = %v, want %v", got, want)
	}
}

// grepTree reports the files under root whose bytes contain any needle.
func grepTree(t *testing.T, root string, needles ...[]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := []byte(d.Name())
		for _, n := range needles {
			if bytes.Contains(name, n) {
				hits = append(hits, p+" (name)")
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				hits = append(hits, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return hits
}

// TestVolumeLifecycle runs one volume through create, mount, unmount,
// wrong-key and right-key remounts, ciphertext checks and adoption. It is one
// test because each step needs the state the previous one left.
func TestVolumeLifecycle(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	v := newTestVolume(t)
	key := newKey(t)
	marker := []byte("pgflex-marker-" + hex.EncodeToString(newKey(t)[:8]))
	markerName := "marker-file-name.txt"

	if err := v.Create(ctx, key); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := v.Create(ctx, key); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second Create = %v, want ErrAlreadyInitialized", err)
	}
	wantState(t, v, NotMounted)
	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("Mount: %v", err)
	}
	wantState(t, v, Mounted)

	// Write the marker durably, as PostgreSQL would.
	f, err := os.OpenFile(filepath.Join(v.MountDir(), markerName), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// Several copies so it spans more than one 4 KiB ciphertext block.
	if _, err := f.Write(bytes.Repeat(append(marker, '\n'), 200)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync through the volume: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("files belong to the user who creates them", func(t *testing.T) {
		// PostgreSQL runs unprivileged; its files must be its own.
		const nobody = 65534
		sub := filepath.Join(v.MountDir(), "pgdata")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(sub, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "touch", filepath.Join(sub, "owned"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("create a file as uid %d: %v: %s", nobody, err, out)
		}
		st, err := os.Stat(filepath.Join(sub, "owned"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid != nobody {
			t.Errorf("file created by uid %d is owned by %d", nobody, uid)
		}
		// And the kernel enforces modes (default_permissions): another
		// unprivileged user cannot enter the 0700 directory.
		cmd = exec.CommandContext(ctx, "ls", sub)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody - 1, Gid: nobody - 1}}
		if err := cmd.Run(); err == nil {
			t.Error("another user listed a 0700 directory inside the volume")
		}
	})

	if err := v.Unmount(ctx); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	wantState(t, v, NotMounted)

	t.Run("only ciphertext on disk", func(t *testing.T) {
		hexKey := []byte(hex.EncodeToString(key))
		needles := [][]byte{marker, []byte(markerName), key, hexKey, bytes.ToUpper(hexKey)}
		if hits := grepTree(t, v.Dir, needles...); len(hits) > 0 {
			t.Errorf("plaintext marker, file name or key found in %v", hits)
		}
		// The check must be able to fail: the cipher dir holds files.
		if n := len(grepTree(t, v.CipherDir())); n != 0 {
			t.Fatalf("grepTree with no needles found %d", n)
		}
		entries, _ := os.ReadDir(v.CipherDir())
		if len(entries) < 3 {
			t.Errorf("cipher dir holds %d entries; the marker file is missing", len(entries))
		}
	})

	t.Run("wrong key refused", func(t *testing.T) {
		wrong := newKey(t)
		err := v.Mount(ctx, wrong)
		if !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Mount(wrong key) = %v, want ErrWrongKey", err)
		}
		wantState(t, v, NotMounted)
		if err := v.Mount(ctx, key[:16]); !errors.Is(err, ErrKeySize) {
			t.Errorf("Mount(16-byte key) = %v, want ErrKeySize", err)
		}
	})

	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("remount: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(v.MountDir(), markerName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, marker) {
		t.Fatalf("marker after remount = %.40q", got)
	}

	t.Run("adopt after the handle is lost", func(t *testing.T) {
		// A restarted daemon has a fresh Volume and no process handle.
		fresh := &Volume{Dir: v.Dir}
		adopted, err := fresh.Adopt(ctx)
		if err != nil || !adopted {
			t.Fatalf("Adopt = %v, %v; want true", adopted, err)
		}
		// Mount on an adopted volume keeps the live mount.
		if err := fresh.Mount(ctx, key); err != nil {
			t.Fatalf("Mount on a mounted volume: %v", err)
		}
		if _, err := os.Stat(filepath.Join(fresh.MountDir(), markerName)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stale mount is detached and remounted", func(t *testing.T) {
		pids := fuseServerPIDs(t, v.CipherDir())
		if len(pids) == 0 {
			t.Fatal("no gocryptfs server found for the mount")
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitGone(pid, 10*time.Second)
		}
		wantState(t, v, Stale)
		fresh := &Volume{Dir: v.Dir}
		adopted, err := fresh.Adopt(ctx)
		if err != nil || adopted {
			t.Fatalf("Adopt(stale) = %v, %v; want false, nil", adopted, err)
		}
		wantState(t, v, NotMounted)
		if err := fresh.Mount(ctx, key); err != nil {
			t.Fatalf("Mount after stale: %v", err)
		}
		got, err := os.ReadFile(filepath.Join(v.MountDir(), markerName))
		if err != nil || !bytes.HasPrefix(got, marker) {
			t.Fatalf("marker after recovering a stale mount: %v", err)
		}
	})

	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Unmount(ctx); err != nil {
		t.Errorf("Unmount of an unmounted volume: %v", err)
	}

	t.Run("refuses to mount over files", func(t *testing.T) {
		stray := filepath.Join(v.MountDir(), "stray")
		if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(stray)
		if err := v.Mount(ctx, key); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Mount over a non-empty dir = %v", err)
		}
		wantState(t, v, NotMounted)
	})

	t.Run("foreign mount reported", func(t *testing.T) {
		if err := syscall.Mount("tmpfs", v.MountDir(), "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount tmpfs (root may mount): %v", err)
		}
		defer syscall.Unmount(v.MountDir(), 0)
		if _, err := v.Status(ctx); !errors.Is(err, ErrForeignMount) {
			t.Errorf("Status with tmpfs mounted = %v, want ErrForeignMount", err)
		}
		if err := v.Mount(ctx, key); !errors.Is(err, ErrForeignMount) {
			t.Errorf("Mount over tmpfs = %v, want ErrForeignMount", err)
		}
	})

	t.Run("destroy", func(t *testing.T) {
		if err := v.Mount(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := v.Destroy(ctx); err == nil {
			t.Fatal("Destroy of a mounted volume succeeded")
		}
		if err := v.Unmount(ctx); err != nil {
			t.Fatal(err)
		}
		if err := WriteHeader(ctx, v.HeaderPath(), &Header{KeyID: "https://v.vault.localhost/keys/k", KeyVersion: "1",
			Algorithm: "RSA-OAEP-256", WrappedKey: make([]byte, 256), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if err := v.Destroy(ctx); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if _, err := os.Stat(v.Dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("volume directory still there: %v", err)
		}
		wantState(t, v, NotMounted)
	})
}

func TestMountUninitialised(t *testing.T) {
	requireFUSE(t)
	v := newTestVolume(t)
	if err := os.MkdirAll(v.CipherDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(context.Background(), newKey(t)); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Mount(uninitialised) = %v, want ErrNotInitialized", err)
	}
}
