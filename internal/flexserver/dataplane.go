package flexserver

import (
	"context"
	"time"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/regions"
)

// Instance is what the data plane needs to know of a server.
type Instance struct {
	UID           string
	Name          string
	Version       string
	ListenAddress string
	Port          int
	AdminLogin    string
	VCores        int
	MemoryMB      int
	// StorageSizeGB is the size of the server's volume, for a layer that has one.
	StorageSizeGB int
	// Backups: repository 1 in Location; repository 2 in GeoLocation ("" without geo-redundant
	// backup), left out while GeoPaused (its key is unusable).
	Location      string
	GeoLocation   string
	GeoPaused     bool
	RetentionDays int
	// Parameters are the server's PostgreSQL parameters that differ from pgflex's configuration:
	// the SKU's defaults and the user's overrides (name → value), written into the server's
	// user configuration file at every configure, start and restart.
	Parameters map[string]string
	// AllowInsecureTransport: require_secure_transport is off; pg_hba.conf accepts clients
	// without TLS.
	AllowInsecureTransport bool
	// Extensions is the allow-list of extensions (azure.extensions); nil means pgflex's default.
	Extensions []string
}

// RestoreSource is the repository a new server is restored from: repository 1 (in the source's
// region) or 2 (in the paired region) of the source server's stanza.
type RestoreSource struct {
	Stanza   string // the source server's UID
	Location string // the region whose storage holds the repository
	// Passphrase of that repository (derived from its backup DEK); the caller wipes it.
	Passphrase []byte
	// Target is the point in time to recover to; zero means the end of the archived WAL.
	Target time.Time
}

// Status is the data plane's actual state of one server.
type Status struct {
	Mounted bool // the plaintext view of the volume is mounted
	Running bool // PostgreSQL accepts connections (or may still hold a stale mount: stop it)
}

// Database is one database of a server.
type Database struct {
	Name      string
	Charset   string
	Collation string
}

// DataPlane runs servers: an encrypted volume keyed by the DEK, PostgreSQL inside it.
// Implementations must be idempotent: every call may be repeated after a crash.
type DataPlane interface {
	// SupportedVersions are the PostgreSQL major versions this host can run.
	SupportedVersions() []string
	// Create makes the encrypted volume keyed by dek, writes env beside it, initialises,
	// configures and starts PostgreSQL inside, and creates the administrator role. What it
	// leaves behind on failure is removed by Destroy.
	// Continuous archiving into the server's repositories starts with it; pp holds the
	// passphrase of every repository of inst that is not paused.
	Create(ctx context.Context, inst Instance, env *dataenc.Envelope, dek, adminPassword []byte, pp backup.Passphrases) error
	// Restore makes a new server like Create, but from src's backups: its files are restored
	// into the new volume, recovered to src.Target and promoted; it then archives into its own
	// repositories (pp) as any server. What it leaves behind on failure is removed by Destroy.
	Restore(ctx context.Context, inst Instance, env *dataenc.Envelope, dek []byte, pp backup.Passphrases, src RestoreSource) (backup.RestoreResult, error)
	// Backup takes a full backup into one repository (waiting until it is restorable).
	Backup(ctx context.Context, inst Instance, pp backup.Passphrases, repo int) (backup.Backup, error)
	// BackupInfo lists the backups of the server's repositories that are not paused.
	BackupInfo(ctx context.Context, inst Instance, pp backup.Passphrases) (*backup.Info, error)
	// SourceInfo lists the backups of one repository without its server (a restore's source).
	SourceInfo(ctx context.Context, src RestoreSource) (*backup.Info, error)
	// DeleteBackup removes one backup set from a repository.
	DeleteBackup(ctx context.Context, inst Instance, pp backup.Passphrases, repo int, label string) error
	// ExpireBackups removes what the retention no longer needs.
	ExpireBackups(ctx context.Context, inst Instance, pp backup.Passphrases) error
	// FlushArchive makes every transaction committed so far restorable: it commits one more
	// transaction (recovery to a time stops at the first commit after it), switches WAL and
	// waits until the segment is archived.
	FlushArchive(ctx context.Context, inst Instance, pp backup.Passphrases) error
	// ConfigureBackups rewrites the server's backup configuration from inst (e.g. pausing or
	// resuming repository 2).
	ConfigureBackups(ctx context.Context, inst Instance) error
	// RemoveBackups deletes a stanza's repositories (retention over after the server's deletion).
	RemoveBackups(ctx context.Context, stanza string, locations ...string) error
	// Start mounts the volume (adopting a live mount) and starts PostgreSQL (adopting a running
	// one). dek may be nil when the volume is already mounted.
	Start(ctx context.Context, inst Instance, dek []byte) error
	// Stop stops PostgreSQL (fast shutdown) and unmounts the volume.
	Stop(ctx context.Context, inst Instance) error
	// Restart restarts PostgreSQL, keeping the volume mounted.
	Restart(ctx context.Context, inst Instance) error
	// Status reports what is mounted and running.
	Status(ctx context.Context, inst Instance) (Status, error)
	// WriteEnvelope replaces the wrapped DEK kept beside the volume (after a rewrap).
	WriteEnvelope(ctx context.Context, inst Instance, env *dataenc.Envelope) error
	// Destroy deletes the wrapped DEK beside the volume first (crypto-shredding), then stops
	// everything and removes every file of the server.
	Destroy(ctx context.Context, inst Instance) error
	// LogTail returns the last lines of the server's PostgreSQL log (redacted of credentials),
	// read from its mounted volume: the evidence of a failed build, taken before Destroy. Nil
	// when there is nothing to read.
	LogTail(ctx context.Context, inst Instance, maxLines int) []string
	// SetAdminPassword changes the administrator's password.
	SetAdminPassword(ctx context.Context, inst Instance, password []byte) error
	CreateDatabase(ctx context.Context, inst Instance, db Database) error
	DropDatabase(ctx context.Context, inst Instance, name string) error
	ListDatabases(ctx context.Context, inst Instance) ([]Database, error)
	// SetParameters writes inst.Parameters into the server's configuration and reloads it:
	// dynamic parameters apply at once, static ones at the next start or restart.
	SetParameters(ctx context.Context, inst Instance) error
	// StorageUsage measures the mounted server's storage (see StorageUsage).
	StorageUsage(ctx context.Context, inst Instance) (StorageUsage, error)
	// GrowStorage makes the server's volume inst.StorageSizeGB GiB large, online while it is
	// mounted; idempotent. For storage without a size of its own it does nothing: the size is
	// then the limit the storage monitor holds the server to.
	GrowStorage(ctx context.Context, inst Instance) error
	// VolumeReleased waits until nothing holds the server's stopped volume any more (the
	// kernel may release it a moment after Stop returns); a volume is mounted again after it.
	VolumeReleased(ctx context.Context, inst Instance) error
}

// StorageUsage is a server's storage, in bytes.
type StorageUsage struct {
	// Total is the storage's size: its filesystem's (statfs, without the filesystem's own
	// metadata) when Sizable, else the server's storageSizeGB.
	Total uint64
	// Used is what the server's files take: of its own filesystem, or of the host's (the
	// allocated blocks of its ciphertext) when not Sizable.
	Used uint64
	// Avail is what the server's PostgreSQL can still write (statfs's f_bavail when Sizable;
	// Total-Used otherwise).
	Avail uint64
	// Sizable: the server's volume is a filesystem of its own (fscrypt's image), which grows;
	// otherwise it lives on the host's filesystem (gocryptfs) and its size is a limit only.
	Sizable bool
}

// Percent is Used as a percentage of Total.
func (u StorageUsage) Percent() float64 {
	if u.Total == 0 {
		return 0
	}
	return 100 * float64(u.Used) / float64(u.Total)
}

// instance derives the data-plane description of a server.
func (s *Server) instance() Instance {
	_, info, _ := lookupSKU(s.SKU.Name)
	inst := Instance{UID: s.UID, Name: s.Name, Version: s.Version, ListenAddress: s.listenAddress(), Port: s.Port,
		AdminLogin: s.AdministratorLogin, VCores: info.VCores, MemoryMB: info.VCores * info.MemoryPerVCoreM,
		Location: s.Location, RetentionDays: s.BackupRetentionDays, Parameters: s.effectiveParameters(),
		AllowInsecureTransport: s.allowsPlaintext(), Extensions: s.extensions(), StorageSizeGB: s.StorageSizeGB}
	if s.GeoRedundantBackup == "Enabled" {
		inst.GeoLocation, _ = regions.PairOf(s.Location)
		inst.GeoPaused = s.Encryption.GeoKeyStatus == KeyInvalid
	}
	return inst
}
