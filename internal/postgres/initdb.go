package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// DefaultOSUser is the unprivileged account PostgreSQL runs as.
const DefaultOSUser = "pgflex-pg"

// OSUser is an operating-system account.
type OSUser struct {
	Name     string
	UID, GID uint32
}

// credential returns the process credential that runs a child as u, with
// no supplementary groups (root's would otherwise be inherited).
func (u OSUser) credential() *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}, NoSetGroups: false}
}

// LookupOSUser finds an existing account.
func LookupOSUser(name string) (OSUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return OSUser{}, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return OSUser{}, fmt.Errorf("OS user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return OSUser{}, fmt.Errorf("OS user %q: gid %q: %w", name, u.Gid, err)
	}
	return OSUser{Name: name, UID: uint32(uid), GID: uint32(gid)}, nil
}

// EnsureOSUser returns the system account name, creating it (no home, no
// login shell, own group) if it does not exist. It needs root to create.
func EnsureOSUser(ctx context.Context, name string) (OSUser, error) {
	if !osUserNameRE.MatchString(name) {
		return OSUser{}, fmt.Errorf("OS user name %q not allowed", name)
	}
	if u, err := LookupOSUser(name); err == nil {
		if u.UID == 0 {
			return OSUser{}, fmt.Errorf("OS user %q is uid 0: PostgreSQL must not run as root", name)
		}
		return u, nil
	}
	cmd := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "pgflex PostgreSQL", name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Another caller may have created it meanwhile (useradd exit 9).
		if u, lerr := LookupOSUser(name); lerr == nil {
			return u, nil
		}
		return OSUser{}, fmt.Errorf("create OS user %q: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return LookupOSUser(name)
}

// InitOptions describe a new cluster.
type InitOptions struct {
	// DataDir is created by InitDB; it must not exist, and its parent (the
	// mounted volume) must. Required.
	DataDir string
	// User runs initdb and will own every file. Required, not root.
	User OSUser
	// BinDir holds initdb; default DefaultBinDir.
	BinDir string
	// Superuser is the bootstrap superuser role; default DefaultSuperuser.
	Superuser string
	// SuperuserPassword is set on the superuser. Nil means a random one
	// that nobody keeps: the service reaches the superuser by peer
	// authentication over the socket and never needs it.
	SuperuserPassword []byte
	// Locale; default C.UTF-8. The encoding is always UTF8.
	Locale string
}

// InitDB creates a cluster in opts.DataDir by running initdb as opts.User.
//
// The superuser password reaches initdb through --pwfile=/dev/fd/3, a pipe
// inherited by initdb: never a command line, environment variable or file.
// (A pipe made by root cannot be reopened through /dev/fd by another user,
// so its read end is first given to opts.User.)
//
// Data checksums are not enabled: every 4 KiB of the volume is already
// authenticated by the encrypting filesystem (AES-GCM or XChaCha20-Poly1305),
// which detects corruption of the ciphertext; checksums would add WAL (hint
// bits are logged) for no extra detection on this storage.
func InitDB(ctx context.Context, opts InitOptions) error {
	if opts.DataDir == "" || !filepath.IsAbs(opts.DataDir) {
		return fmt.Errorf("initdb: data dir %q must be an absolute path", opts.DataDir)
	}
	if opts.User.UID == 0 {
		return errors.New("initdb: refusing to run PostgreSQL as root")
	}
	if opts.Superuser == "" {
		opts.Superuser = DefaultSuperuser
	}
	if !roleNameRE.MatchString(opts.Superuser) {
		return fmt.Errorf("initdb: superuser name %q not allowed", opts.Superuser)
	}
	if opts.Locale == "" {
		opts.Locale = "C.UTF-8"
	}
	if strings.ContainsAny(opts.Locale, " '\"\\\n") {
		return fmt.Errorf("initdb: locale %q not allowed", opts.Locale)
	}
	if _, err := os.Stat(filepath.Dir(opts.DataDir)); err != nil {
		return fmt.Errorf("initdb: parent of data dir: %w", err)
	}
	// initdb would accept an existing empty directory; creating it here
	// (0700, owned by the user) refuses to reuse anything.
	if err := os.Mkdir(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.Chown(opts.DataDir, int(opts.User.UID), int(opts.User.GID)); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}

	password := opts.SuperuserPassword
	if password == nil {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return fmt.Errorf("initdb: random password: %w", err)
		}
		password = make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
		base64.RawURLEncoding.Encode(password, raw)
		clear(raw)
		defer clear(password)
	}
	if bytes.ContainsAny(password, "\n\r") {
		return errors.New("initdb: superuser password must be one line")
	}

	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("initdb: pipe: %w", err)
	}
	defer r.Close()
	if err := r.Chown(int(opts.User.UID), int(opts.User.GID)); err != nil {
		w.Close()
		return fmt.Errorf("initdb: give pipe to %s: %w", opts.User.Name, err)
	}
	line := append(append(make([]byte, 0, len(password)+1), password...), '\n')
	_, werr := w.Write(line) // a password fits in the pipe buffer
	clear(line)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("initdb: write password to pipe: %w", werr)
	}

	binDir := opts.BinDir
	if binDir == "" {
		binDir = DefaultBinDir
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"--pgdata="+opts.DataDir,
		"--username="+opts.Superuser,
		"--pwfile=/dev/fd/3",
		"--auth-local=peer",
		"--auth-host=scram-sha-256",
		"--encoding=UTF8",
		"--locale="+opts.Locale,
		"--no-instructions",
	)
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.Dir = opts.DataDir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.User.credential()}
	var out limitedBuffer
	out.max = 16 << 10
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", opts.DataDir, err, strings.TrimSpace(out.buf.String()))
	}
	return nil
}

// childEnv is the whole environment of PostgreSQL processes: the daemon's
// own environment is not passed on, since it may hold secrets (pgBackRest
// passphrases travel that way).
func childEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC"}
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
