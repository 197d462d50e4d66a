package volume

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testkit"
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

// cleanupMount unmounts v; should that fail, it detaches the mount and ends the gocryptfs
// process serving it, which would otherwise live on holding the key. Either way it checks that
// no FUSE server of v is left.
func cleanupMount(t *testing.T, v *Volume) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pids := testkit.FUSEServers(v.CipherDir())
	if err := v.Unmount(ctx); err != nil {
		t.Errorf("cleanup: unmount: %v; detaching and ending gocryptfs", err)
		if n, err := testkit.DetachFUSE(v.MountDir(), v.CipherDir(), 5*time.Second); err != nil {
			t.Errorf("cleanup: %v (%d gocryptfs processes)", err, n)
		}
		return
	}
	// The FUSE server exits on unmount: make sure it did.
	if err := testkit.WaitGone(pids, 10*time.Second); err != nil {
		t.Errorf("cleanup: gocryptfs outlived the unmount: %v", err)
		if err := testkit.Terminate(pids, 5*time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
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

	// What must never reach the disk in plaintext: the marker, the marker file's name, the key
	// in every form it could be written in.
	needles := testkit.Needles{}.AddSecret("key", key).Add("marker", marker).Add("marker file name", []byte(markerName))
	var plainFiles, plainEntries int
	t.Run("the scanners find the marker and its name in the plaintext mount", func(t *testing.T) {
		// The positive control of "only ciphertext on disk": the same scans, on the mount.
		markerPath := filepath.Join(v.MountDir(), markerName)
		res := testkit.ScanFiles(t, []string{v.MountDir()}, needles, testkit.ScanOptions{})
		if !res.Has("marker", markerPath) {
			t.Errorf("the file scan did not find the marker in %s: hits %v", markerPath, res.Hits)
		}
		names := testkit.ScanNames(t, []string{v.MountDir()}, needles)
		if !names.Has("marker file name", markerPath) {
			t.Errorf("the name scan did not find %s: hits %v", markerPath, names.Hits)
		}
		entries, err := os.ReadDir(v.MountDir())
		if err != nil {
			t.Fatal(err)
		}
		plainFiles, plainEntries = res.Files, len(entries)
		if plainFiles < 2 || plainEntries < 2 { // the marker, pgdata/owned; the marker, pgdata
			t.Errorf("plaintext mount: %d files, %d entries at its root; want the marker and pgdata", plainFiles, plainEntries)
		}
	})

	if err := v.Unmount(ctx); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	wantState(t, v, NotMounted)

	t.Run("only ciphertext on disk", func(t *testing.T) {
		if plainFiles == 0 {
			t.Fatal("the positive control on the plaintext mount did not run")
		}
		// One scan reads the volume's directory and a control holding every needle: it must
		// find all of them there, and none in the volume.
		plant := testkit.Plant(t, filepath.Join(t.TempDir(), "plant"), needles)
		res := testkit.ScanFiles(t, []string{v.Dir, plant}, needles, testkit.ScanOptions{})
		if missing := res.Missing(needles, plant); len(missing) > 0 {
			t.Fatalf("the scan missed planted needles %v: it proves nothing", missing)
		}
		if leaks := res.Outside(plant); len(leaks) > 0 {
			t.Errorf("plaintext marker or key in the volume directory: %v", leaks)
		}
		if names := testkit.ScanNames(t, []string{v.Dir}, needles); len(names.Hits) > 0 || names.Files == 0 {
			t.Errorf("plaintext names in the volume directory (of %d read): %v", names.Files, names.Hits)
		}
		// It read the ciphertext: a file per plaintext file, gocryptfs.conf and a
		// gocryptfs.diriv per directory (the root and pgdata).
		if read := res.Files - len(needles); read < plainFiles+3 {
			t.Errorf("read %d files in %s; want at least %d", read, v.Dir, plainFiles+3)
		}
		entries, err := os.ReadDir(v.CipherDir())
		if err != nil {
			t.Fatal(err)
		}
		var conf, diriv bool
		var encrypted []string
		biggest := int64(0)
		for _, e := range entries {
			switch e.Name() {
			case "gocryptfs.conf":
				conf = true
			case "gocryptfs.diriv":
				diriv = true
			default:
				encrypted = append(encrypted, e.Name())
				if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
					biggest = max(biggest, info.Size())
				}
			}
		}
		if !conf || !diriv || len(encrypted) != plainEntries {
			t.Errorf("cipher dir holds %v; want gocryptfs.conf, gocryptfs.diriv and %d encrypted names", entries, plainEntries)
		}
		if want := int64(200 * (len(marker) + 1)); biggest < want {
			t.Errorf("no ciphertext the size of the marker file (%d bytes): largest %d", want, biggest)
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
		pids := testkit.FUSEServers(v.CipherDir())
		if len(pids) == 0 {
			t.Fatal("no gocryptfs server found for the mount")
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		if err := testkit.WaitGone(pids, 10*time.Second); err != nil {
			t.Fatalf("gocryptfs killed with SIGKILL: %v", err)
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
