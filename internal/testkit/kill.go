package testkit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessesWithArg lists the processes running exe (argv[0]'s base name) with arg, exactly,
// among their arguments.
func ProcessesWithArg(exe, arg string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(dir + "/cmdline")
		if err != nil || len(cl) == 0 {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(cl), "\x00"), "\x00")
		if filepath.Base(args[0]) != exe {
			continue
		}
		for _, a := range args[1:] {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// FUSEServers lists the gocryptfs processes serving cipherDir: those whose command line names
// it (made absolute, as pgflex passes it).
func FUSEServers(cipherDir string) []int {
	abs, err := filepath.Abs(cipherDir)
	if err != nil {
		abs = filepath.Clean(cipherDir)
	}
	return ProcessesWithArg("gocryptfs", abs)
}

// Gone reports whether pid has exited: no such process, or a zombie its parent has not reaped.
func Gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// WaitGone waits until every pid is Gone, up to timeout, and returns an error naming those
// still alive then.
func WaitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, pid := range pids {
			if !Gone(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive after %s", alive, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Terminate ends pids: SIGTERM, up to grace for them to exit, then SIGKILL to the survivors and
// up to grace again. It returns an error naming any process still alive after that.
func Terminate(pids []int, grace time.Duration) error {
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if WaitGone(pids, grace) == nil {
		return nil
	}
	for _, pid := range pids {
		if !Gone(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := WaitGone(pids, grace); err != nil {
		return fmt.Errorf("SIGTERM, then SIGKILL: %w", err)
	}
	return nil
}

// DetachFUSE is the last resort of a cleanup whose unmount failed: it detaches mountDir lazily
// (MNT_DETACH) and ends the gocryptfs processes serving cipherDir (Terminate, grace each step),
// so that no FUSE server lives on holding the volume's key. It returns how many servers it
// ended, and an error if the detach failed (not for a directory that is no mount point) or a
// server outlived SIGKILL.
func DetachFUSE(mountDir, cipherDir string, grace time.Duration) (int, error) {
	pids := FUSEServers(cipherDir)
	var errs []error
	if err := syscall.Unmount(mountDir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		errs = append(errs, fmt.Errorf("detach %s: %w", mountDir, err))
	}
	if err := Terminate(pids, grace); err != nil {
		errs = append(errs, fmt.Errorf("gocryptfs serving %s: %w", cipherDir, err))
	}
	return len(pids), errors.Join(errs...)
}
