package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// The test binary doubles as the sandbox, as the pgflex binary does.
func TestMain(m *testing.M) {
	if code, ok := Main(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// testRoot is a directory for one test, traversable by every account, and not under /tmp,
// which the sandbox replaces by its private directory.
func testRoot(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("/run", "pgflex-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// nobody is an unprivileged account every Debian system has.
func nobody(t *testing.T) osuser.User {
	t.Helper()
	u, err := osuser.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestConfinement runs a shell inside the sandbox and checks each property from the inside:
// what a PostgreSQL process that escaped SQL would see.
func TestConfinement(t *testing.T) {
	// Root builds the mount namespace and drops to another account; gocryptfs makes a FUSE
	// mount.
	testkit.Require(t, testkit.Root, testkit.FUSE, testkit.Fscrypt)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t)
	u := nobody(t)
	tmp := filepath.Join(root, "private-tmp")
	hidden := filepath.Join(root, "daemon-data")
	for _, d := range []string{tmp, hidden} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(tmp, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
	// Two servers' volumes: the sandbox keeps its own and detaches the other's copy.
	volumes := filepath.Join(root, "mnt")
	own, other := filepath.Join(volumes, "own"), filepath.Join(volumes, "other")
	for _, v := range []string{own, other} {
		if err := os.MkdirAll(v, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount("tmpfs", v, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(v, syscall.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(v, "data"), []byte(filepath.Base(v)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A FUSE volume elsewhere (another installation's, a test's): detached too, or its FUSE
	// server would outlive its unmount on the host.
	elsewhere := &volume.Volume{Dir: filepath.Join(root, "elsewhere")}
	key := make([]byte, volume.KeySize)
	if err := elsewhere.Create(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := elsewhere.Mount(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { elsewhere.Unmount(context.Background()) })
	// And an fscrypt volume elsewhere: its copy would keep its filesystem and loop device.
	elsewhereFS := &volume.Volume{Dir: filepath.Join(root, "elsewhere-fscrypt"), Layer: &volume.Fscrypt{}, Size: volume.MinFscryptSize}
	if err := elsewhereFS.Create(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := elsewhereFS.Mount(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { elsewhereFS.Unmount(context.Background()) })
	secret := filepath.Join(hidden, "root.key")
	if err := os.WriteFile(secret, []byte("positive-control"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A process of root's outside the sandbox, which the sandboxed shell must not see.
	outsider := exec.Command("sleep", "60")
	if err := outsider.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outsider.Process.Kill(); outsider.Wait() })

	script := strings.Join([]string{
		`echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"`,
		`echo "cwd=$(pwd)"`,
		`grep '^NoNewPrivs:' /proc/self/status`,
		`echo "core=$(ulimit -c)"`,
		`test -e /proc/` + itoa(outsider.Process.Pid) + ` && echo "outsider=visible" || echo "outsider=hidden"`,
		`test -e /proc/1 && echo "init=visible" || echo "init=hidden"`,
		`echo mine > /tmp/written && echo "tmpwrite=ok"`,
		`ls -A ` + hidden + ` | wc -l | sed 's/^/hiddenentries=/'`,
		`(echo x > ` + hidden + `/x) 2>/dev/null && echo "hiddenwrite=ok" || echo "hiddenwrite=refused"`,
		`echo "shm=$(stat -c %a /dev/shm)"`,
		`echo "own=$(cat ` + own + `/data)"`,
		`test -e ` + other + `/data && echo "other=visible" || echo "other=detached"`,
		`grep -c ' ` + volumes + `/' /proc/self/mountinfo | sed 's/^/volumemounts=/'`,
		`grep -c ' - fuse' /proc/self/mountinfo | sed 's/^/fusemounts=/'`,
		`grep -c ' - ext4 /dev/loop' /proc/self/mountinfo | sed 's/^/loopmounts=/'`,
	}, "\n")
	cmd, err := Spec{User: u, Dir: root, Tmp: tmp, Hide: []string{hidden}, Volumes: volumes, Own: own}.Command(self, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatalf("sandboxed shell did not finish:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("sandboxed shell: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"uid=" + itoa(int(u.UID)) + " ",
		"cwd=" + root,
		"NoNewPrivs:\t1",
		"core=0",
		"outsider=hidden",
		"init=hidden",
		"tmpwrite=ok",
		"hiddenentries=0",
		"hiddenwrite=refused",
		"shm=1777",
		"own=own",
		"other=detached",
		"volumemounts=1",
		"fusemounts=0",
		"loopmounts=0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("inside the sandbox: missing %q in\n%s", want, got)
		}
	}
	// /tmp inside was the private directory, and the host's files are untouched.
	if b, err := os.ReadFile(filepath.Join(tmp, "written")); err != nil || string(b) != "mine\n" {
		t.Errorf("private /tmp: %q, %v", b, err)
	}
	if _, err := os.Stat("/tmp/written"); err == nil {
		t.Error("the sandbox wrote into the host's /tmp")
	}
	// Positive control: on the host the other volume is still mounted.
	if b, err := os.ReadFile(filepath.Join(other, "data")); err != nil || string(b) != "other" {
		t.Errorf("the other volume on the host: %q, %v", b, err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "positive-control" {
		t.Errorf("hidden directory changed on the host: %q, %v", b, err)
	}
}

func TestCommandRefusesRoot(t *testing.T) {
	for _, s := range []Spec{
		{User: osuser.User{UID: 0, GID: 0}, Dir: "/", Tmp: "/tmp"},
		{User: osuser.User{UID: 5, GID: 5}, Dir: "relative", Tmp: "/tmp"},
		{User: osuser.User{UID: 5, GID: 5}, Dir: "/", Tmp: "/tmp", Hide: []string{"/a/../b"}},
		{User: osuser.User{UID: 5, GID: 5}, Dir: "/tmp/x", Tmp: "/srv/t"},
	} {
		if _, err := s.Command("/bin/true", "/bin/true"); err == nil {
			t.Errorf("Command(%+v) accepted", s)
		}
	}
	if _, err := (Spec{User: osuser.User{UID: 5, GID: 5}, Dir: "/", Tmp: "/tmp"}).Command("/bin/true", "true"); err == nil {
		t.Error("a relative program was accepted")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNoFollow: under a NoFollow directory a planted symbolic link leads nowhere (the positive
// control: outside the sandbox it reads the target), regular files read, and nothing is
// written.
func TestNoFollow(t *testing.T) {
	testkit.Require(t, testkit.Root) // builds a mount namespace and drops to another account
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t)
	u := nobody(t)
	data, tmp := filepath.Join(root, "data"), filepath.Join(root, "tmp")
	for _, d := range []string{data, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(tmp, int(u.UID), int(u.GID))
	os.Chown(data, int(u.UID), int(u.GID))
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("target-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "regular"), []byte("regular-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/environ", filepath.Join(data, "environ")); err != nil {
		t.Fatal(err)
	}
	script := "cd " + data + "; cat regular; echo; cat link; echo; cat environ | tr '\\0' '\\n' | grep -c SANDBOX_SECRET; " +
		"(echo x > new) 2>/dev/null && echo wrote || echo readonly"
	run := func(spec *Spec) string {
		var cmd *exec.Cmd
		if spec == nil {
			cmd = exec.Command("/bin/sh", "-c", script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
		} else {
			var err error
			if cmd, err = spec.Command(self, "/bin/sh", "-c", script); err != nil {
				t.Fatal(err)
			}
		}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SANDBOX_SECRET=1"}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	// Positive control: without the sandbox the links lead to their targets.
	if out := run(nil); !strings.Contains(out, "target-content") || !strings.Contains(out, "\n1\n") {
		t.Fatalf("control: the links do not work outside the sandbox:\n%s", out)
	}
	os.Remove(filepath.Join(data, "new"))
	out := run(&Spec{User: u, Dir: "/", Tmp: tmp, NoFollow: []string{data}})
	if !strings.Contains(out, "regular-content") {
		t.Errorf("a regular file under the NoFollow directory did not read:\n%s", out)
	}
	if strings.Contains(out, "target-content") || strings.Contains(out, "\n1\n") {
		t.Errorf("a link under the NoFollow directory was followed:\n%s", out)
	}
	if !strings.Contains(out, "readonly") {
		t.Errorf("the NoFollow directory was writable:\n%s", out)
	}
}

func TestMountedAt(t *testing.T) {
	info := "36 35 0:30 / /run/a/one rw - fuse.gocryptfs x rw\n" +
		"37 35 0:31 / /run/a/two\\040(deleted) rw - fuse.gocryptfs x rw\n"
	for _, c := range []struct {
		p    string
		want bool
	}{
		{"/run/a/one", true},
		{"/run/a/two", true}, // its directory was removed elsewhere: still a mount here
		{"/run/a/three", false},
		{"/run/a", false},
	} {
		if got := mountedAt(info, c.p); got != c.want {
			t.Errorf("mountedAt(%q) = %v, want %v", c.p, got, c.want)
		}
	}
}
