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
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgflex/pgflex/internal/osuser"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// InitOptions describe a new cluster.
type InitOptions struct {
	// DataDir is created by InitDB; it must not exist, and its parent (the
	// mounted volume) must. Required.
	DataDir string
	// User runs initdb and will own every file. Required, not root.
	User osuser.User
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
		// Files 0640, directories 0750: the server's backup account (a member of the
		// server's group) reads them; no other account does.
		"--allow-group-access",
	)
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.Dir = opts.DataDir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.User.Credential()}
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
