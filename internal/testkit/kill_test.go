package testkit

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

const killHelperEnv = "PGFLEX_TESTKIT_KILL_HELPER"

// TestKillHelperProcess is not a test: startVictim runs the test binary with it selected, as a
// process to end. It ignores SIGTERM when asked, says it is ready, and lives a bounded time.
func TestKillHelperProcess(t *testing.T) {
	mode := os.Getenv(killHelperEnv)
	if mode == "" {
		t.Skip("helper process for TestTerminate and TestDetachFUSE")
	}
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(2 * time.Minute) // the victim's lifetime, bounded should the test die
	os.Exit(0)
}

// victim is a helper process to end.
type victim struct {
	pid    int
	exited chan *os.ProcessState // receives its state once reaped
}

// startVictim starts the helper process as argv0 with arg among its arguments, and returns once
// it is ready (its signal disposition set); cleanup kills it whatever the outcome.
func startVictim(t *testing.T, argv0, arg, mode string) *victim {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestKillHelperProcess$", "--", arg)
	cmd.Args[0] = argv0
	cmd.Env = []string{killHelperEnv + "=" + mode}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &victim{pid: cmd.Process.Pid, exited: make(chan *os.ProcessState, 1)}
	reaped := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-reaped
	})
	ready := make(chan error, 1)
	go func() {
		defer close(reaped)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = errors.New("helper said " + line)
		}
		ready <- err
		_ = cmd.Wait()
		v.exited <- cmd.ProcessState
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("victim: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("victim not ready within 30s")
	}
	return v
}

// exitSignal waits (up to 10s) for the victim to be reaped and returns the signal that ended it.
func exitSignal(t *testing.T, v *victim) syscall.Signal {
	t.Helper()
	select {
	case st := <-v.exited:
		return st.Sys().(syscall.WaitStatus).Signal()
	case <-time.After(10 * time.Second):
		t.Fatalf("victim %d not reaped within 10s", v.pid)
		return 0
	}
}

func TestTerminate(t *testing.T) {
	token := "pgflex-kill-" + time.Now().Format("150405.000000000")
	polite := startVictim(t, "pgflex-victim", token+"-polite", "default")
	stubborn := startVictim(t, "pgflex-victim", token+"-stubborn", "ignore-term")

	// Found by name and argument; not by another argument or another name.
	if got := ProcessesWithArg("pgflex-victim", token+"-polite"); !slices.Equal(got, []int{polite.pid}) {
		t.Fatalf("ProcessesWithArg = %v, want [%d]", got, polite.pid)
	}
	if got := ProcessesWithArg("pgflex-victim", token); len(got) != 0 {
		t.Errorf("a prefix of an argument matched: %v", got)
	}
	if got := ProcessesWithArg("other-name", token+"-polite"); len(got) != 0 {
		t.Errorf("another executable name matched: %v", got)
	}
	if Gone(polite.pid) || Gone(stubborn.pid) {
		t.Fatal("a live victim is reported gone")
	}
	if err := WaitGone([]int{stubborn.pid}, 200*time.Millisecond); err == nil {
		t.Error("WaitGone returned nil for a live process")
	}

	// A process that honours SIGTERM ends by it.
	if err := Terminate([]int{polite.pid}, 5*time.Second); err != nil {
		t.Fatalf("Terminate(polite): %v", err)
	}
	if sig := exitSignal(t, polite); sig != syscall.SIGTERM {
		t.Errorf("polite victim ended by %v, want SIGTERM", sig)
	}
	// One that ignores it is killed once grace has passed.
	start := time.Now()
	if err := Terminate([]int{stubborn.pid}, time.Second); err != nil {
		t.Fatalf("Terminate(stubborn): %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("SIGKILL after %v, before the grace of 1s", d)
	}
	if sig := exitSignal(t, stubborn); sig != syscall.SIGKILL {
		t.Errorf("stubborn victim ended by %v, want SIGKILL", sig)
	}
	if !Gone(stubborn.pid) {
		t.Error("a reaped victim is not reported gone")
	}
	if err := Terminate(nil, time.Second); err != nil {
		t.Errorf("Terminate(nil) = %v", err)
	}
}

// TestDetachFUSE: a stand-in for gocryptfs (the helper named so, serving a "cipher
// directory" by its command line, ignoring SIGTERM) ends, and the mount is detached.
func TestDetachFUSE(t *testing.T) {
	Require(t, Root)
	tmp := t.TempDir()
	cipherDir, mountDir := filepath.Join(tmp, "cipher"), filepath.Join(tmp, "mount")
	for _, d := range []string{cipherDir, mountDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = syscall.Unmount(mountDir, syscall.MNT_DETACH) })
	if err := syscall.Mount("tmpfs", mountDir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	server := startVictim(t, "gocryptfs", cipherDir, "ignore-term")
	other := startVictim(t, "gocryptfs", cipherDir+"-other", "default")
	if got := FUSEServers(cipherDir); !slices.Equal(got, []int{server.pid}) {
		t.Fatalf("FUSEServers = %v, want [%d]", got, server.pid)
	}
	n, err := DetachFUSE(mountDir, cipherDir, 500*time.Millisecond)
	if err != nil || n != 1 {
		t.Fatalf("DetachFUSE = %d, %v; want 1, nil", n, err)
	}
	if sig := exitSignal(t, server); sig != syscall.SIGKILL {
		t.Errorf("server ended by %v, want SIGKILL", sig)
	}
	if Mounted(t, mountDir) {
		t.Error("mount not detached")
	}
	if Gone(other.pid) {
		t.Error("the server of another cipher directory was ended")
	}
	// Again, with nothing left: no mount point is not an error, no server is 0.
	if n, err := DetachFUSE(mountDir, cipherDir, time.Second); err != nil || n != 0 {
		t.Errorf("second DetachFUSE = %d, %v; want 0, nil", n, err)
	}
}
