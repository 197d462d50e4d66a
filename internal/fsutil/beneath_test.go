package fsutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestBeneath: paths under an untrusted directory resolve to what is really there, never
// through a link, and never outside it; the positive controls show the same calls work on
// plain files and directories.
func TestBeneath(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "real"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "real", "file"), []byte("inside"), 0o600))
	must(os.Symlink(victim, filepath.Join(dir, "filelink")))
	must(os.Symlink(outside, filepath.Join(dir, "dirlink")))
	must(os.Symlink("real", filepath.Join(dir, "locallink"))) // even a link that stays inside
	must(os.Link(filepath.Join(dir, "real", "file"), filepath.Join(dir, "hardlink")))

	if b, err := ReadFileBeneath(dir, "real/file", 100); err != nil || string(b) != "inside" {
		t.Errorf("control: ReadFileBeneath(real/file) = %q, %v", b, err)
	}
	for _, rel := range []string{"filelink", "dirlink/victim", "locallink/file", "../" + filepath.Base(outside) + "/victim", "/etc/passwd"} {
		if b, err := ReadFileBeneath(dir, rel, 100); err == nil {
			t.Errorf("ReadFileBeneath(%s) read %q", rel, b)
		}
	}

	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534
	}
	must(MkdirBeneath(dir, "real/log", 0o700, uid, gid))
	if fi, err := os.Lstat(filepath.Join(dir, "real", "log")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("control: MkdirBeneath made %v, %v", fi, err)
	}
	for _, rel := range []string{"dirlink", "locallink/log", "filelink"} {
		if err := MkdirBeneath(dir, rel, 0o700, uid, gid); err == nil {
			t.Errorf("MkdirBeneath(%s) went through a link", rel)
		}
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() == 0o700 && os.Geteuid() == 0 {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid == uint32(uid) {
			t.Error("the directory behind a link was given away")
		}
	}

	f, err := OpenOwnedBeneath(dir, "real/log/postmaster.log", 0o600, uid, gid)
	if err != nil {
		t.Fatalf("control: OpenOwnedBeneath: %v", err)
	}
	f.Close()
	for _, rel := range []string{"filelink", "hardlink", "dirlink/victim"} {
		if f, err := OpenOwnedBeneath(dir, rel, 0o600, uid, gid); err == nil {
			f.Close()
			t.Errorf("OpenOwnedBeneath(%s) accepted", rel)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's" {
		t.Errorf("the victim changed: %q", b)
	}
	fi, err := os.Stat(victim)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		t.Errorf("the victim's owner or mode changed: %v", fi)
	}
}
