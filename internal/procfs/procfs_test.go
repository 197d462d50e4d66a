package procfs

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/testkit"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		in   string
		want Stat
		ok   bool
	}{
		{"42 (postgres) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10", Stat{PID: 42, PPID: 7, State: 'S', StartTime: 12345}, true},
		// A command name with spaces and parentheses.
		{"43 (a) b (c) R 1 43 43 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0", Stat{PID: 43, PPID: 1, State: 'R', StartTime: 999}, true},
		{"44 (x) S 1", Stat{}, false},
		{"garbage", Stat{}, false},
	}
	for _, tt := range tests {
		got, err := parseStat(tt.in)
		if tt.ok != (err == nil) || (tt.ok && got != tt.want) {
			t.Errorf("parseStat(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// TestIdentityAndAncestry: a child descends from this process; this process does not descend
// from the child; an identity with the right PID and another start time names no process.
func TestIdentityAndAncestry(t *testing.T) {
	self, err := IdentityOf(os.Getpid())
	if err != nil || !self.Is() {
		t.Fatalf("IdentityOf(self) = %+v, %v", self, err)
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	if !DescendsFrom(child.Process.Pid, self, 3) {
		t.Error("the child does not descend from this process")
	}
	childID, err := IdentityOf(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if DescendsFrom(os.Getpid(), childID, 6) {
		t.Error("this process descends from its child")
	}
	impostor := self
	impostor.StartTime++
	if impostor.Is() || DescendsFrom(child.Process.Pid, impostor, 3) {
		t.Error("an identity with another start time passed for this process")
	}
	if p, err := Parent(child.Process.Pid); err != nil || p != os.Getpid() {
		t.Errorf("Parent = %d, %v", p, err)
	}
}

// TestKillUser ends every process of an account, and refuses root.
func TestKillUser(t *testing.T) {
	testkit.Require(t, testkit.Root, testkit.Accounts) // runs processes as another account
	if err := KillUser(context.Background(), 0); err == nil {
		t.Fatal("KillUser(0) was accepted")
	}
	// An account of the test's own: other tests run processes as shared accounts (nobody).
	name := "pgflex-tkill-" + strconv.Itoa(os.Getpid())
	u, err := osuser.Ensure(context.Background(), name, osuser.Options{Comment: "pgflex procfs test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { osuser.Remove(context.Background(), name) })
	var cmds []*exec.Cmd
	for range 3 {
		c := exec.Command("sleep", "60")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		go c.Wait()
	}
	pids, err := OfUser(u.UID)
	if err != nil || len(pids) < 3 {
		t.Fatalf("OfUser = %v, %v", pids, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := KillUser(ctx, u.UID); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if Alive(c.Process.Pid) {
			t.Errorf("process %d survived", c.Process.Pid)
		}
	}
}
