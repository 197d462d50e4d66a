package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The daemon runs as root, and a server's data directory belongs to the server's own account,
// which a customer may control (an escape from SQL is the threat pgflex is built against). A
// path under such a directory is resolved by the kernel without following any symbolic link
// and without leaving the directory (openat2 with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS), and
// files are changed through their descriptors: otherwise a link planted in the directory would
// make root open, create, chown or chmod a file of the attacker's choosing (its own root
// directory, /etc/shadow, ...).

// resolveBeneath are the openat2 resolve flags of every path under an untrusted directory.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// OpenBeneath opens rel, a path relative to dir, without following symbolic links and
// without leaving dir. flags are open(2)'s; O_CLOEXEC is added.
func OpenBeneath(dir, rel string, flags int, mode uint32) (*os.File, error) {
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("open %s beneath %s: not a local path", rel, dir)
	}
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveBeneath})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(dir, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, rel)), nil
}

// ReadFileBeneath reads a regular file under dir (see OpenBeneath), at most max bytes.
func ReadFileBeneath(dir, rel string, max int64) ([]byte, error) {
	f, err := OpenBeneath(dir, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// MkdirBeneath makes the directory rel under dir if it is missing (its parent must exist), and
// gives it mode and owner through its descriptor. An existing rel must be a directory, not a
// link to one.
func MkdirBeneath(dir, rel string, mode os.FileMode, uid, gid int) error {
	parent, name := filepath.Split(rel)
	p, err := OpenBeneath(dir, filepath.Join(".", parent), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := unix.Mkdirat(int(p.Fd()), name, uint32(mode.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdirat", Path: filepath.Join(dir, rel), Err: err}
	}
	d, err := OpenBeneath(dir, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Chown(uid, gid); err != nil {
		return err
	}
	return d.Chmod(mode.Perm())
}

// OpenOwnedBeneath opens (creating it if missing) the regular file rel under dir for reading
// and appending, and makes it belong to uid:gid with mode: it refuses a file that is not regular or
// has other links (a hard link to someone else's file), so that root never writes into, or
// gives away, a file it did not mean to.
func OpenOwnedBeneath(dir, rel string, mode os.FileMode, uid, gid int) (*os.File, error) {
	f, err := OpenBeneath(dir, rel, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_NONBLOCK, uint32(mode.Perm()))
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || (st.Uid != uint32(uid) && st.Uid != 0) {
		f.Close()
		return nil, fmt.Errorf("%s is not a file of its own (mode %o, %d links, owner %d): refusing to use it", f.Name(), st.Mode, st.Nlink, st.Uid)
	}
	if err := f.Chown(uid, gid); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
