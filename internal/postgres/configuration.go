package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/fsutil"
	"github.com/pgflex/pgflex/internal/osuser"
)

// Size is an amount of memory in bytes, rendered in kB for PostgreSQL.
type Size int64

// Common sizes.
const (
	KB Size = 1 << 10
	MB Size = 1 << 20
	GB Size = 1 << 30
)

func (s Size) conf() string { return strconv.FormatInt(int64(s/KB), 10) + "kB" }

// Settings is everything pgflex sets in postgresql.conf, pg_hba.conf and
// pg_ident.conf. Files are generated from it, never pasted together from
// user strings; a zero field means the documented default.
//
// fsync, full_page_writes and synchronous_commit are not settings: they are
// always on, because a server whose committed data can vanish on a crash is
// not a database service.
type Settings struct {
	// Port is the TCP port; required.
	Port int
	// ListenAddresses; default 127.0.0.1 only.
	ListenAddresses []netip.Addr
	// SocketDir holds the Unix socket and its lock file. It is outside the
	// encrypted volume on purpose: a socket carries no data at rest, and a
	// short path (sockets are limited to 107 bytes) under a runtime
	// directory avoids the volume's long one. Required.
	SocketDir string

	// SSLCertFile and SSLKeyFile, relative to the data directory or
	// absolute; default server.crt and server.key (see
	// InstallServerCertificate). ssl is always on.
	SSLCertFile, SSLKeyFile string
	// AllowInsecureTransport lets clients connect without TLS (Azure's
	// require_secure_transport=off). Default: TLS required.
	AllowInsecureTransport bool
	// ClientCIDRs may connect over TCP; default 127.0.0.1/32 and ::1/128.
	ClientCIDRs []netip.Prefix

	// Superuser is the service's own superuser role (default
	// DefaultSuperuser). It may only connect over the Unix socket, by
	// peer authentication from root (the pgflex daemon); never over TCP.
	// No other OS user is mapped to it: the server's own OS user, and
	// every other server's, cannot become it.
	Superuser string
	// BackupOSUser, if set, may connect as BackupRole over the socket by
	// peer authentication (pgBackRest, run by the daemon as the server's
	// backup account); BackupRole cannot log in any other way.
	BackupOSUser string

	// MaxConnections; default 100.
	MaxConnections int
	// SharedBuffers; default 128MB.
	SharedBuffers Size
	// WorkMem; default 4MB. MaintenanceWorkMem; default 256MB, so that
	// index builds sort in memory instead of through the volume.
	WorkMem, MaintenanceWorkMem Size

	// WAL and checkpoint tuning. None of these weakens durability: a
	// commit returns only after its WAL is fsynced.
	//
	// WALSyncMethod: fdatasync (default), fsync, open_datasync, open_sync.
	WALSyncMethod string
	// WALBuffers; default 16MB.
	WALBuffers Size
	// WALCompression compresses the full-page images in WAL: off, pglz, lz4 (default) or zstd.
	// Chosen by measurement (bench/README.md): 3-4x less WAL after each checkpoint, which the
	// encrypting volume layers encrypt byte by byte; recovery decompresses, durability is as it is.
	WALCompression string
	// CommitDelay and CommitSiblings make a committing backend wait up to
	// CommitDelay for others when at least CommitSiblings transactions are
	// open, so one fsync covers several commits (group commit). Default
	// 0 (off) and 5.
	CommitDelay    time.Duration
	CommitSiblings int
	// SkipWALInitZero sets wal_init_zero off: new WAL segments are
	// created sparse instead of zero-filled. Leave it false on the
	// encrypted volume: gocryptfs runs with -noprealloc, and a write into
	// a sparse segment that hits a full disk could tear a ciphertext block
	// holding already-committed WAL. Zero-filled segments have every
	// block allocated up front; the measured cost was nil.
	SkipWALInitZero bool
	// CheckpointTimeout; default 15min. MaxWALSize; default 2GB.
	// MinWALSize; default 256MB. CheckpointCompletionTarget; default 0.9.
	CheckpointTimeout          time.Duration
	MaxWALSize, MinWALSize     Size
	CheckpointCompletionTarget float64

	// ArchiveMode ("", "on" or "always") and ArchiveCommand are for
	// pgBackRest, later. Default: archiving off.
	ArchiveMode    string
	ArchiveCommand string

	// LogDirectory, relative to the data directory (so inside the
	// volume); default "log". An absolute path is refused.
	LogDirectory string

	// Extensions is the allow-list of extensions the administrator may
	// create (azure.extensions, enforced by pgflex_guard); nil means
	// DefaultExtensions, an empty non-nil list allows none.
	Extensions []string
	// AuthDelay is how long a failed login waits before it is answered
	// (contrib's auth_delay), to slow password guessing; default 500ms,
	// at most 10s, in whole milliseconds.
	AuthDelay time.Duration
}

// DefaultSuperuser is the service's superuser role name.
const DefaultSuperuser = "pgflex_superuser"

// DefaultExtensions is the default azure.extensions: contrib extensions of
// Debian's postgresql-15 that are safe in the hands of a non-superuser
// administrator. None reads or writes server files or runs programs
// (adminpack, file_fdw and the untrusted languages are refused whatever the
// list says).
//
// The first group is marked trusted = true by PostgreSQL: any role with
// CREATE on the database may create them. The second group is not
// trusted; pgflex_guard lets members of azure_pg_admin create them with the
// bootstrap superuser's rights, and each stays safe because its dangerous
// parts remain superuser-only:
//   - pg_stat_statements: the view shows other roles' query texts only to
//     pg_read_all_stats (pg_monitor); pg_stat_statements_reset is revoked
//     from PUBLIC.
//   - pg_buffercache, pgstattuple, pg_visibility, pg_freespacemap,
//     pgrowlocks: read-only statistics, executable by superusers and
//     pg_monitor/pg_stat_scan_tables only (pgrowlocks also checks SELECT
//     on the table).
//   - pg_prewarm: reads relations the caller may SELECT into the buffer
//     cache; its background worker functions are revoked from PUBLIC.
//   - amcheck: verification functions revoked from PUBLIC; they read,
//     never write.
//   - pageinspect: every function checks for superuser itself.
//   - bloom: an index access method (untrusted only because CREATE ACCESS
//     METHOD is superuser-only); earthdistance: SQL functions over cube.
//   - postgres_fdw, dblink: a non-superuser's connections must present a
//     password that the remote server asks for (no peer or trust login as
//     the server's OS user); dblink_connect_u is revoked from PUBLIC.
//   - sslinfo: reports the client's own TLS certificate.
var DefaultExtensions = []string{
	// Trusted.
	"btree_gin", "btree_gist", "citext", "cube", "dict_int", "fuzzystrmatch",
	"hstore", "intarray", "isn", "lo", "ltree", "pg_trgm", "pgcrypto", "seg",
	"tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent",
	"uuid-ossp",
	// Not trusted; safe for the administrator (see above).
	"pg_stat_statements", "pg_buffercache", "pgstattuple", "pg_prewarm",
	"pg_visibility", "pg_freespacemap", "pgrowlocks", "amcheck",
	"pageinspect", "bloom", "earthdistance", "postgres_fdw", "dblink",
	"sslinfo",
}

// extensionNameRE is what an azure.extensions entry may look like.
var extensionNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)

var (
	roleNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	relPathRE  = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_./-]{0,200}$`)
)

// walSyncMethod reports whether m is a wal_sync_method available on Linux.
func walSyncMethod(m string) bool {
	switch m {
	case "fdatasync", "fsync", "open_datasync", "open_sync":
		return true
	}
	return false
}

// withDefaults returns s with zero fields set to their defaults.
func (s Settings) withDefaults() Settings {
	if len(s.ListenAddresses) == 0 {
		s.ListenAddresses = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	if s.SSLCertFile == "" {
		s.SSLCertFile = "server.crt"
	}
	if s.SSLKeyFile == "" {
		s.SSLKeyFile = "server.key"
	}
	if len(s.ClientCIDRs) == 0 {
		s.ClientCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	}
	if s.Superuser == "" {
		s.Superuser = DefaultSuperuser
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = 100
	}
	if s.SharedBuffers == 0 {
		s.SharedBuffers = 128 * MB
	}
	if s.WorkMem == 0 {
		s.WorkMem = 4 * MB
	}
	if s.MaintenanceWorkMem == 0 {
		s.MaintenanceWorkMem = 256 * MB
	}
	if s.WALSyncMethod == "" {
		s.WALSyncMethod = "fdatasync"
	}
	if s.WALBuffers == 0 {
		s.WALBuffers = 16 * MB
	}
	if s.WALCompression == "" {
		s.WALCompression = "lz4"
	}
	if s.CommitSiblings == 0 {
		s.CommitSiblings = 5
	}
	if s.CheckpointTimeout == 0 {
		s.CheckpointTimeout = 15 * time.Minute
	}
	if s.MaxWALSize == 0 {
		s.MaxWALSize = 2 * GB
	}
	if s.MinWALSize == 0 {
		s.MinWALSize = 256 * MB
	}
	if s.CheckpointCompletionTarget == 0 {
		s.CheckpointCompletionTarget = 0.9
	}
	if s.LogDirectory == "" {
		s.LogDirectory = "log"
	}
	if s.Extensions == nil {
		s.Extensions = DefaultExtensions
	}
	if s.AuthDelay == 0 {
		s.AuthDelay = 500 * time.Millisecond
	}
	return s
}

// Validate reports the first problem with s (after defaults are applied).
func (s Settings) Validate() error {
	s = s.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Port < 1 || s.Port > 65535 {
		bad("port %d out of range", s.Port)
	}
	for _, a := range s.ListenAddresses {
		if !a.IsValid() {
			bad("invalid listen address")
		}
	}
	if !filepath.IsAbs(s.SocketDir) || strings.ContainsAny(s.SocketDir, "',\n\\") {
		bad("socket dir %q must be an absolute path without quotes, commas or backslashes", s.SocketDir)
	} else if len(s.SocketDir)+len("/.s.PGSQL.65535") > 107 {
		bad("socket dir %q is too long for a Unix socket path", s.SocketDir)
	}
	for _, f := range []string{s.SSLCertFile, s.SSLKeyFile} {
		if !relPathRE.MatchString(strings.TrimPrefix(f, "/")) || strings.Contains(f, "..") {
			bad("TLS file path %q not allowed", f)
		}
	}
	for _, p := range s.ClientCIDRs {
		if !p.IsValid() {
			bad("invalid client CIDR")
		}
	}
	if !roleNameRE.MatchString(s.Superuser) {
		bad("superuser name %q not allowed", s.Superuser)
	}
	if s.BackupOSUser != "" && (!osuser.ValidName(s.BackupOSUser) || s.BackupOSUser == "root") {
		bad("backup OS user %q not allowed", s.BackupOSUser)
	}
	if s.MaxConnections < 1 || s.MaxConnections > 10000 {
		bad("max_connections %d out of range", s.MaxConnections)
	}
	for name, v := range map[string]Size{
		"shared_buffers": s.SharedBuffers, "work_mem": s.WorkMem, "maintenance_work_mem": s.MaintenanceWorkMem,
		"wal_buffers": s.WALBuffers, "max_wal_size": s.MaxWALSize, "min_wal_size": s.MinWALSize,
	} {
		if v < 64*KB || v%KB != 0 {
			bad("%s %d must be a whole number of kB, at least 64kB", name, v)
		}
	}
	if s.MinWALSize > s.MaxWALSize {
		bad("min_wal_size is larger than max_wal_size")
	}
	if !slices.Contains([]string{"off", "pglz", "lz4", "zstd"}, s.WALCompression) {
		bad("wal_compression %q is not one of off, pglz, lz4, zstd", s.WALCompression)
	}
	if !walSyncMethod(s.WALSyncMethod) {
		bad("wal_sync_method %q is not one of fdatasync, fsync, open_datasync, open_sync", s.WALSyncMethod)
	}
	if s.CommitDelay < 0 || s.CommitDelay > 100*time.Millisecond || s.CommitDelay%time.Microsecond != 0 {
		bad("commit_delay %v must be 0-100ms in whole microseconds", s.CommitDelay)
	}
	if s.CommitSiblings < 0 || s.CommitSiblings > 1000 {
		bad("commit_siblings %d out of range", s.CommitSiblings)
	}
	if s.CheckpointTimeout < 30*time.Second || s.CheckpointTimeout > 24*time.Hour || s.CheckpointTimeout%time.Second != 0 {
		bad("checkpoint_timeout %v must be 30s-1d in whole seconds", s.CheckpointTimeout)
	}
	if s.CheckpointCompletionTarget <= 0 || s.CheckpointCompletionTarget > 1 {
		bad("checkpoint_completion_target %v out of range", s.CheckpointCompletionTarget)
	}
	switch s.ArchiveMode {
	case "", "on", "always":
	default:
		bad("archive_mode %q is not one of on, always", s.ArchiveMode)
	}
	if s.ArchiveMode == "" && s.ArchiveCommand != "" {
		bad("archive_command set without archive_mode")
	}
	if strings.ContainsAny(s.ArchiveCommand, "\n\r") {
		bad("archive_command must be one line")
	}
	if filepath.IsAbs(s.LogDirectory) || !relPathRE.MatchString(s.LogDirectory) || strings.Contains(s.LogDirectory, "..") {
		bad("log directory %q must be a relative path inside the data directory", s.LogDirectory)
	}
	for _, e := range s.Extensions {
		if !extensionNameRE.MatchString(e) {
			bad("extension name %q not allowed", e)
		}
	}
	if s.AuthDelay <= 0 || s.AuthDelay > 10*time.Second || s.AuthDelay%time.Millisecond != 0 {
		bad("auth_delay %v must be 1ms-10s in whole milliseconds", s.AuthDelay)
	}
	if len(errs) > 0 {
		return fmt.Errorf("postgres settings: %w", errors.Join(errs...))
	}
	return nil
}

// confLine is one postgresql.conf parameter.
type confLine struct {
	name  string
	value string // already rendered: numbers bare, strings quoted
}

// quoteConf renders a string parameter value with PostgreSQL's quoting.
func quoteConf(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// parameters returns the postgresql.conf parameters in file order.
func (s Settings) parameters() []confLine {
	listen := make([]string, len(s.ListenAddresses))
	for i, a := range s.ListenAddresses {
		listen[i] = a.String()
	}
	b := func(v bool) string {
		if v {
			return "on"
		}
		return "off"
	}
	p := []confLine{
		// Connections.
		{"listen_addresses", quoteConf(strings.Join(listen, ","))},
		{"port", strconv.Itoa(s.Port)},
		{"max_connections", strconv.Itoa(s.MaxConnections)},
		{"unix_socket_directories", quoteConf(s.SocketDir)},
		// The socket's group is the server's own (its directory is 0750): the
		// server's backup account is its only other member.
		{"unix_socket_permissions", "0770"},
		// Authentication and TLS.
		{"password_encryption", quoteConf("scram-sha-256")},
		{"ssl", "on"},
		{"ssl_cert_file", quoteConf(s.SSLCertFile)},
		{"ssl_key_file", quoteConf(s.SSLKeyFile)},
		{"ssl_min_protocol_version", quoteConf("TLSv1.2")},
		// pgflex_guard keeps the administrator inside SQL (see
		// pgflex_guard/pgflex_guard.c) and auth_delay slows password
		// guessing. Not settings: the server does not start without them.
		// pg_stat_statements is preloaded, as Azure does, so that the
		// extension works once created (it costs a few MB of shared memory).
		{"shared_preload_libraries", quoteConf("pgflex_guard,auth_delay,pg_stat_statements")},
		{"pgflex_guard.reserved_roles", quoteConf(strings.Join(ReservedRoles(), ","))},
		{"azure.extensions", quoteConf(strings.Join(s.Extensions, ","))},
		{"auth_delay.milliseconds", strconv.FormatInt(s.AuthDelay.Milliseconds(), 10)},
		// Memory.
		{"shared_buffers", s.SharedBuffers.conf()},
		{"work_mem", s.WorkMem.conf()},
		{"maintenance_work_mem", s.MaintenanceWorkMem.conf()},
		// Temporary files stay in base/pgsql_tmp, inside the volume: no
		// temp_tablespaces pointing elsewhere.
		{"temp_tablespaces", quoteConf("")},
		// Durability: never negotiable.
		{"fsync", "on"},
		{"full_page_writes", "on"},
		{"synchronous_commit", "on"},
		{"wal_level", "replica"},
		{"wal_sync_method", s.WALSyncMethod},
		{"wal_buffers", s.WALBuffers.conf()},
		{"wal_compression", s.WALCompression},
		{"wal_init_zero", b(!s.SkipWALInitZero)},
		{"commit_delay", strconv.FormatInt(int64(s.CommitDelay/time.Microsecond), 10)},
		{"commit_siblings", strconv.Itoa(s.CommitSiblings)},
		{"checkpoint_timeout", strconv.FormatInt(int64(s.CheckpointTimeout/time.Second), 10) + "s"},
		{"checkpoint_completion_target", strconv.FormatFloat(s.CheckpointCompletionTarget, 'f', -1, 64)},
		{"max_wal_size", s.MaxWALSize.conf()},
		{"min_wal_size", s.MinWALSize.conf()},
	}
	if s.ArchiveMode != "" {
		p = append(p, confLine{"archive_mode", s.ArchiveMode}, confLine{"archive_command", quoteConf(s.ArchiveCommand)})
	} else {
		p = append(p, confLine{"archive_mode", "off"})
	}
	p = append(p,
		// Logs go to files inside the data directory, hence the volume.
		confLine{"logging_collector", "on"},
		confLine{"log_destination", quoteConf("stderr")},
		confLine{"log_directory", quoteConf(s.LogDirectory)},
		confLine{"log_filename", quoteConf("postgresql-%Y-%m-%d_%H%M%S.log")},
		confLine{"log_file_mode", "0600"},
		confLine{"log_rotation_age", "1d"},
		confLine{"log_rotation_size", "100MB"},
		confLine{"log_line_prefix", quoteConf("%m [%p] %q%u@%d ")},
		confLine{"log_checkpoints", "on"},
		// Statements are not logged: they can carry secrets.
		confLine{"log_statement", quoteConf("none")},
		confLine{"log_min_duration_statement", "-1"},
		// pg_stat_statements and friends would go here; stats live in
		// pg_stat inside the data directory (PostgreSQL 15 keeps no
		// stats_temp_directory).
		confLine{"timezone", quoteConf("UTC")},
		confLine{"log_timezone", quoteConf("UTC")},
		// Last, so that the server's parameters (Azure's user overrides) win; see
		// WriteUserConfig.
		confLine{"include_if_exists", quoteConf(UserConfigFile)},
	)
	return p
}

// PostgresqlConf renders postgresql.conf.
func (s Settings) PostgresqlConf() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	var buf bytes.Buffer
	buf.WriteString("# Generated by pgflex from its typed settings. Edits are overwritten.\n")
	for _, l := range s.parameters() {
		fmt.Fprintf(&buf, "%s = %s\n", l.name, l.value)
	}
	return buf.Bytes(), nil
}

// identMap is the pg_ident.conf map that lets the service's OS users in as
// its roles: root as the superuser, the backup account as BackupRole.
const identMap = "pgflex_service"

// HBAConf renders pg_hba.conf: the superuser and BackupRole over the socket
// by peer authentication only (each from its one OS user); everyone else by
// scram-sha-256, over TLS unless AllowInsecureTransport; nothing else.
func (s Settings) HBAConf() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	var buf bytes.Buffer
	buf.WriteString("# Generated by pgflex. Edits are overwritten.\n")
	buf.WriteString("# TYPE\tDATABASE\tUSER\tADDRESS\tMETHOD\n")
	fmt.Fprintf(&buf, "local\tall\t%s\t\tpeer map=%s\n", s.Superuser, identMap)
	if s.BackupOSUser != "" {
		fmt.Fprintf(&buf, "local\tall\t%s\t\tpeer map=%s\n", BackupRole, identMap)
	} else {
		fmt.Fprintf(&buf, "local\tall\t%s\t\treject\n", BackupRole)
	}
	fmt.Fprintf(&buf, "local\tall\tall\t\tscram-sha-256\n")
	fmt.Fprintf(&buf, "host\tall\t%s\tall\treject\n", s.Superuser)
	fmt.Fprintf(&buf, "host\tall\t%s\tall\treject\n", BackupRole)
	for _, p := range s.ClientCIDRs {
		if s.AllowInsecureTransport {
			fmt.Fprintf(&buf, "host\tall\tall\t%s\tscram-sha-256\n", p.Masked())
		} else {
			fmt.Fprintf(&buf, "hostssl\tall\tall\t%s\tscram-sha-256\n", p.Masked())
		}
	}
	buf.WriteString("host\tall\tall\tall\treject\n")
	return buf.Bytes(), nil
}

// IdentConf renders pg_ident.conf.
func (s Settings) IdentConf() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.withDefaults()
	var buf bytes.Buffer
	buf.WriteString("# Generated by pgflex. Edits are overwritten.\n")
	fmt.Fprintf(&buf, "%s\troot\t%s\n", identMap, s.Superuser)
	if s.BackupOSUser != "" {
		fmt.Fprintf(&buf, "%s\t%s\t%s\n", identMap, s.BackupOSUser, BackupRole)
	}
	return buf.Bytes(), nil
}

// WriteConfig writes postgresql.conf, pg_hba.conf and pg_ident.conf into
// dataDir, owned by user with mode 0640 (they hold no secret, and backups
// read them through the group). The running server reads them on its next
// start or reload.
func WriteConfig(ctx context.Context, dataDir string, user osuser.User, s Settings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	files := []struct {
		name   string
		render func() ([]byte, error)
	}{
		{"postgresql.conf", s.PostgresqlConf},
		{"pg_hba.conf", s.HBAConf},
		{"pg_ident.conf", s.IdentConf},
	}
	for _, f := range files {
		b, err := f.render()
		if err != nil {
			return err
		}
		if err := writeFileAs(filepath.Join(dataDir, f.name), b, 0o640, user); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

// writeFileAs writes path atomically and durably (temp, fsync, rename, fsync of the directory)
// owned by user.
func writeFileAs(path string, data []byte, mode os.FileMode, user osuser.User) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Chown(int(user.UID), int(user.GID)); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}
