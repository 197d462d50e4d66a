// Package dataplane runs flexible servers on this host: for each server an encrypted volume
// (internal/volume) keyed by the server's DEK, and PostgreSQL (internal/postgres) inside it. It
// implements flexserver.DataPlane.
//
// Layout, per server uid:
//
//	{Root}/{uid}/cipher/         ciphertext (root only, inside the daemon's data directory):
//	                             gocryptfs's files, or fscrypt's ext4 image (volume.img)
//	{Root}/{uid}/header.json     the wrapped DEK and the key that wrapped it
//	{RuntimeDir}/mnt/{uid}/      the volume, only while mounted; in its plaintext directory
//	                             (the mount itself for gocryptfs, data/ for fscrypt) live
//	                             PostgreSQL's data directory (pgdata/: WAL, temp files, logs and
//	                             statistics) and the server's private /tmp (tmp/)
//	{RuntimeDir}/sock/{id}/      PostgreSQL's Unix socket (no data)
//
// # Isolation
//
// Every server runs under two OS accounts of its own (Accounts), made when it is created:
// pgflex-db-{id} runs PostgreSQL, owns its data directory (0750, files 0640) and socket
// directory (0750), and is confined by a sandbox (package sandbox: its own view of /proc,
// /tmp and /dev/shm, the daemon's data directory hidden, no_new_privs); pgflex-bk-{id}, a
// member of the first's group and nothing else, runs pgBackRest for the daemon, reads the data
// directory through the group, owns the server's repositories and is the only process that
// ever holds a repository passphrase (in its environment, for one command). No peer mapping
// spans servers: the superuser is reachable only from root, the backup role only from the
// server's own backup account. The runtime directory is traversable (0711) so that each
// account reaches its own mount and socket, and nothing else.
package dataplane

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/fsutil"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/sandbox"
	"github.com/pgflex/pgflex/internal/tlsca"
	"github.com/pgflex/pgflex/internal/volume"
)

// Config is the data plane's settings.
type Config struct {
	Root       string // where volumes live, e.g. DIR/servers
	BackupRoot string // regions' storage for backup repositories, e.g. DIR/regions
	RuntimeDir string // mounts and sockets, e.g. /run/pgflex/{id}
	CA         *tlsca.CA
	// InstallationID tells this daemon's OS accounts apart from another's on the same host
	// (it is in each account's comment); required.
	InstallationID string
	// Hide are directories the servers' sandboxes cover (the daemon's data directory).
	Hide []string
	// AccountRange is where account ids are taken from; zero means osuser.DefaultRange.
	AccountRange osuser.Range
	// VolumeLayer is the layer new servers' volumes get (volume.LayerFscrypt or
	// volume.LayerGocryptfs; "" means gocryptfs); a server keeps the layer it was made with.
	VolumeLayer string
	// DNSSuffix makes each server's host name, {name}.{DNSSuffix}, which its certificate
	// covers (clients verify it with sslmode=verify-full); default flexserver.DefaultDNSSuffix.
	DNSSuffix string
	Logger    *slog.Logger
}

// Manager implements flexserver.DataPlane.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	instances map[string]*postgres.Instance // by uid: keeps the supervision of started postmasters
	helperOK  bool                          // the archive helper is installed (under mu)
}

var _ flexserver.DataPlane = (*Manager)(nil)

// New prepares the directories.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DNSSuffix == "" {
		cfg.DNSSuffix = flexserver.DefaultDNSSuffix
	}
	if cfg.VolumeLayer != "" {
		if _, err := volume.LayerByName(cfg.VolumeLayer, cfg.Logger); err != nil {
			return nil, fmt.Errorf("data plane: %w", err)
		}
	}
	if !installationRE.MatchString(cfg.InstallationID) {
		return nil, fmt.Errorf("data plane: installation id %q must be 1-32 letters or digits", cfg.InstallationID)
	}
	for _, t := range []string{"/tmp", "/var/tmp"} {
		if rel, err := filepath.Rel(t, cfg.RuntimeDir); err == nil && filepath.IsLocal(rel) {
			return nil, fmt.Errorf("data plane: the runtime directory %s lies under %s, which each server's sandbox replaces by a private one; choose another --runtime-dir", cfg.RuntimeDir, t)
		}
	}
	for _, h := range cfg.Hide {
		if rel, err := filepath.Rel(h, cfg.RuntimeDir); err == nil && filepath.IsLocal(rel) {
			return nil, fmt.Errorf("data plane: the runtime directory %s lies inside %s, which the servers' sandboxes hide; choose another --runtime-dir", cfg.RuntimeDir, h)
		}
	}
	// pgBackRest, running as each server's backup account, reads its configuration under Root
	// and writes repositories under BackupRoot: both traversable, neither listable.
	for _, d := range []string{cfg.Root, cfg.BackupRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("data plane: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("data plane: %w", err)
		}
	}
	for _, d := range []string{cfg.RuntimeDir, filepath.Join(cfg.RuntimeDir, "mnt"), filepath.Join(cfg.RuntimeDir, "sock")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("data plane: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, fmt.Errorf("data plane: %w", err)
		}
	}
	// Every ancestor of the runtime directory and of the storage must be traversable by the
	// servers' accounts.
	for _, dir := range []string{cfg.RuntimeDir, cfg.Root, cfg.BackupRoot} {
		for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				return nil, fmt.Errorf("data plane: %s is not traversable by the servers' accounts (mode %v); choose another directory", d, fi.Mode().Perm())
			}
		}
	}
	return &Manager{cfg: cfg, log: cfg.Logger, instances: map[string]*postgres.Instance{}}, nil
}

var installationRE = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)

// volume is the server's volume, under the layer its files show (volume.DetectLayer), or, for a
// volume not made yet, the layer new servers get.
func (m *Manager) volume(inst flexserver.Instance) *volume.Volume {
	v := &volume.Volume{Dir: filepath.Join(m.cfg.Root, inst.UID), MountPath: m.mountDir(inst), Logger: m.log,
		Size: int64(inst.StorageSizeGB) << 30}
	name := volume.DetectLayer(v.CipherDir())
	if name == "" {
		name = m.cfg.VolumeLayer
	}
	if name == "" {
		name = volume.LayerGocryptfs
	}
	v.Layer, _ = volume.LayerByName(name, m.log) // New checked the configured name
	return v
}

func (m *Manager) mountDir(inst flexserver.Instance) string {
	return filepath.Join(m.cfg.RuntimeDir, "mnt", inst.UID)
}

// MountDir is where a server's plaintext view is mounted (for tests and diagnostics).
func (m *Manager) MountDir(uid string) string { return filepath.Join(m.cfg.RuntimeDir, "mnt", uid) }

func (m *Manager) dataDir(inst flexserver.Instance) string {
	return filepath.Join(m.volume(inst).DataDir(), "pgdata")
}

// socketDir is short: Unix socket paths are limited to 107 bytes.
func (m *Manager) socketDir(inst flexserver.Instance) string {
	id := inst.UID
	if len(id) > 12 {
		id = id[:12]
	}
	return filepath.Join(m.cfg.RuntimeDir, "sock", id)
}

func binDir(version string) string { return filepath.Join("/usr/lib/postgresql", version, "bin") }

// tmpDir is the server's private /tmp, inside its volume.
func (m *Manager) tmpDir(inst flexserver.Instance) string {
	return filepath.Join(m.volume(inst).DataDir(), "tmp")
}

// instance returns the server's PostgreSQL, run by its own account inside its sandbox.
func (m *Manager) instance(inst flexserver.Instance, db osuser.User) *postgres.Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pi, ok := m.instances[inst.UID]; ok && pi.User.UID == db.UID {
		return pi
	}
	pi := &postgres.Instance{DataDir: m.dataDir(inst), User: db, BinDir: binDir(inst.Version), Port: inst.Port,
		SocketDir: m.socketDir(inst), Logger: m.log.With("server", inst.Name),
		Sandbox: &sandbox.Spec{Tmp: m.tmpDir(inst), Hide: m.cfg.Hide,
			Volumes: filepath.Join(m.cfg.RuntimeDir, "mnt"), Own: m.mountDir(inst)},
		SandboxExec: m.helperBinary()}
	m.instances[inst.UID] = pi
	return pi
}

// running returns the server's PostgreSQL, whose account must exist.
func (m *Manager) running(inst flexserver.Instance) (*postgres.Instance, error) {
	db, err := osuser.Lookup(m.accountName(kindDB, inst.UID))
	if err != nil {
		return nil, fmt.Errorf("server %s: its PostgreSQL account: %w", inst.Name, err)
	}
	return m.instance(inst, db), nil
}

func (m *Manager) forget(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.instances, uid)
}

// SupportedVersions lists the PostgreSQL major versions installed on this host.
func (m *Manager) SupportedVersions() []string {
	var out []string
	entries, _ := os.ReadDir("/usr/lib/postgresql")
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(binDir(e.Name()), "postgres")); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// settings derives PostgreSQL's configuration for a server. Memory follows the SKU, capped
// for a shared host.
func (m *Manager) settings(inst flexserver.Instance) postgres.Settings {
	s := postgres.Settings{Port: inst.Port, SocketDir: m.socketDir(inst), BackupOSUser: m.accountName(kindBackup, inst.UID),
		AllowInsecureTransport: inst.AllowInsecureTransport, Extensions: inst.Extensions}
	if addr, err := netip.ParseAddr(inst.ListenAddress); err == nil {
		s.ListenAddresses = []netip.Addr{addr}
		if !addr.IsLoopback() {
			// Not used by the daemon, which binds servers to the loopback address behind the
			// endpoint and its firewall rules; kept for a configuration that listens elsewhere:
			// any client may try, over TLS with SCRAM only (pg_hba.conf).
			s.ClientCIDRs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}
	}
	if inst.MemoryMB > 0 {
		s.SharedBuffers = min(postgres.Size(inst.MemoryMB/4)*postgres.MB, 256*postgres.MB)
	}
	return s
}

func header(env *dataenc.Envelope) (*volume.Header, error) {
	vault, name, version, err := dataenc.ParseKeyID(env.KeyID)
	if err != nil {
		return nil, err
	}
	return &volume.Header{KeyID: vault + "/keys/" + name, KeyVersion: version, Algorithm: env.Algorithm,
		WrappedKey: env.Wrapped, Created: env.Created.UTC().Truncate(time.Second)}, nil
}

// WriteEnvelope replaces the wrapped-DEK header beside the volume, atomically.
func (m *Manager) WriteEnvelope(ctx context.Context, inst flexserver.Instance, env *dataenc.Envelope) error {
	h, err := header(env)
	if err != nil {
		return err
	}
	return volume.WriteHeader(ctx, m.volume(inst).HeaderPath(), h)
}

// newVolume makes a new server's accounts and encrypted volume, with the wrapped DEK beside
// it, mounts it, prepares the server's private /tmp and writes its backup configuration (a new
// server archives from its first WAL).
func (m *Manager) newVolume(ctx context.Context, inst flexserver.Instance, env *dataenc.Envelope, dek []byte) (osuser.User, error) {
	if err := m.ensureHelper(); err != nil {
		return osuser.User{}, err
	}
	db, _, err := m.ensureAccounts(ctx, inst)
	if err != nil {
		return osuser.User{}, err
	}
	vol := m.volume(inst)
	if err := os.MkdirAll(vol.Dir, 0o700); err != nil {
		return osuser.User{}, err
	}
	if err := m.WriteEnvelope(ctx, inst, env); err != nil {
		return osuser.User{}, fmt.Errorf("write DEK header: %w", err)
	}
	if err := vol.Create(ctx, dek); err != nil {
		return osuser.User{}, err
	}
	if err := vol.Mount(ctx, dek); err != nil {
		return osuser.User{}, err
	}
	if err := m.prepareTmp(inst, db); err != nil {
		return osuser.User{}, err
	}
	return db, m.ConfigureBackups(ctx, inst)
}

// prepareTmp makes the server's private /tmp inside its mounted volume: what the server's
// processes write there is encrypted like the rest, and seen by no other server. Under fscrypt
// it also closes the volume's plaintext directory to every account but the server's own (its
// group holds both): another account's working directory in it would keep the volume busy and
// make Stop fail.
func (m *Manager) prepareTmp(inst flexserver.Instance, db osuser.User) error {
	if err := m.closePlainDir(inst, db, 0o710); err != nil {
		return err
	}
	dir := m.tmpDir(inst)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("private /tmp: %w", err)
	}
	if err := os.Lchown(dir, int(db.UID), int(db.GID)); err != nil {
		return fmt.Errorf("private /tmp: %w", err)
	}
	return os.Chmod(dir, 0o700)
}

// closePlainDir gives a fscrypt volume's plaintext directory to root and the server's group
// with mode (0710: the server's accounts may enter it, no one else); gocryptfs's plaintext is
// the mount itself, left as it is.
func (m *Manager) closePlainDir(inst flexserver.Instance, db osuser.User, mode os.FileMode) error {
	plain := m.volume(inst).DataDir()
	if plain == m.mountDir(inst) {
		return nil
	}
	if err := os.Lchown(plain, 0, int(db.GID)); err != nil {
		return fmt.Errorf("the volume's plaintext directory: %w", err)
	}
	if err := os.Chmod(plain, mode); err != nil {
		return fmt.Errorf("the volume's plaintext directory: %w", err)
	}
	return nil
}

// configure installs a certificate from pgflex's CA and writes the server's configuration,
// archiving included, into its data directory.
func (m *Manager) configure(ctx context.Context, inst flexserver.Instance, db osuser.User) error {
	if err := m.installCertificate(ctx, inst, db); err != nil {
		return err
	}
	return m.rewriteConfig(ctx, inst, db)
}

// SetParameters writes the server's configuration (its parameters, and pg_hba.conf for
// require_secure_transport) and reloads its PostgreSQL.
func (m *Manager) SetParameters(ctx context.Context, inst flexserver.Instance) error {
	pi, err := m.running(inst)
	if err != nil {
		return err
	}
	if err := m.rewriteConfig(ctx, inst, pi.User); err != nil {
		return err
	}
	// PostgreSQL reads the files again for pg_file_settings without applying them: a value it
	// refuses is found before the reload (and before a restart would fail on it).
	if err := m.checkUserConfig(ctx, inst); err != nil {
		return err
	}
	return pi.Reload(ctx)
}

// checkUserConfig asks the server whether it accepts every setting of its user configuration
// file; a refusal is the user's 400, in PostgreSQL's words.
func (m *Manager) checkUserConfig(ctx context.Context, inst flexserver.Instance) error {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var name, value, problem string
	// A changed static (postmaster) parameter reads as "could not be applied" until the
	// restart: only the others are judged here (the API checked the static ones' type and
	// range).
	err = conn.QueryRow(ctx, `SELECT coalesce(f.name, ''), coalesce(f.setting, ''), f.error FROM pg_file_settings f
		WHERE f.sourcefile LIKE '%/' || $1 AND f.error IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM pg_settings s WHERE s.name = f.name AND s.context = 'postmaster')
		ORDER BY f.seqno LIMIT 1`, postgres.UserConfigFile).Scan(&name, &value, &problem)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check the server's parameters: %w", err)
	}
	// PostgreSQL says only "setting could not be applied" here (its reason goes to its log).
	return arm.BadRequest("InvalidParameterValue", "Invalid value given for parameter %s. Specify a valid parameter value. PostgreSQL does not accept '%s' (%s).", name, value, problem)
}

// rewriteConfig writes the server's whole configuration again before a start or restart, so
// that it carries the server's current parameters (and what this release of pgflex sets).
func (m *Manager) rewriteConfig(ctx context.Context, inst flexserver.Instance, db osuser.User) error {
	settings := m.settings(inst)
	if err := m.archiving(inst, &settings); err != nil {
		return err
	}
	if err := postgres.WriteConfig(ctx, m.dataDir(inst), db, settings); err != nil {
		return err
	}
	return postgres.WriteUserConfig(ctx, m.dataDir(inst), db, inst.Parameters)
}

// certificateHosts are the names a server's certificate covers: its host name only, reached
// through the PostgreSQL endpoint. Not its address nor localhost, which every server shares
// (a certificate for them would prove nothing about which server answered), and not the
// endpoint's aliases (Azure's own domain: pgflex's CA issues nothing under it).
func (m *Manager) certificateHosts(inst flexserver.Instance) []string {
	return []string{strings.ToLower(inst.Name) + "." + m.cfg.DNSSuffix}
}

// installCertificate issues the server a certificate from pgflex's CA for its host names.
func (m *Manager) installCertificate(ctx context.Context, inst flexserver.Instance, db osuser.User) error {
	leaf, err := m.cfg.CA.Issue(inst.Name, m.certificateHosts(inst))
	if err != nil {
		return err
	}
	defer clear(leaf.KeyPEM)
	return postgres.InstallServerCertificate(ctx, m.dataDir(inst), db, leaf.CertPEM, leaf.KeyPEM)
}

// refreshCertificate reissues the server's certificate when it no longer covers the server's
// host names (the daemon's DNS suffix changed) or nears its end; it reports whether it did.
func (m *Manager) refreshCertificate(ctx context.Context, inst flexserver.Instance, db osuser.User) (bool, error) {
	// The data directory is the server's account's: no link it plants is followed, and
	// nothing but a small regular file is read.
	certPEM, err := fsutil.ReadFileBeneath(m.dataDir(inst), "server.crt", 64<<10)
	if err == nil {
		if block, _ := pem.Decode(certPEM); block != nil {
			// Current: not near its end, and for exactly the server's names (a certificate
			// of an earlier release also covered the shared loopback names).
			if cert, err := x509.ParseCertificate(block.Bytes); err == nil && time.Until(cert.NotAfter) > 30*24*time.Hour &&
				slices.Equal(cert.DNSNames, m.certificateHosts(inst)) && len(cert.IPAddresses) == 0 {
				return false, nil
			}
		}
	}
	if err := m.installCertificate(ctx, inst, db); err != nil {
		return false, fmt.Errorf("reissue the server's certificate: %w", err)
	}
	return true, nil
}

// Create builds a new server: accounts, header, volume, initdb, certificate, configuration,
// start, administrator and backup roles, backup stanza.
func (m *Manager) Create(ctx context.Context, inst flexserver.Instance, env *dataenc.Envelope, dek, adminPassword []byte, pp backup.Passphrases) error {
	db, err := m.newVolume(ctx, inst, env, dek)
	if err != nil {
		return err
	}
	if err := postgres.InitDB(ctx, postgres.InitOptions{DataDir: m.dataDir(inst), User: db, BinDir: binDir(inst.Version)}); err != nil {
		return err
	}
	if err := m.configure(ctx, inst, db); err != nil {
		return err
	}
	pi := m.instance(inst, db)
	if err := pi.Start(ctx); err != nil {
		return err
	}
	conn, err := serviceConnect(ctx, pi)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := postgres.CreateAdmin(ctx, conn, inst.AdminLogin, adminPassword); err != nil {
		return err
	}
	// PostgreSQL 15 no longer lets every role create in public; Azure's administrator can, in
	// the postgres database that a new server comes with.
	if _, err := conn.Exec(ctx, "GRANT ALL ON SCHEMA public TO "+pgx.Identifier{inst.AdminLogin}.Sanitize()); err != nil {
		return fmt.Errorf("grant the administrator the public schema: %w", err)
	}
	if err := postgres.CreateBackupRole(ctx, conn); err != nil {
		return err
	}
	if err := postgres.ForgetSuperuserPassword(ctx, conn); err != nil {
		return err
	}
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	if err := st.Create(ctx, pp); err != nil {
		return fmt.Errorf("create the backup stanza: %w", err)
	}
	return nil
}

// Start mounts (or adopts) the volume and starts (or adopts) PostgreSQL.
func (m *Manager) Start(ctx context.Context, inst flexserver.Instance, dek []byte) error {
	pi, err := m.running(inst)
	if err != nil {
		return err
	}
	vol := m.volume(inst)
	// A stale mount (its FUSE server died) may still have a postmaster holding files on it:
	// stop that first, or detaching the mount would leave it writing into nothing.
	if st, err := vol.Status(ctx); err == nil && st == volume.Stale {
		if err := m.stopAll(ctx, inst, pi, postgres.StopImmediate); err != nil {
			m.log.Warn("stop PostgreSQL on a stale volume", "server", inst.Name, "err", err)
		}
	}
	if err := m.ensureHelper(); err != nil {
		return err
	}
	if err := m.ConfigureBackups(ctx, inst); err != nil {
		// Archiving then fails and PostgreSQL keeps its WAL until the next start: nothing lost.
		m.log.Warn("write the backup configuration", "server", inst.Name, "err", err)
	}
	adopted, err := vol.Adopt(ctx)
	if err != nil {
		return err
	}
	if !adopted {
		if dek == nil {
			return errors.New("the volume is not mounted and no key was given to mount it")
		}
		if err := vol.Mount(ctx, dek); err != nil {
			return err
		}
	}
	if err := m.prepareTmp(inst, pi.User); err != nil {
		return err
	}
	renewed, err := m.refreshCertificate(ctx, inst, pi.User)
	if err != nil {
		return err
	}
	if err := m.rewriteConfig(ctx, inst, pi.User); err != nil {
		return fmt.Errorf("write the server's configuration: %w", err)
	}
	if err := pi.Start(ctx); err != nil {
		return err
	}
	if renewed && adopted {
		// A PostgreSQL that was already running reads the new certificate on a reload.
		if err := pi.Reload(ctx); err != nil {
			m.log.Warn("reload PostgreSQL for its new certificate", "server", inst.Name, "err", err)
		}
	}
	return nil
}

// ServerOfProcess returns the UID of the server whose PostgreSQL runs process pid (its
// backends run under the server's own account): where a cancel request for that process goes.
func (m *Manager) ServerOfProcess(pid int) (string, error) {
	st, err := procfs.Read(pid)
	if err != nil {
		return "", err
	}
	kind, uid, err := m.serverOfAccount(st.RUID)
	if err != nil {
		return "", err
	}
	if kind != kindDB {
		return "", fmt.Errorf("process %d is not one of a server's PostgreSQL", pid)
	}
	return uid, nil
}

// stopAll stops PostgreSQL, then ends every process left to the server's accounts: nothing of
// the server (a process an escaped session left behind, a backup in flight with its
// passphrase) outlives its stop, holds its volume open or keeps its mount namespace alive.
func (m *Manager) stopAll(ctx context.Context, inst flexserver.Instance, pi *postgres.Instance, mode postgres.StopMode) error {
	stopErr := pi.Stop(ctx, mode)
	for _, kind := range []string{kindDB, kindBackup} {
		if err := m.killAccount(ctx, kind, inst.UID); err != nil {
			return errors.Join(stopErr, fmt.Errorf("end the processes of server %s: %w", inst.Name, err))
		}
	}
	return stopErr
}

// Stop stops PostgreSQL (fast shutdown), ends every process of the server's accounts and
// unmounts the volume.
func (m *Manager) Stop(ctx context.Context, inst flexserver.Instance) error {
	pi, err := m.running(inst)
	if err != nil {
		return err
	}
	vol := m.volume(inst)
	st, err := vol.Status(ctx)
	if err != nil {
		return err
	}
	switch st {
	case volume.Mounted:
		if err := m.stopAll(ctx, inst, pi, postgres.StopFast); err != nil {
			return fmt.Errorf("stop PostgreSQL: %w", err)
		}
	case volume.Stale:
		// The FUSE server died under a running PostgreSQL, which cannot checkpoint any more but
		// would go on serving what it has cached: it must not outlive the detached mount.
		if err := m.stopAll(ctx, inst, pi, postgres.StopImmediate); err != nil {
			return fmt.Errorf("stop PostgreSQL on a stale volume: %w", err)
		}
	default:
		if err := m.stopAll(ctx, inst, pi, postgres.StopFast); err != nil {
			return fmt.Errorf("stop PostgreSQL: %w", err)
		}
	}
	return vol.Unmount(ctx)
}

// Restart restarts PostgreSQL with a fast shutdown (with a new certificate, if its host names
// changed).
func (m *Manager) Restart(ctx context.Context, inst flexserver.Instance) error {
	pi, err := m.running(inst)
	if err != nil {
		return err
	}
	if _, err := m.refreshCertificate(ctx, inst, pi.User); err != nil {
		return err
	}
	if err := m.rewriteConfig(ctx, inst, pi.User); err != nil {
		return fmt.Errorf("write the server's configuration: %w", err)
	}
	return pi.Restart(ctx, postgres.StopFast)
}

// Status reports the volume's mount and whether PostgreSQL runs and is ready. A stale mount
// (its FUSE server died) is reported as not mounted but running: a PostgreSQL may still hold it
// and serve what it cached, and its postmaster.pid cannot be read to tell; Stop clears both,
// Start stops that PostgreSQL and mounts afresh.
func (m *Manager) Status(ctx context.Context, inst flexserver.Instance) (flexserver.Status, error) {
	st, err := m.volume(inst).Status(ctx)
	if err != nil {
		return flexserver.Status{}, err
	}
	if st == volume.Stale {
		return flexserver.Status{Mounted: false, Running: true}, nil
	}
	out := flexserver.Status{Mounted: st == volume.Mounted}
	if !out.Mounted {
		return out, nil
	}
	pi, err := m.running(inst)
	if err != nil {
		return out, err
	}
	ps, err := pi.Status(ctx)
	if err != nil {
		return out, err
	}
	out.Running = ps.Running && ps.Ready
	return out, nil
}

// Destroy deletes the wrapped DEK first — without it the ciphertext is noise — then stops
// everything, shreds the layer's sealed master key, removes every file of the server and its
// PostgreSQL account. The backup account stays with the server's repositories (RemoveBackups).
func (m *Manager) Destroy(ctx context.Context, inst flexserver.Instance) error {
	vol := m.volume(inst)
	if err := os.Remove(vol.HeaderPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shred DEK header: %w", err)
	}
	if pi, err := m.running(inst); err == nil {
		if st, err := vol.Status(ctx); err == nil && st != volume.NotMounted {
			if err := pi.Stop(ctx, postgres.StopImmediate); err != nil {
				m.log.Warn("destroy: stop PostgreSQL", "server", inst.Name, "err", err)
			}
		}
	}
	for _, kind := range []string{kindDB, kindBackup} {
		if err := m.killAccount(ctx, kind, inst.UID); err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
	}
	if st, err := vol.Status(ctx); err == nil && st != volume.NotMounted {
		if err := vol.Unmount(ctx); err != nil {
			return fmt.Errorf("destroy: %w", err)
		}
	}
	m.forget(inst.UID)
	if err := vol.Destroy(ctx); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	for _, d := range []string{m.mountDir(inst), m.socketDir(inst)} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("destroy: remove %s: %w", d, err)
		}
	}
	if err := m.removeAccount(ctx, kindDB, inst.UID); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	return nil
}

// LogTail reads the tail of the server's PostgreSQL log from its mounted volume.
func (m *Manager) LogTail(ctx context.Context, inst flexserver.Instance, maxLines int) []string {
	if st, err := m.volume(inst).Status(ctx); err != nil || st != volume.Mounted {
		return nil
	}
	return (&postgres.Instance{DataDir: m.dataDir(inst)}).LogTail(maxLines)
}

func (m *Manager) connect(ctx context.Context, inst flexserver.Instance) (*pgx.Conn, error) {
	pi, err := m.running(inst)
	if err != nil {
		return nil, err
	}
	return serviceConnect(ctx, pi)
}

// serviceConnect opens the service's superuser session on a server, with pg_catalog as its
// only search_path: nothing the administrator created (a function or operator in public that
// matches better than the built-in) is ever resolved in a superuser session.
func serviceConnect(ctx context.Context, pi *postgres.Instance) (*pgx.Conn, error) {
	ci := pi.SuperuserConnInfo()
	ci.SearchPath = "pg_catalog"
	cfg, err := ci.Config()
	if err != nil {
		return nil, err
	}
	// The service's own sessions write (a password, a database) on a server the storage monitor
	// made read-only, as a user's session may after SET default_transaction_read_only = off.
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%d as %s: %w", ci.Host, ci.Port, ci.User, err)
	}
	return conn, nil
}

// SetAdminPassword changes the administrator's password (sent as a SCRAM verifier).
func (m *Manager) SetAdminPassword(ctx context.Context, inst flexserver.Instance, password []byte) error {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return postgres.SetPassword(ctx, conn, inst.AdminLogin, password)
}

// CreateDatabase creates a database owned by the administrator.
func (m *Manager) CreateDatabase(ctx context.Context, inst flexserver.Instance, db flexserver.Database) error {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stmt := "CREATE DATABASE " + pgx.Identifier{db.Name}.Sanitize() + " OWNER " + pgx.Identifier{inst.AdminLogin}.Sanitize() +
		" ENCODING 'UTF8' TEMPLATE template0"
	if db.Collation != "" {
		lit := "'" + strings.ReplaceAll(db.Collation, "'", "''") + "'"
		stmt += " LC_COLLATE " + lit + " LC_CTYPE " + lit
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return userFacing(err, "create database "+db.Name)
	}
	return nil
}

// userFacing turns PostgreSQL's refusal of a request (a data or syntax error, such as an
// unknown collation) into an ARM 400 that says what PostgreSQL said; anything else stays an
// internal error.
func userFacing(err error, what string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "42")) {
		return arm.BadRequest("InvalidParameterValue", "PostgreSQL refused to %s: %s.", what, pe.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// DropDatabase drops a database, ending its sessions.
func (m *Manager) DropDatabase(ctx context.Context, inst flexserver.Instance, name string) error {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// ListDatabases lists the server's databases (templates excluded).
func (m *Manager) ListDatabases(ctx context.Context, inst flexserver.Instance) ([]flexserver.Database, error) {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname, pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE NOT datistemplate ORDER BY datname")
	if err != nil {
		return nil, err
	}
	var out []flexserver.Database
	for rows.Next() {
		var d flexserver.Database
		if err := rows.Scan(&d.Name, &d.Charset, &d.Collation); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
