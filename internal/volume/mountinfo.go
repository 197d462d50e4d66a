package volume

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// mountInfoPath is the kernel's view of this process's mount namespace. It is
// the only source of truth for "is this directory mounted": a marker file or a
// PID file would survive a crash that the mount did not, or the reverse.
const mountInfoPath = "/proc/self/mountinfo"

// mountEntry is one line of /proc/self/mountinfo, reduced to what pgflex uses.
type mountEntry struct {
	MountPoint string // absolute, unescaped
	FSType     string // e.g. "fuse.gocryptfs"
	Source     string // for gocryptfs, the cipher directory
	Options    string // per-mount and super-block options, comma-separated
}

// parseMountInfo reads mountinfo lines (see proc(5)). Lines it cannot parse are
// an error rather than skipped: a silently ignored line could hide a mount.
func parseMountInfo(r io.Reader) ([]mountEntry, error) {
	var entries []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		// (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
		left, right, ok := strings.Cut(text, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo line %d: no separator: %q", line, text)
		}
		lf := strings.Fields(left)
		rf := strings.Fields(right)
		if len(lf) < 6 || len(rf) < 2 {
			return nil, fmt.Errorf("mountinfo line %d: too few fields: %q", line, text)
		}
		mp, err := unescapeMountField(lf[4])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: mount point: %w", line, err)
		}
		src, err := unescapeMountField(rf[1])
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: source: %w", line, err)
		}
		opts := lf[5]
		if len(rf) > 2 {
			opts += "," + rf[2]
		}
		entries = append(entries, mountEntry{MountPoint: mp, FSType: rf[0], Source: src, Options: opts})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return entries, nil
}

// unescapeMountField undoes the kernel's octal escaping (\040 for space,
// \011 tab, \012 newline, \134 backslash) in mountinfo path fields.
func unescapeMountField(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q: %w", s, err)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// findMount returns the topmost mount at mountPoint (the last matching line:
// later mounts stack on earlier ones), or false.
func findMount(entries []mountEntry, mountPoint string) (mountEntry, bool) {
	var found mountEntry
	ok := false
	for _, e := range entries {
		if e.MountPoint == mountPoint {
			found, ok = e, true
		}
	}
	return found, ok
}

// mountAt is lookupMount for a Layer's Status: nothing is looked up once ctx is done.
func mountAt(ctx context.Context, dir string) (mountEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return mountEntry{}, false, err
	}
	return lookupMount(dir)
}

// lookupMount reads this process's mountinfo and returns the mount at dir.
func lookupMount(dir string) (mountEntry, bool, error) {
	canon, err := canonicalMountPoint(dir)
	if errors.Is(err, os.ErrNotExist) {
		return mountEntry{}, false, nil // nothing can be mounted below a missing directory
	}
	if err != nil {
		return mountEntry{}, false, err
	}
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return mountEntry{}, false, fmt.Errorf("open %s: %w", mountInfoPath, err)
	}
	defer f.Close()
	entries, err := parseMountInfo(f)
	if err != nil {
		return mountEntry{}, false, err
	}
	e, ok := findMount(entries, canon)
	return e, ok, nil
}

// canonicalMountPoint resolves symlinks in dir's parent only: the kernel
// records resolved paths, and resolving dir itself would touch the mount,
// which hangs or fails with ENOTCONN when its FUSE daemon is gone.
func canonicalMountPoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("mount point %q: %w", dir, err)
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("mount point %q: resolve parent: %w", dir, err)
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// isDisconnected reports whether err is what the kernel returns for a FUSE
// mount whose daemon has died ("Transport endpoint is not connected").
func isDisconnected(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}
