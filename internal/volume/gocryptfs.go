package volume

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// Gocryptfs is the Layer backed by gocryptfs v2.4.0, built by scripts/setup.sh
// (see -allow_other below for why not Debian's package).
//
// How the key reaches gocryptfs: the 32-byte key is hex-encoded into a byte
// slice and written to a pipe that is gocryptfs's standard input; gocryptfs
// reads its password from stdin when stdin is not a terminal. The slice is
// zeroed right after the write. The key never appears on a command line, in
// the environment or in a file.
//
// Why a password and not -masterkey=stdin (which 2.3 supports): in password
// mode gocryptfs stores a random volume master key in gocryptfs.conf, sealed
// (AES-GCM) under a key derived from the password, so a wrong key is refused
// at mount time with a clear error (exit code 12) instead of producing
// undecryptable files; and gocryptfs.conf records the feature flags, so a
// mount cannot get them wrong. Crypto-shredding still works: without the DEK,
// gocryptfs.conf cannot be opened. The password's scrypt cost is set to the
// minimum (-scryptn 10) because the password is a random 256-bit key, which no
// amount of stretching makes harder to guess; it keeps mounts fast.
//
// Options. The tuning flags are in GocryptfsOptions; their defaults,
// AES-256-GCM contents, -noprealloc and -kernel_cache, were chosen by
// measurement (bench/README.md). PostgreSQL TPC-B on this volume ran at
// about 0.6 of the throughput of the same server on the plain disk (gocryptfs
// defaults: 0.5), and `pgbench -i -s 20` took 4 to 6 times as long: the cost is
// one FUSE round trip per 8 KiB write, which no flag of gocryptfs removes.
//
// Why not FUSE's writeback cache, which would batch those writes: go-fuse
// masks CAP_WRITEBACK_CACHE in its INIT reply and neither it nor gocryptfs has
// an option for it; a one-line go-fuse patch that accepts it was built,
// tested and measured (bench/README.md) and rejected. It made `pgbench -i -s 20` about
// 1.5 times faster, but not TPC-B (TPS ratio median 0.57 against 0.68, 6
// rounds each): a commit is a WAL write and an fdatasync either way, and with
// the cache the kernel adds a SETATTR round trip per fsync to push the mtime
// it now owns (utimensat in gocryptfs on 3 of 4 fdatasyncs; an 8 KiB write +
// fdatasync took longer in every pair measured). And it changes what the
// filesystem promises: write(2) no longer reports ENOSPC (gocryptfs's own
// TestDiskFull writes forever), a full disk shows only as a failed fsync or
// close, and Linux keeps a writeback error only while the inode stays
// cached, so the checkpointer's later fsync can miss it; a crash of
// gocryptfs loses unsynced writes; and the kernel trusts its own cached file
// size over the ciphertext's (gocryptfs's TestSharedstorage fails). The fixed
// flags:
//   - -allow_other: the daemon runs as root, PostgreSQL as an unprivileged
//     user. gocryptfs running as root with allow_other creates each file
//     and directory as the calling user (so PostgreSQL owns its files) and
//     adds default_permissions, so the kernel enforces file modes.
//     It creates as the caller by switching the effective uid and gid of
//     the serving thread around the create, which is only safe if the
//     switch affects that one thread. Debian 12's gocryptfs 2.3 is built
//     with golang.org/x/sys 0.3.0, whose Setreuid/Setregid switch every
//     thread (glibc's setxid broadcast, seen with strace), so concurrent
//     creates in different directories race: files owned by root that
//     their creator cannot open, or EPERM (TestConcurrentCreateOwnership:
//     42% of 4-way concurrent creates). scripts/setup.sh therefore builds
//     gocryptfs v2.4.0 from its Go module, whose x/sys switches one thread
//     (0 failures in the same test).
//   - -nosyslog: there is no syslog here; output goes to a log file beside
//     the cipher directory (never a pipe, which would kill gocryptfs with
//     SIGPIPE once the daemon that read it is gone).
//   - -q: gocryptfs -init without -q prints the master key on stdout.
//     Stdout is discarded in any case.
//   - Durability: gocryptfs passes fsync/fdatasync of files and directories
//     through to fsync(2) of the ciphertext file or directory (checked with
//     strace, also under PostgreSQL: its WAL fdatasync becomes pwrite64 and
//     fsync of the ciphertext), and FUSE is mounted without writeback cache,
//     so a write has reached the ciphertext file when write(2) returns
//     (TestGocryptfsWriteReachesCiphertext): a crash of gocryptfs loses
//     nothing that was written, and a full disk fails the write(2).
type Gocryptfs struct {
	// Binary is the gocryptfs executable; "" means "gocryptfs" from PATH.
	Binary string
	// Options are the tuning flags; the zero value is the measured default.
	Options GocryptfsOptions
	// Logger receives the layer's events; nil means slog.Default().
	Logger *slog.Logger
}

// GocryptfsOptions are gocryptfs flags that trade something for speed. The
// zero value is the default chosen by measurement (bench/README.md).
type GocryptfsOptions struct {
	// XChaCha selects XChaCha20-Poly1305 for file contents at Init
	// instead of AES-256-GCM. Both are authenticated. With AES-NI (as
	// here) AES-GCM is the faster cipher (gocryptfs -speed: 2.6 GB/s vs
	// 1.8 GB/s) and measured no worse under PostgreSQL; XChaCha is for
	// CPUs without AES instructions.
	XChaCha bool
	// Prealloc keeps gocryptfs's fallocate before each write. Off
	// (-noprealloc, the default) measured about +20% TPC-B throughput.
	//
	// What preallocation guards against: a write that hits a full disk
	// halfway can tear a 4 KiB ciphertext block that already held data,
	// making that data unreadable. PostgreSQL only overwrites blocks that
	// are already allocated, with one exception: WAL segments created
	// sparse when wal_init_zero is off. So -noprealloc is safe only with
	// wal_init_zero on, which postgres.Settings keeps by default.
	Prealloc bool
	// NoKernelCache turns off -kernel_cache. With it, the kernel keeps a
	// file's plaintext pages cached across opens (PostgreSQL reopens
	// relation files often); safe because only this mount writes the
	// cipher directory. It measured neutral for TPC-B.
	NoKernelCache bool
}

// gocryptfs exit codes (gocryptfs/internal/exitcodes).
const (
	gocryptfsExitPasswordIncorrect = 12
)

const gocryptfsConf = "gocryptfs.conf"

// layerEnv is the whole environment of FUSE servers: enough to find
// fusermount3, nothing of the daemon's.
func layerEnv() []string { return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"} }

var _ Layer = (*Gocryptfs)(nil)

// Name implements Layer.
func (g *Gocryptfs) Name() string { return "gocryptfs" }

// DataDir implements Layer: the whole mount is plaintext.
func (g *Gocryptfs) DataDir(mountDir string) string { return mountDir }

func (g *Gocryptfs) binary() string {
	if g.Binary != "" {
		return g.Binary
	}
	return "gocryptfs"
}

func (g *Gocryptfs) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

// Available reports ErrLayerMissing when gocryptfs or /dev/fuse is missing.
func (g *Gocryptfs) Available() error {
	if _, err := exec.LookPath(g.binary()); err != nil {
		return fmt.Errorf("%w: %v", ErrLayerMissing, err)
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLayerMissing, err)
	}
	return f.Close()
}

// InitArgs returns the gocryptfs -init flags for these options.
func (o GocryptfsOptions) InitArgs() []string {
	args := []string{"-init", "-q", "-scryptn", "10"}
	if o.XChaCha {
		args = append(args, "-xchacha")
	}
	return args
}

// MountArgs returns the gocryptfs mount flags for these options.
func (o GocryptfsOptions) MountArgs() []string {
	args := []string{"-q", "-nosyslog", "-allow_other"}
	if !o.Prealloc {
		args = append(args, "-noprealloc")
	}
	if !o.NoKernelCache {
		args = append(args, "-kernel_cache")
	}
	return args
}

// Init implements Layer.
func (g *Gocryptfs) Init(ctx context.Context, cipherDir string, key []byte, _ InitOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.MkdirAll(cipherDir, 0o711); err != nil {
		return fmt.Errorf("gocryptfs init: create cipher dir: %w", err)
	}
	entries, err := os.ReadDir(cipherDir)
	if err != nil {
		return fmt.Errorf("gocryptfs init: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("gocryptfs init %s: %w", cipherDir, ErrAlreadyInitialized)
	}
	if err := g.checkVersion(ctx); err != nil {
		return err
	}
	// The cipher dir's mode is the mount root's mode: traverse-only, so
	// the PostgreSQL user reaches its own data directory and nobody lists
	// the root.
	if err := os.Chmod(cipherDir, 0o711); err != nil {
		return fmt.Errorf("gocryptfs init: %w", err)
	}
	var stderr bytes.Buffer
	args := append(g.Options.InitArgs(), "--", cipherDir)
	cmd := exec.CommandContext(ctx, g.binary(), args...)
	cmd.Env = layerEnv()
	cmd.Stdout = nil // -init without -q prints the master key: never keep stdout
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 8 << 10}
	if err := g.runWithKey(cmd, key); err != nil {
		return fmt.Errorf("gocryptfs init %s: %w: %s", cipherDir, err, strings.TrimSpace(stderr.String()))
	}
	g.logger().InfoContext(ctx, "volume initialised", "layer", g.Name(), "cipher_dir", cipherDir)
	return nil
}

// gocryptfsVersionRE reads the version from `gocryptfs -version`: "gocryptfs v2.4.0 without_openssl;
// ..." (built from the module) or "gocryptfs 2.3; ..." (Debian 12).
var gocryptfsVersionRE = regexp.MustCompile(`^gocryptfs v?(\d+)\.(\d+)`)

// gocryptfsVersionOK reports whether `gocryptfs -version` output names v2.4 or later: older
// releases (Debian 12's 2.3) switch the credentials of every thread around a create, so
// concurrent creates race (see -allow_other above).
func gocryptfsVersionOK(out string) (version string, ok bool) {
	m := gocryptfsVersionRE.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return strings.TrimSpace(out), false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return m[1] + "." + m[2], major > 2 || (major == 2 && minor >= 4)
}

// checkVersion refuses a gocryptfs that races concurrent file creation, before any volume
// depends on it.
func (g *Gocryptfs) checkVersion(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, g.binary(), "-version")
	cmd.Env = layerEnv()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%w: %s -version: %v", ErrLayerMissing, g.binary(), err)
	}
	if v, ok := gocryptfsVersionOK(string(out)); !ok {
		path, _ := exec.LookPath(g.binary())
		return fmt.Errorf("%w: %s is gocryptfs %s; pgflex needs v2.4.0 or later, whose file creation is safe under concurrency (Debian 12's 2.3 is not). Run `make setup`, which builds it into /usr/local/bin, and make sure it comes first on PATH",
			ErrLayerMissing, path, v)
	}
	return nil
}

// Mount implements Layer.
func (g *Gocryptfs) Mount(ctx context.Context, cipherDir, mountDir string, key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := g.checkVersion(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cipherDir, gocryptfsConf)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("gocryptfs mount %s: %w", cipherDir, ErrNotInitialized)
		}
		return fmt.Errorf("gocryptfs mount: %w", err)
	}
	st, err := g.Status(ctx, cipherDir, mountDir)
	if err != nil {
		return fmt.Errorf("gocryptfs mount: %w", err)
	}
	if st != NotMounted {
		return fmt.Errorf("gocryptfs mount %s: mount directory is %s", mountDir, st)
	}
	if err := os.MkdirAll(mountDir, 0o700); err != nil {
		return fmt.Errorf("gocryptfs mount: create mount dir: %w", err)
	}

	// gocryptfs daemonises itself: the process we start forks the real
	// FUSE server, waits until the mount is live, and exits 0, or exits
	// with the server's error code. The FUSE server then lives on its own,
	// so the mount survives this process being killed.
	logPath := g.LogPath(cipherDir)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("gocryptfs mount: open log: %w", err)
	}
	defer logFile.Close()
	start, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("gocryptfs mount: %w", err)
	}
	absCipher, err := filepath.Abs(cipherDir)
	if err != nil {
		return fmt.Errorf("gocryptfs mount: %w", err)
	}
	args := append(g.Options.MountArgs(), "--", absCipher, mountDir)
	cmd := exec.CommandContext(ctx, g.binary(), args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own session: a signal to the daemon's process group (Ctrl-C,
	// a service manager stopping the daemon) must not reach the FUSE
	// server, which has to outlive the daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Nor must it pin the daemon's working directory or inherit its
	// environment, which may carry other secrets.
	cmd.Dir = "/"
	cmd.Env = layerEnv()
	runErr := g.runWithKey(cmd, key)
	if runErr != nil {
		out := fsutil.Tail(logPath, start, 4<<10)
		var ee *exec.ExitError
		if errors.As(runErr, &ee) && ee.ExitCode() == gocryptfsExitPasswordIncorrect {
			return fmt.Errorf("gocryptfs mount %s: %w", cipherDir, ErrWrongKey)
		}
		g.logger().ErrorContext(ctx, "gocryptfs mount failed", "cipher_dir", cipherDir, "mount_dir", mountDir, "err", runErr, "output", out)
		return fmt.Errorf("gocryptfs mount %s on %s: %w: %s", cipherDir, mountDir, runErr, out)
	}
	st, err = g.Status(ctx, cipherDir, mountDir)
	if err != nil {
		return fmt.Errorf("gocryptfs mount: %w", err)
	}
	if st != Mounted {
		return fmt.Errorf("gocryptfs mount %s: gocryptfs exited 0 but mount is %s: %s", mountDir, st, fsutil.Tail(logPath, start, 4<<10))
	}
	g.logger().InfoContext(ctx, "volume mounted", "layer", g.Name(), "cipher_dir", cipherDir, "mount_dir", mountDir)
	return nil
}

// LogPath is where the gocryptfs server's output goes: beside the cipher
// directory, never inside the volume. gocryptfs logs no key material; its
// warnings name files by inode or encrypted name.
func (g *Gocryptfs) LogPath(cipherDir string) string {
	return filepath.Clean(cipherDir) + ".gocryptfs.log"
}

// Shred removes gocryptfs.conf, which holds the volume's master key sealed
// under the DEK, and syncs the directory: without it the ciphertext cannot
// be decrypted even by someone who still has the DEK. Used by
// Volume.Destroy before it deletes the files.
func (g *Gocryptfs) Shred(ctx context.Context, cipherDir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, name := range []string{gocryptfsConf, gocryptfsConf + ".bak"} {
		if err := os.Remove(filepath.Join(cipherDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("shred %s: %w", name, err)
		}
	}
	if err := fsutil.SyncDir(cipherDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Unmount implements Layer.
func (g *Gocryptfs) Unmount(ctx context.Context, mountDir string) error {
	return unmount(ctx, g.logger(), mountDir)
}

// Status implements Layer.
func (g *Gocryptfs) Status(ctx context.Context, cipherDir, mountDir string) (State, error) {
	return status(ctx, "fuse.gocryptfs", cipherDir, mountDir)
}

// runWithKey starts cmd with a pipe on stdin carrying hex(key) and waits.
func (g *Gocryptfs) runWithKey(cmd *exec.Cmd, key []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	cmd.Stdin = r
	// 64 hex digits and a newline fit in any pipe buffer, so writing
	// before the child runs cannot block.
	pw := make([]byte, hex.EncodedLen(len(key))+1)
	hex.Encode(pw, key)
	pw[len(pw)-1] = '\n'
	_, werr := w.Write(pw)
	clear(pw)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write key to pipe: %w", werr)
	}
	return cmd.Run()
}

// status is the Layer.Status of any FUSE layer whose mountinfo source is
// the absolute cipher directory.
func status(ctx context.Context, fstype, cipherDir, mountDir string) (State, error) {
	if err := ctx.Err(); err != nil {
		return NotMounted, err
	}
	e, ok, err := lookupMount(mountDir)
	if err != nil {
		return NotMounted, err
	}
	if !ok {
		return NotMounted, nil
	}
	wantSrc, err := filepath.Abs(cipherDir)
	if err != nil {
		return NotMounted, fmt.Errorf("cipher dir: %w", err)
	}
	if e.FSType != fstype || filepath.Clean(e.Source) != wantSrc {
		return Mounted, fmt.Errorf("%w: %s from %s on %s", ErrForeignMount, e.FSType, e.Source, e.MountPoint)
	}
	// statfs always reaches the FUSE server (stat could be answered from
	// the kernel's attribute cache), so it tells a live mount from one
	// whose server died.
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mountDir, &sfs); err != nil {
		if isDisconnected(err) {
			return Stale, nil
		}
		return Mounted, fmt.Errorf("statfs %s: %w", mountDir, err)
	}
	return Mounted, nil
}

// unmount unmounts dir; a Stale mount is detached (MNT_DETACH), since no
// server is left to answer the kernel.
func unmount(ctx context.Context, log *slog.Logger, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var sfs syscall.Statfs_t
	flags := 0
	if err := syscall.Statfs(dir, &sfs); err != nil && isDisconnected(err) {
		flags = syscall.MNT_DETACH
	}
	err := syscall.Unmount(dir, flags)
	// A process that just closed its last file on the volume (a server's
	// last child exiting, a scan of the directory) can make the kernel
	// report EBUSY for a moment: retry briefly before giving up.
	for retry := 0; errors.Is(err, syscall.EBUSY) && retry < 50; retry++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("unmount %s: %w (in use by %s)", dir, err, holders(dir))
		case <-time.After(100 * time.Millisecond):
		}
		err = syscall.Unmount(dir, flags)
	}
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			// Not a mount point: already unmounted.
			return nil
		}
		if errors.Is(err, syscall.EPERM) {
			// Not root: fusermount3 is setuid and unmounts our own mounts.
			out, ferr := exec.CommandContext(ctx, "fusermount3", "-u", dir).CombinedOutput()
			if ferr != nil {
				return fmt.Errorf("unmount %s: %w: %s", dir, ferr, strings.TrimSpace(string(out)))
			}
			return nil
		}
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("unmount %s: %w (in use by %s)", dir, err, holders(dir))
		}
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	log.InfoContext(ctx, "volume unmounted", "mount_dir", dir, "detached", flags != 0)
	return nil
}

// holders lists the processes whose working directory, root or open files
// are under dir, for the error of a busy unmount.
func holders(dir string) string {
	dir = filepath.Clean(dir)
	under := func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		base := filepath.Join("/proc", p.Name())
		links := []string{filepath.Join(base, "cwd"), filepath.Join(base, "root")}
		fds, _ := os.ReadDir(filepath.Join(base, "fd"))
		for _, fd := range fds {
			links = append(links, filepath.Join(base, "fd", fd.Name()))
		}
		for _, l := range links {
			if t, err := os.Readlink(l); err == nil && under(t) {
				comm, _ := os.ReadFile(filepath.Join(base, "comm"))
				out = append(out, fmt.Sprintf("pid %s (%s) %s", p.Name(), strings.TrimSpace(string(comm)), filepath.Base(l)))
				break
			}
		}
	}
	if len(out) == 0 {
		return "no process found"
	}
	return strings.Join(out, ", ")
}

// limitedBuffer keeps the first max bytes written to it and drops the rest,
// so a chatty child cannot grow memory without bound.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
