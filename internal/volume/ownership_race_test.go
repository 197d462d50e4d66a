package volume

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestConcurrentCreateOwnership reproduces what PostgreSQL does when many
// sessions create relations at once: several processes of one unprivileged
// user create files in the volume and reopen them at once. Every file must
// belong to its creator and open for it. gocryptfs 2.3 from Debian switches
// the credentials of all its threads (not just the calling one) around each
// create when it runs as root with allow_other, so concurrent creates race
// and some files come out owned by root, mode 0600: the creator's next open
// fails with EACCES.
func TestConcurrentCreateOwnership(t *testing.T) {
	requireFUSE(t)
	const (
		procs = 4   // concurrent creators, as PostgreSQL backends
		files = 100 // files each creates and reopens
	)
	ctx := context.Background()
	v := newTestVolume(t)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	dir := filepath.Join(v.MountDir(), "pgdata")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}

	// Each creator works in a directory of its own: creates in one
	// directory are serialised by the kernel (the parent's inode lock), so
	// only creates in different directories reach gocryptfs at once, as
	// PostgreSQL's relation files, WAL segments and temp files do.
	// The unprivileged creators run a copy of this test binary: the
	// original sits in a directory only root can enter.
	helper := filepath.Join(filepath.Dir(v.Dir), "helper.test")
	copyExecutable(t, helper)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	for p := range procs {
		sub := filepath.Join(dir, strconv.Itoa(p))
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(sub, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, helper, "-test.run=^TestCreateOpenHelper$", "--", sub, strconv.Itoa(files))
			cmd.Env = []string{helperEnv + "=1"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
			out, err := cmd.Output()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("creator %d: %v: %.200s", p, err, out))
			}
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.HasPrefix(l, "FAIL ") {
					failures = append(failures, l)
				}
			}
		}()
	}
	wg.Wait()

	// Every file the creators were asked for exists, in its creator's directory, and belongs
	// to the creator; nothing else is there.
	var created, dirs, wrongOwner int
	var missing, extra []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case e.IsDir() && !strings.Contains(rel, "/"):
			dirs++
		case info.Mode().IsRegular() && createdName(rel, procs, files):
			created++
		default:
			extra = append(extra, rel)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
			wrongOwner++
			if wrongOwner <= 3 {
				t.Logf("%s owned by %d:%d mode %v", path, st.Uid, st.Gid, info.Mode())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range procs {
		for i := range files {
			if _, err := os.Lstat(filepath.Join(dir, strconv.Itoa(p), "f"+strconv.Itoa(i))); err != nil {
				missing = append(missing, fmt.Sprintf("%d/f%d: %v", p, i, err))
			}
		}
	}
	t.Logf("%d creators x %d files: %d files found, %d create+reopen failed, %d entries with the wrong owner",
		procs, files, created, len(failures), wrongOwner)
	if created != procs*files || dirs != procs || len(missing) > 0 || len(extra) > 0 {
		t.Errorf("found %d files in %d directories, want %d in %d; missing %d (first %q), unexpected %q",
			created, dirs, procs*files, procs, len(missing), missing[:min(3, len(missing))], extra[:min(3, len(extra))])
	}
	if len(failures) > 0 || wrongOwner > 0 {
		t.Errorf("%d of %d concurrent create+reopen failed, %d entries with the wrong owner; first: %q",
			len(failures), procs*files, wrongOwner, failures[:min(3, len(failures))])
	}
}

// createdName reports whether rel (relative to the creators' directory) is a file a creator was
// asked for: {creator}/f{i}.
func createdName(rel string, procs, files int) bool {
	d, f, ok := strings.Cut(rel, "/")
	if !ok {
		return false
	}
	p, err := strconv.Atoi(d)
	if err != nil || p < 0 || p >= procs || strconv.Itoa(p) != d {
		return false
	}
	i, err := strconv.Atoi(strings.TrimPrefix(f, "f"))
	return err == nil && strings.HasPrefix(f, "f") && i >= 0 && i < files && "f"+strconv.Itoa(i) == f
}

const helperEnv = "PGFLEX_VOLUME_CREATE_HELPER"

// TestCreateOpenHelper is not a test: TestConcurrentCreateOwnership runs the
// test binary as an unprivileged creator with this test selected. It creates
// files as PostgreSQL creates relation files (O_CREAT|O_EXCL, 0600), reopens
// each read-write, and prints a FAIL line for each step that fails.
func TestCreateOpenHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestConcurrentCreateOwnership")
	}
	args := flag.Args()
	if len(args) != 2 {
		t.Fatalf("want DIR N, got %q", args)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := filepath.Join(args[0], "f"+strconv.Itoa(i))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			fmt.Printf("FAIL create %s: %v\n", name, err)
			continue
		}
		f.Close()
		if f, err = os.OpenFile(name, os.O_RDWR, 0); err != nil {
			fmt.Printf("FAIL reopen %s: %v\n", name, err)
			continue
		}
		f.Close()
	}
}

// copyExecutable copies the running test binary to dst, mode 0755.
func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
