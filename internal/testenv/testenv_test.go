package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatal ends only the goroutine it runs in and whose cleanups
// run when the test says, so that a test can watch what a helper leaves behind when it fails.
type recorder struct {
	testing.TB
	fatal    string
	cleanups []func()
}

func (r *recorder) Helper()             {}
func (r *recorder) Cleanup(f func())    { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Failed() bool        { return r.fatal != "" }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Fatal(args ...any)   { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) {
	r.fatal = fmt.Sprintf(f, a...)
	runtime.Goexit()
}

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestStartFailureReleasesTheDaemon: a daemon that never becomes ready fails Start, and the
// test's cleanup still ends its process and releases its port range.
func TestStartFailureReleasesTheDaemon(t *testing.T) {
	dir := t.TempDir()
	pidFile, argsFile := filepath.Join(dir, "pid"), filepath.Join(dir, "args")
	bin := filepath.Join(dir, "pgflex")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" > %s.tmp && mv %s.tmp %s\necho $$ > %s.tmp && mv %s.tmp %s\nexec sleep 600\n",
		argsFile, argsFile, argsFile, pidFile, pidFile, pidFile)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGFLEX_BIN", bin)
	if got := Binary(t); got != bin {
		t.Fatalf("Binary = %s: another test of this package chose the binary first", got)
	}
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(r, Options{ReadyTimeout: 2 * time.Second}) }()
	<-done
	if !strings.Contains(r.fatal, "did not become ready") {
		t.Fatalf("Start of a daemon that never answers: %q", r.fatal)
	}
	// What it left, before the cleanups: a live process and a claimed port range.
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the fake daemon did not run: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // should this test fail
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(args))
	var base int
	for i, a := range f {
		if a == "--server-port-min" && i+1 < len(f) {
			base, _ = strconv.Atoi(f[i+1])
			base--
		}
	}
	if base <= 0 {
		t.Fatalf("no --server-port-min in %q", args)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the fake daemon is not running before the cleanups: %v", err)
	}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base)); err == nil {
		l.Close()
		t.Fatalf("port %d is not claimed while the daemon starts", base)
	}

	r.runCleanups()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the daemon of a failed Start still runs after the cleanups (pid %d: %v)", pid, err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base))
	if err != nil {
		t.Errorf("the port range of a failed Start is still claimed after the cleanups: %v", err)
	} else {
		l.Close()
	}
}
