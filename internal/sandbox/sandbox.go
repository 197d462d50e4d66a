// Package sandbox confines a server's PostgreSQL, beyond what its own OS account already does,
// so that a process of one server that escaped SQL (the threat pgflex is built against)
// learns and reaches as little as possible of the host:
//
//   - a mount namespace of its own, a slave of the host's (where the host's mounts are shared,
//     unmounts on the host reach it; its own mounts never reach the host), in which every other
//     server's volume is detached: a namespace holds no copy of a volume but its own, so that
//     a volume the daemon unmounts on the host (a key was revoked) is gone everywhere;
//   - /proc mounted with hidepid=invisible: processes of other accounts (other servers, the
//     daemon, gocryptfs) are not even listed, let alone their command lines;
//   - /tmp and /var/tmp bound to a directory inside the server's encrypted volume, and a
//     private /dev/shm: nothing the server writes lands in a shared, plaintext place, and no
//     other server's files are there to find;
//   - the daemon's data directory (keys, state, other servers' ciphertext) hidden under an
//     empty read-only tmpfs;
//   - no_new_privs: setuid executables (su, mount, fusermount3, ...) give nothing;
//   - no core dumps (a core would hold plaintext pages outside the volume);
//   - optionally (NoFollow), directories seen read-only and without following any symbolic link
//     in them: pgBackRest, run for the daemon as a server's backup account with the server's
//     repository passphrases in its environment, reads the server's data directory, where the
//     server's own account could plant a link to /proc/self/environ or to any file the backup
//     account can read.
//
// A Go process cannot do this between fork and exec, so the daemon runs its own executable
// with the arguments Command gives; that process (Main) sets the confinement up as root,
// drops to the server's account and executes PostgreSQL in place: the postmaster keeps the PID
// the daemon started.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgflex/pgflex/internal/osuser"
)

// command is the first argument that makes the pgflex binary a sandbox (Main).
const command = "__pgflex-sandbox"

// Spec is how one server's processes are confined.
type Spec struct {
	// User runs the program (with exactly its groups); never root.
	User osuser.User
	// Dir is the program's working directory.
	Dir string
	// Tmp becomes /tmp and /var/tmp: a directory owned by User inside the server's volume.
	// Empty: the host's /tmp is left in place (for a program that writes nothing there).
	Tmp string
	// Hide are directories covered by an empty read-only tmpfs.
	Hide []string
	// Volumes is the directory under which the servers' volumes are mounted; every mount
	// under it but Own (and what is under Own), and every FUSE mount but Own, is detached in
	// the namespace. Optional.
	Volumes string
	// Own is the server's own volume mount, kept.
	Own string
	// NoFollow are directories bound onto themselves read-only, nosymfollow, nosuid, nodev and
	// noexec: nothing is written there, and no symbolic link under them is followed.
	NoFollow []string
}

func (s Spec) validate() error {
	if s.User.UID == 0 || s.User.GID == 0 {
		return errors.New("sandbox: refusing to run as root")
	}
	paths := append(append([]string{s.Dir}, s.Hide...), s.NoFollow...)
	if s.Tmp != "" {
		paths = append(paths, s.Tmp)
	}
	if s.Volumes != "" {
		paths = append(paths, s.Volumes, s.Own)
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) || p != filepath.Clean(p) || strings.ContainsAny(p, ",\n ") {
			return fmt.Errorf("sandbox: path %q must be clean and absolute", p)
		}
	}
	// The private /tmp covers the host's: a working directory there would vanish.
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if s.Tmp != "" && (s.Dir == t || strings.HasPrefix(s.Dir, t+"/")) {
			return fmt.Errorf("sandbox: working directory %s lies under %s, which the sandbox replaces", s.Dir, t)
		}
	}
	return nil
}

// Command returns a command that runs argv inside the confinement s describes. self is an
// executable whose main calls Main first (the pgflex binary). The caller sets Env, output and
// SysProcAttr.Setsid as it would for argv itself; Credential must stay unset (the sandbox
// starts as root to build the namespace, then drops to s.User).
func (s Spec) Command(self string, argv ...string) (*exec.Cmd, error) {
	return s.CommandContext(context.Background(), self, argv...)
}

// CommandContext is Command bound to ctx, as exec.CommandContext (the sandbox executes argv in
// place, so the process ctx cancels is argv's).
func (s Spec) CommandContext(ctx context.Context, self string, argv ...string) (*exec.Cmd, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return nil, errors.New("sandbox: the program must be an absolute path")
	}
	groups := make([]string, len(s.User.Groups))
	for i, g := range s.User.Groups {
		groups[i] = strconv.FormatUint(uint64(g), 10)
	}
	args := []string{command,
		"--uid=" + strconv.FormatUint(uint64(s.User.UID), 10),
		"--gid=" + strconv.FormatUint(uint64(s.User.GID), 10),
		"--groups=" + strings.Join(groups, ","),
		"--dir=" + s.Dir}
	if s.Tmp != "" {
		args = append(args, "--tmp="+s.Tmp)
	}
	for _, h := range s.Hide {
		args = append(args, "--hide="+h)
	}
	if s.Volumes != "" {
		args = append(args, "--volumes="+s.Volumes, "--own="+s.Own)
	}
	for _, n := range s.NoFollow {
		args = append(args, "--nofollow="+n)
	}
	args = append(append(args, "--"), argv...)
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Dir = "/"
	return cmd, nil
}

// Main runs the sandbox when args (os.Args[1:]) name it and reports whether they did. It
// returns only on failure; on success the process becomes the confined program.
//
//	if code, ok := sandbox.Main(os.Args[1:]); ok { os.Exit(code) }
func Main(args []string) (code int, ok bool) {
	if len(args) == 0 || args[0] != command {
		return 0, false
	}
	if err := run(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "pgflex sandbox: %v\n", err)
		return 127, true
	}
	return 0, true // not reached: run executes the program
}

func parse(args []string) (Spec, []string, error) {
	var s Spec
	for i, a := range args {
		if a == "--" {
			return s, args[i+1:], nil
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return s, nil, fmt.Errorf("bad argument %q", a)
		}
		switch k {
		case "--uid", "--gid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return s, nil, fmt.Errorf("bad %s %q", k, v)
			}
			if k == "--uid" {
				s.User.UID = uint32(n)
			} else {
				s.User.GID = uint32(n)
			}
		case "--groups":
			for _, g := range strings.Split(v, ",") {
				if g == "" {
					continue
				}
				n, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return s, nil, fmt.Errorf("bad group %q", g)
				}
				s.User.Groups = append(s.User.Groups, uint32(n))
			}
		case "--dir":
			s.Dir = v
		case "--tmp":
			s.Tmp = v
		case "--hide":
			s.Hide = append(s.Hide, v)
		case "--volumes":
			s.Volumes = v
		case "--own":
			s.Own = v
		case "--nofollow":
			s.NoFollow = append(s.NoFollow, v)
		default:
			return s, nil, fmt.Errorf("unknown argument %q", k)
		}
	}
	return s, nil, errors.New("no program after --")
}

const (
	prSetNoNewPrivs = 38    // PR_SET_NO_NEW_PRIVS, <linux/prctl.h>
	msNoSymfollow   = 0x100 // MS_NOSYMFOLLOW, <linux/mount.h> (Linux 5.10)
)

func run(args []string) error {
	s, argv, err := parse(args)
	if err != nil {
		return err
	}
	if err := s.validate(); err != nil {
		return err
	}
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return errors.New("the program must be an absolute path")
	}
	if os.Geteuid() != 0 {
		return errors.New("must start as root")
	}
	// unshare and the mounts apply to the calling thread; execve runs on it too.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare the mount namespace: %w", err)
	}
	// Slave: the host's unmounts propagate in (a locked volume disappears here too); nothing
	// mounted here propagates out.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	if s.Volumes != "" {
		if err := detachOthers(s.Volumes, s.Own); err != nil {
			return err
		}
	}
	const noexec = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
	if err := syscall.Mount("proc", "/proc", "proc", noexec, "hidepid=invisible"); err != nil {
		return fmt.Errorf("mount /proc with hidepid: %w", err)
	}
	for _, n := range s.NoFollow {
		if err := syscall.Mount(n, n, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", n, err)
		}
		flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | msNoSymfollow | noexec)
		if err := syscall.Mount("", n, "", flags, ""); err != nil {
			return fmt.Errorf("remount %s read-only, nosymfollow: %w", n, err)
		}
	}
	// Hidden directories first: one may lie under /tmp (a test's data directory), which the
	// private /tmp then covers anyway.
	for _, h := range s.Hide {
		if err := syscall.Mount("tmpfs", h, "tmpfs", syscall.MS_RDONLY|noexec, "size=4k,mode=0755"); err != nil {
			return fmt.Errorf("hide %s: %w", h, err)
		}
	}
	// /tmp last: s.Tmp itself may be reached through the host's /tmp.
	for _, t := range []string{"/var/tmp", "/tmp"} {
		if s.Tmp == "" {
			break
		}
		if err := syscall.Mount(s.Tmp, t, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", s.Tmp, t, err)
		}
		if err := syscall.Mount("", t, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, ""); err != nil {
			return fmt.Errorf("remount %s nosuid: %w", t, err)
		}
	}
	if err := syscall.Mount("tmpfs", "/dev/shm", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount a private /dev/shm: %w", err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		return fmt.Errorf("disable core dumps: %w", err)
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("set no_new_privs: %w", e)
	}
	groups := make([]int, len(s.User.Groups))
	for i, g := range s.User.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(s.User.GID), int(s.User.GID), int(s.User.GID)); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setresuid(int(s.User.UID), int(s.User.UID), int(s.User.UID)); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if err := syscall.Chdir(s.Dir); err != nil {
		return fmt.Errorf("chdir %s: %w", s.Dir, err)
	}
	err = syscall.Exec(argv[0], argv, os.Environ())
	return fmt.Errorf("exec %s: %w", argv[0], err)
}

// detachOthers detaches, in this mount namespace, every mount under volumes that is not own or
// under it, and every other FUSE mount or ext4 filesystem on a loop device: the copies of other
// servers' volumes (this daemon's, or another installation's on the same host) the namespace was
// born with. A copy left here would keep that volume's FUSE server and its key, or its
// filesystem and loop device, alive after the host unmounts it.
func detachOthers(volumes, own string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var others []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := f[4]
		if p == own || strings.HasPrefix(p, own+"/") {
			continue
		}
		// The filesystem type and source follow the " - " separator.
		volume := false
		for i, x := range f {
			if x == "-" && i+2 < len(f) {
				fstype, source := f[i+1], f[i+2]
				volume = fstype == "fuse" || strings.HasPrefix(fstype, "fuse.") ||
					fstype == "ext4" && strings.HasPrefix(source, "/dev/loop")
				break
			}
		}
		if volume || strings.HasPrefix(p, volumes+"/") {
			others = append(others, p)
		}
	}
	// Deepest first.
	sort.Slice(others, func(i, j int) bool { return len(others[i]) > len(others[j]) })
	var vanished []string
	for _, p := range others {
		err := syscall.Unmount(p, syscall.MNT_DETACH)
		switch {
		case err == nil || errors.Is(err, syscall.EINVAL):
		case errors.Is(err, syscall.ENOENT):
			// Unmounted on the host (and so here) since mountinfo was read, with its
			// directory: checked below.
			vanished = append(vanished, p)
		default:
			return fmt.Errorf("detach %s: %w", p, err)
		}
	}
	if len(vanished) == 0 {
		return nil
	}
	// A path that no longer resolves is fine only if its mount is gone too: a mount whose
	// directory was removed elsewhere would still be listed.
	b, err = os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, p := range vanished {
		if mountedAt(string(b), p) {
			return fmt.Errorf("detach %s: its directory is gone but the mount is still here", p)
		}
	}
	return nil
}

// mountedAt says whether mountinfo lists a mount at p, also one whose directory was removed
// (listed as "p\040(deleted)").
func mountedAt(mountinfo, p string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && (f[4] == p || f[4] == p+`\040(deleted)`) {
			return true
		}
	}
	return false
}
