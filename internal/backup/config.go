package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/sandbox"
)

// DefaultPgbackrest is where Debian's pgbackrest package installs it.
const DefaultPgbackrest = "/usr/bin/pgbackrest"

// Repository indexes.
const (
	// RepoPrimary is repository 1, in the server's region.
	RepoPrimary = 1
	// RepoGeo is repository 2, in the paired region (geo-redundant backup).
	RepoGeo = 2
)

// RepoPath is where a stanza's repository lives under a region's storage
// root (DIR/regions/{region}): DIR/regions/{region}/backups/{stanza}. Each
// stanza has a directory of its own, so a repository's permissions, its
// passphrase and its deletion concern one server only.
func RepoPath(regionRoot, stanza string) string {
	return filepath.Join(regionRoot, "backups", stanza)
}

// Repo is one pgBackRest repository of a stanza.
type Repo struct {
	// Index is 1 (the server's region) or 2 (the paired region).
	Index int
	// Path is the repository directory, normally RepoPath(...).
	Path string
	// Paused leaves the repository out of pgbackrest.conf: WAL and
	// backups go to the other repository only. Used while repository 2's
	// geo-backup key is unusable.
	Paused bool

	// plaintext makes an unencrypted repository: the benchmarks'
	// baseline, never used by the service.
	plaintext bool
}

// Tuning is pgBackRest's performance settings. The zero value is the
// measured default (see bench numbers in the package's benchmark).
type Tuning struct {
	// CompressType: lz4 (default), zst, gz, bz2 or none.
	CompressType string
	// ProcessMax is the number of parallel compress/transfer processes;
	// default 2.
	ProcessMax int
	// BufferSize in bytes, a power of two from 16 KiB to 16 MiB; default
	// 1 MiB (pgBackRest's).
	BufferSize int
}

func (t Tuning) withDefaults() Tuning {
	if t.CompressType == "" {
		t.CompressType = "lz4"
	}
	if t.ProcessMax == 0 {
		t.ProcessMax = 2
	}
	if t.BufferSize == 0 {
		t.BufferSize = 1 << 20
	}
	return t
}

func (t Tuning) validate() error {
	t = t.withDefaults()
	switch t.CompressType {
	case "lz4", "zst", "gz", "bz2", "none":
	default:
		return fmt.Errorf("compress type %q is not one of lz4, zst, gz, bz2, none", t.CompressType)
	}
	if t.ProcessMax < 1 || t.ProcessMax > 32 {
		return fmt.Errorf("process max %d out of range 1-32", t.ProcessMax)
	}
	if t.BufferSize < 16<<10 || t.BufferSize > 16<<20 || t.BufferSize&(t.BufferSize-1) != 0 {
		return fmt.Errorf("buffer size %d must be a power of two from 16KiB to 16MiB", t.BufferSize)
	}
	return nil
}

// Stanza is the pgBackRest configuration of one server, from which
// pgbackrest.conf is generated. The file holds no secret: passphrases
// reach pgBackRest through its environment only.
type Stanza struct {
	// Name is the stanza name: the server's UID.
	Name string
	// ConfigDir holds pgbackrest.conf and pgBackRest's lock, log and spool
	// directories. Outside the volume (it holds no data and no secret),
	// e.g. DIR/servers/{uid}/backup.
	ConfigDir string

	// DataDir, SocketDir and Port locate the server's PostgreSQL.
	DataDir   string
	SocketDir string
	Port      int
	// Account is the server's backup OS account: pgBackRest runs as it,
	// connects as postgres.BackupRole (peer authentication; the server's
	// postgres.Settings.BackupOSUser names this account), reads the data
	// directory through the server's group (Account.Groups must hold it)
	// and owns the repositories and pgBackRest's working directories. It is
	// neither root nor the server's PostgreSQL account, which must never
	// see a passphrase.
	Account osuser.User
	// Sandbox, if set, confines every pgBackRest command of the stanza (package sandbox):
	// the daemon sets the server's volume as NoFollow, so that a link the server's account
	// planted in its data directory (to /proc/self/environ, which holds the passphrases, or to
	// anything the backup account can read) is never followed into a backup or the archive.
	// SandboxExec is the executable whose main runs sandbox.Main.
	Sandbox     *sandbox.Spec
	SandboxExec string

	// Repos: repository 1, and repository 2 for geo-redundant backup.
	Repos []Repo
	// RetentionDays: the backups needed to restore to any point in the
	// last RetentionDays days are kept (repo-retention-full-type=time),
	// and the WAL they need.
	RetentionDays int

	Tuning Tuning
	// Pgbackrest is the pgbackrest executable; default DefaultPgbackrest.
	Pgbackrest string
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger
}

// ConfigPath is the stanza's pgbackrest.conf.
func (s *Stanza) ConfigPath() string { return filepath.Join(s.ConfigDir, "pgbackrest.conf") }

func (s *Stanza) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Stanza) pgbackrest() string {
	if s.Pgbackrest != "" {
		return s.Pgbackrest
	}
	return DefaultPgbackrest
}

// repo returns the repository with the given index.
func (s *Stanza) repo(index int) (*Repo, error) {
	for i := range s.Repos {
		if s.Repos[i].Index == index {
			return &s.Repos[i], nil
		}
	}
	return nil, fmt.Errorf("backup: stanza %s has no repository %d", s.Name, index)
}

// activeRepo returns a repository that is configured and not paused.
func (s *Stanza) activeRepo(index int) (*Repo, error) {
	r, err := s.repo(index)
	if err != nil {
		return nil, err
	}
	if r.Paused {
		return nil, fmt.Errorf("backup: repository %d of stanza %s is paused (its key is unavailable)", index, s.Name)
	}
	return r, nil
}

var (
	stanzaNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	// safePathRE: paths go into pgbackrest.conf and into shell commands
	// (archive_command, restore_command) unquoted, so only characters
	// that need no quoting anywhere are allowed.
	safePathRE = regexp.MustCompile(`^/[A-Za-z0-9_./-]*$`)
)

func validateStanzaName(name string) error {
	if !stanzaNameRE.MatchString(name) {
		return fmt.Errorf("backup: stanza name %q must be 1-64 letters, digits, '-' or '_'", name)
	}
	return nil
}

func validatePath(what, p string) error {
	if !safePathRE.MatchString(p) || strings.Contains(p, "..") || p != filepath.Clean(p) {
		return fmt.Errorf("backup: %s %q must be a clean absolute path of letters, digits and _ . / -", what, p)
	}
	return nil
}

// maxSocketPath is the longest Unix socket path (sun_path is 108 bytes).
const maxSocketPath = 107

// Validate reports every problem with s.
func (s *Stanza) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validateStanzaName(s.Name))
	add(validatePath("config dir", s.ConfigDir))
	add(validatePath("data dir", s.DataDir))
	add(validatePath("socket dir", s.SocketDir))
	add(validatePath("pgbackrest binary", s.pgbackrest()))
	if s.Port < 1 || s.Port > 65535 {
		add(fmt.Errorf("backup: port %d out of range", s.Port))
	}
	if s.Account.UID == 0 || s.Account.Name == "" {
		add(errors.New("backup: pgBackRest must run as the server's backup account, not root"))
	}
	if s.RetentionDays < 1 || s.RetentionDays > 3650 {
		add(fmt.Errorf("backup: retention of %d days out of range 1-3650", s.RetentionDays))
	}
	seen := map[int]bool{}
	paths := map[string]bool{}
	for _, r := range s.Repos {
		if r.Index != RepoPrimary && r.Index != RepoGeo {
			add(fmt.Errorf("backup: repository index %d is not 1 or 2", r.Index))
		}
		if seen[r.Index] {
			add(fmt.Errorf("backup: repository %d given twice", r.Index))
		}
		seen[r.Index] = true
		add(validatePath(fmt.Sprintf("repository %d path", r.Index), r.Path))
		if paths[r.Path] {
			add(fmt.Errorf("backup: repositories share the path %s", r.Path))
		}
		paths[r.Path] = true
	}
	if !seen[RepoPrimary] {
		add(errors.New("backup: repository 1 is required"))
	}
	if r, err := s.repo(RepoPrimary); err == nil && r.Paused {
		add(errors.New("backup: repository 1 cannot be paused"))
	}
	if err := s.Tuning.validate(); err != nil {
		add(fmt.Errorf("backup: %w", err))
	}
	return errors.Join(errs...)
}

// option is one pgbackrest.conf line.
type option struct{ key, value string }

// section is one [name] of pgbackrest.conf.
type section struct {
	name string
	opts []option
}

// renderINI writes sections in order. Every key and value was validated or
// produced here, so none contains a newline, '=' in a key, or '['.
func renderINI(sections []section) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by pgflex from typed settings; edits are overwritten.\n")
	b.WriteString("# Holds no secret: repository passphrases reach pgBackRest through its environment only.\n")
	for _, s := range sections {
		fmt.Fprintf(&b, "\n[%s]\n", s.name)
		for _, o := range s.opts {
			fmt.Fprintf(&b, "%s=%s\n", o.key, o.value)
		}
	}
	return b.Bytes()
}

// commonOptions are the [global] options every configuration carries.
func commonOptions(workDir string, t Tuning) []option {
	t = t.withDefaults()
	return []option{
		{"lock-path", filepath.Join(workDir, "lock")},
		{"log-path", filepath.Join(workDir, "log")},
		{"spool-path", filepath.Join(workDir, "spool")},
		// stdout is kept for --output=json; errors arrive on stderr;
		// the log file (no secrets: pgBackRest redacts them) helps
		// diagnose.
		{"log-level-console", "off"},
		{"log-level-stderr", "warn"},
		{"log-level-file", "info"},
		{"compress-type", t.CompressType},
		{"process-max", strconv.Itoa(t.ProcessMax)},
		{"buffer-size", strconv.Itoa(t.BufferSize)},
	}
}

// repoOptions are the repoN-* options of one repository.
func repoOptions(n int, path string, plaintext bool, retentionDays int) []option {
	p := "repo" + strconv.Itoa(n) + "-"
	opts := []option{{p + "path", path}}
	if plaintext {
		opts = append(opts, option{p + "cipher-type", "none"})
	} else {
		opts = append(opts, option{p + "cipher-type", "aes-256-cbc"})
	}
	if retentionDays > 0 {
		opts = append(opts,
			option{p + "retention-full-type", "time"},
			option{p + "retention-full", strconv.Itoa(retentionDays)})
	}
	return opts
}

// render returns pgbackrest.conf for s: paused repositories are left out.
func (s *Stanza) render() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	global := commonOptions(s.ConfigDir, s.Tuning)
	global = append(global,
		// Backups on demand start now, not at the next checkpoint.
		option{"start-fast", "y"},
		option{"archive-timeout", "60"},
		// The server's logs and its TLS key stay out of backups: the key is
		// the one file the group cannot read (PostgreSQL wants it 0600), and
		// a restored server gets a certificate and key of its own.
		option{"exclude", "log/"},
		option{"exclude", postgres.ServerKeyFile},
	)
	for _, r := range s.sortedRepos() {
		if r.Paused {
			continue
		}
		global = append(global, repoOptions(r.Index, r.Path, r.plaintext, s.RetentionDays)...)
	}
	stanza := []option{
		{"pg1-path", s.DataDir},
		{"pg1-socket-path", s.SocketDir},
		{"pg1-port", strconv.Itoa(s.Port)},
		{"pg1-user", postgres.BackupRole},
	}
	return renderINI([]section{{"global", global}, {s.Name, stanza}}), nil
}

func (s *Stanza) sortedRepos() []Repo {
	out := make([]Repo, 0, len(s.Repos))
	for _, i := range []int{RepoPrimary, RepoGeo} {
		if r, err := s.repo(i); err == nil {
			out = append(out, *r)
		}
	}
	return out
}

// WriteConfig writes pgbackrest.conf and creates pgBackRest's working
// directories and every repository directory, all owned by the backup
// account and closed to everyone else (0700, 0600). Call it when the stanza
// is set up and whenever it changes; it is idempotent.
func (s *Stanza) WriteConfig(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conf, err := s.render()
	if err != nil {
		return err
	}
	if err := mkdirOwned(s.ConfigDir, 0o700, int(s.Account.UID), int(s.Account.GID)); err != nil {
		return fmt.Errorf("backup: config dir: %w", err)
	}
	if err := makeWorkDirs(s.ConfigDir, s.Account); err != nil {
		return err
	}
	for _, r := range s.Repos {
		if err := makeRepoDir(r.Path, s.Account); err != nil {
			return err
		}
	}
	if err := writeFileOwned(s.ConfigPath(), conf, 0o600, int(s.Account.UID), int(s.Account.GID)); err != nil {
		return fmt.Errorf("backup: write %s: %w", s.ConfigPath(), err)
	}
	return nil
}

// SetPaused pauses or resumes a repository (normally repository 2, when its
// geo-backup key becomes unusable or usable again) and rewrites
// pgbackrest.conf. The next archive-push sees the change; WAL archived while
// repository 2 was paused is not copied to it afterwards, so a geo-restore
// after a resume needs a new backup in repository 2 (Backup) to be
// complete.
func (s *Stanza) SetPaused(ctx context.Context, index int, paused bool) error {
	r, err := s.repo(index)
	if err != nil {
		return err
	}
	if index == RepoPrimary && paused {
		return errors.New("backup: repository 1 cannot be paused")
	}
	was := r.Paused
	r.Paused = paused
	if err := s.WriteConfig(ctx); err != nil {
		r.Paused = was
		return err
	}
	s.logger().InfoContext(ctx, "backup repository pause changed", "stanza", s.Name, "repo", index, "paused", paused)
	return nil
}

// Helper is how PostgreSQL reaches the archive helper: pgflex's own binary
// and the daemon's ArchiveServer socket.
type Helper struct {
	// Binary is the absolute path of the pgflex executable; the
	// PostgreSQL user must be able to run it.
	Binary string
	// Socket is the ArchiveServer's socket path.
	Socket string
}

func (h Helper) validate() error {
	if err := validatePath("helper binary", h.Binary); err != nil {
		return err
	}
	if err := validatePath("archive socket", h.Socket); err != nil {
		return err
	}
	if len(h.Socket) > maxSocketPath {
		return fmt.Errorf("backup: archive socket path %q is too long for a Unix socket", h.Socket)
	}
	return nil
}

// ArchiveCommand returns the archive_command for the server's
// postgres.Settings (with ArchiveMode "on"). It carries paths only, no
// secret; every path is validated to need no shell quoting.
func (s *Stanza) ArchiveCommand(h Helper) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if err := h.validate(); err != nil {
		return "", err
	}
	return helperCommand(h, opArchivePush, s.Name) + " %p", nil
}

// helperCommand renders the helper's command line up to its WAL arguments.
// It carries no configuration: the daemon knows each server's. It names
// pgbackrest, because pgBackRest's check and backup refuse an
// archive_command that does not contain "pgbackrest".
func helperCommand(h Helper, op, stanza string) string {
	return strings.Join([]string{h.Binary, op, "--socket=" + h.Socket, "--stanza=" + stanza, "--tool=pgbackrest"}, " ")
}

// makeWorkDirs creates lock/, log/ and spool/ under dir for user.
func makeWorkDirs(dir string, user osuser.User) error {
	for _, d := range []string{"lock", "log", "spool"} {
		if err := mkdirOwned(filepath.Join(dir, d), 0o700, int(user.UID), int(user.GID)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	return nil
}

// makeRepoDir creates a repository directory owned by user; its parents
// (the region's storage root) are created traversable but not listable.
func makeRepoDir(path string, user osuser.User) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fmt.Errorf("backup: repository parent: %w", err)
	}
	if err := mkdirOwned(path, 0o700, int(user.UID), int(user.GID)); err != nil {
		return fmt.Errorf("backup: repository: %w", err)
	}
	return nil
}

// mkdirOwned creates dir (if missing) and sets its mode and owner. Missing
// parents are made traversable but not listable (0711), so that the owner
// reaches dir.
func mkdirOwned(dir string, mode os.FileMode, uid, gid int) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	return os.Lchown(dir, uid, gid)
}

// writeFileOwned writes path atomically with its final owner and mode set
// before the rename, so readers never see a file they cannot open.
func writeFileOwned(path string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Chown(uid, gid); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
