// Package procfs reads what the daemon needs to know of processes from /proc: who a process
// is (its uids, parent, executable, working directory) and when it started, so that a process
// can be recognised by PID and start time rather than by a name anyone can give an
// executable; and it ends every process of an account.
package procfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stat is the part of /proc/PID/stat and /proc/PID/status pgflex uses.
type Stat struct {
	PID, PPID int
	// State is the one-letter state ('R', 'S', 'Z', ...).
	State byte
	// StartTime is when the process started, in clock ticks since boot: with the PID it
	// names one process for the life of the machine (a PID is reused, the pair is not).
	StartTime uint64
	// RUID and EUID are the real and effective user ids.
	RUID, EUID uint32
}

// Identity names one process: PID and start time.
type Identity struct {
	PID       int
	StartTime uint64
}

// Read reads a process's stat and status.
func Read(pid int) (Stat, error) {
	if pid <= 0 {
		return Stat{}, fmt.Errorf("procfs: pid %d", pid)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Stat{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return Stat{}, fmt.Errorf("procfs: /proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Stat{}, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) >= 2 {
				r, err1 := strconv.ParseUint(f[0], 10, 32)
				e, err2 := strconv.ParseUint(f[1], 10, 32)
				if err1 == nil && err2 == nil {
					st.RUID, st.EUID = uint32(r), uint32(e)
					return st, nil
				}
			}
		}
	}
	return Stat{}, fmt.Errorf("procfs: /proc/%d/status has no Uid line", pid)
}

// parseStat parses "pid (comm) state ppid ... starttime ...": comm may hold spaces and
// parentheses, so fields are counted after the last ')'.
func parseStat(s string) (Stat, error) {
	open := strings.IndexByte(s, '(')
	j := strings.LastIndexByte(s, ')')
	if open < 0 || j < open {
		return Stat{}, errors.New("malformed")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return Stat{}, errors.New("malformed pid")
	}
	f := strings.Fields(s[j+1:])
	// After comm: state(0) ppid(1) ... starttime is field 22 of the line, index 19 here.
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errors.New("malformed")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, errors.New("malformed ppid")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, errors.New("malformed starttime")
	}
	return Stat{PID: pid, PPID: ppid, State: f[0][0], StartTime: start}, nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st, err := parseStat(string(b))
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// Parent returns pid's parent.
func Parent(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("procfs: /proc/%d/stat: %w", pid, err)
	}
	return st.PPID, nil
}

// IdentityOf returns the identity of a live process.
func IdentityOf(pid int) (Identity, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Identity{}, err
	}
	st, err := parseStat(string(b))
	if err != nil {
		return Identity{}, fmt.Errorf("procfs: /proc/%d/stat: %w", pid, err)
	}
	if st.State == 'Z' || st.State == 'X' {
		return Identity{}, fmt.Errorf("procfs: process %d has exited", pid)
	}
	return Identity{PID: pid, StartTime: st.StartTime}, nil
}

// Is reports whether the process id names is still that process.
func (id Identity) Is() bool {
	cur, err := IdentityOf(id.PID)
	return err == nil && cur == id
}

// Exe is the executable a process runs (the path it was started from).
func Exe(pid int) (string, error) { return os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe") }

// Cwd is a process's working directory, as its mount namespace sees it.
func Cwd(pid int) (string, error) { return os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd") }

// DescendsFrom reports whether pid is ancestor itself or one of its descendants, walking at
// most maxDepth parents up. The ancestor is named by identity, so a process that took a dead
// ancestor's PID is not mistaken for it.
func DescendsFrom(pid int, ancestor Identity, maxDepth int) bool {
	if !ancestor.Is() {
		return false
	}
	for p, i := pid, 0; p > 1 && i <= maxDepth; i++ {
		if p == ancestor.PID {
			return ancestor.Is()
		}
		pp, err := Parent(p)
		if err != nil {
			return false
		}
		p = pp
	}
	return false
}

// List returns the PIDs of every process.
func List() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// OfUser returns the live processes whose real or effective uid is uid.
func OfUser(uid uint32) ([]int, error) {
	pids, err := List()
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range pids {
		st, err := Read(pid)
		if err != nil || st.State == 'Z' || st.State == 'X' {
			continue
		}
		if st.RUID == uid || st.EUID == uid {
			out = append(out, pid)
		}
	}
	return out, nil
}

// KillUser sends SIGKILL to every process of uid until none is left, or ctx ends. A process
// of the account may fork while it is being killed, hence the loop. It refuses uid 0.
func KillUser(ctx context.Context, uid uint32) error {
	if uid == 0 {
		return errors.New("procfs: refusing to kill root's processes")
	}
	for {
		pids, err := OfUser(uid)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procfs: processes %v of uid %d still run: %w", pids, uid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WorkingIn returns the live processes whose executable's base name is exe and whose working
// directory is dir (symlinks resolved).
func WorkingIn(exe, dir string) []int {
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		want = filepath.Clean(dir)
	}
	pids, _ := List()
	var out []int
	for _, pid := range pids {
		if e, err := Exe(pid); err != nil || filepath.Base(e) != exe {
			continue
		}
		if cwd, err := Cwd(pid); err == nil && cwd == want && Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
