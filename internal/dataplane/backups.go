package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/postgres"
)

// Backups, per server uid (the stanza name):
//
//	{BackupRoot}/{region}/backups/{uid}/  a pgBackRest repository (repository 1 in the server's
//	                                      region, 2 in the paired one), owned by the PostgreSQL user
//	{Root}/{uid}/backup/                  pgbackrest.conf (no secret), lock, log and spool
//	{RuntimeDir}/bin/pgflex               the archive helper PostgreSQL runs (this binary's copy)
//	{RuntimeDir}/backup.sock              where the helper asks the daemon for passphrases
//	{RuntimeDir}/restore/{id}/            a restore's or a source listing's scratch directory
//
// Every directory on the way to a repository or a configuration is traversable but not
// listable (0711): pgBackRest runs as the PostgreSQL user.

// helperBinary is the archive helper's path.
func (m *Manager) helperBinary() string { return filepath.Join(m.cfg.RuntimeDir, "bin", "pgflex") }

// PassphraseSocket is where the daemon answers the archive helper.
func (m *Manager) PassphraseSocket() string { return filepath.Join(m.cfg.RuntimeDir, "backup.sock") }

// installHelper copies the running executable to where the PostgreSQL user can run it: the
// daemon's own binary may sit anywhere (a build directory, a user's home).
func installHelper(self, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o711); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Dir(dst), 0o711); err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".pgflex-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// A rename: a helper running the old copy keeps it.
	return os.Rename(tmp.Name(), dst)
}

// ensureHelper installs the archive helper once per daemon run, before the first server
// starts: a PostgreSQL adopted from an earlier run keeps archiving through the same path.
func (m *Manager) ensureHelper() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.helperOK {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install the archive helper: %w", err)
	}
	if err := installHelper(self, m.helperBinary()); err != nil {
		return fmt.Errorf("install the archive helper: %w", err)
	}
	m.helperOK = true
	return nil
}

func (m *Manager) repoPath(location, stanza string) string {
	return backup.RepoPath(filepath.Join(m.cfg.BackupRoot, location), stanza)
}

// stanza is the pgBackRest configuration of a server.
func (m *Manager) stanza(inst flexserver.Instance) *backup.Stanza {
	repos := []backup.Repo{{Index: backup.RepoPrimary, Path: m.repoPath(inst.Location, inst.UID)}}
	if inst.GeoLocation != "" {
		repos = append(repos, backup.Repo{Index: backup.RepoGeo, Path: m.repoPath(inst.GeoLocation, inst.UID), Paused: inst.GeoPaused})
	}
	return &backup.Stanza{Name: inst.UID, ConfigDir: filepath.Join(m.cfg.Root, inst.UID, "backup"),
		DataDir: m.dataDir(inst), SocketDir: m.socketDir(inst), Port: inst.Port, User: m.user,
		Repos: repos, RetentionDays: inst.RetentionDays, Logger: m.log.With("server", inst.Name)}
}

// archiving adds continuous archiving through the helper to a server's settings.
func (m *Manager) archiving(inst flexserver.Instance, s *postgres.Settings) error {
	cmd, err := m.stanza(inst).ArchiveCommand(backup.Helper{Binary: m.helperBinary(), Socket: m.PassphraseSocket()})
	if err != nil {
		return err
	}
	s.ArchiveMode, s.ArchiveCommand = "on", cmd
	// pgBackRest, running as the PostgreSQL user, connects as the service's superuser.
	s.ServiceOSUsers = []string{"root", m.user.Name}
	return nil
}

// ConfigureBackups rewrites pgbackrest.conf from inst (repository 2 paused or not).
func (m *Manager) ConfigureBackups(ctx context.Context, inst flexserver.Instance) error {
	if err := os.Chmod(filepath.Join(m.cfg.Root, inst.UID), 0o711); err != nil {
		return fmt.Errorf("backup configuration: %w", err)
	}
	return m.stanza(inst).WriteConfig(ctx)
}

// Backup takes a full backup into one repository.
func (m *Manager) Backup(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases, repo int) (backup.Backup, error) {
	return m.stanza(inst).Backup(ctx, pp, backup.BackupOptions{Repo: repo, Type: backup.TypeFull})
}

// BackupInfo lists the server's backups.
func (m *Manager) BackupInfo(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases) (*backup.Info, error) {
	return m.stanza(inst).Info(ctx, pp)
}

// DeleteBackup removes one backup set.
func (m *Manager) DeleteBackup(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases, repo int, label string) error {
	return m.stanza(inst).DeleteBackup(ctx, pp, repo, label)
}

// ExpireBackups applies the retention.
func (m *Manager) ExpireBackups(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases) error {
	return m.stanza(inst).Expire(ctx, pp)
}

// FlushArchive commits a transaction, then lets pgbackrest check switch WAL and wait for it to
// be archived.
func (m *Manager) FlushArchive(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases) error {
	conn, err := m.connect(ctx, inst)
	if err != nil {
		return err
	}
	// txid_current() gives the transaction an id, so its commit is logged with a timestamp.
	_, err = conn.Exec(ctx, "SELECT pg_catalog.txid_current()")
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("commit a marker transaction: %w", err)
	}
	return m.stanza(inst).Check(ctx, pp)
}

// scratchDir is a new directory for one restore or listing: short, for the recovery socket.
func (m *Manager) scratchDir() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	dir := filepath.Join(m.cfg.RuntimeDir, "restore", hex.EncodeToString(b))
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return "", err
	}
	return dir, os.Chmod(filepath.Dir(dir), 0o711)
}

// SourceInfo lists the backups of a restore source's repository.
func (m *Manager) SourceInfo(ctx context.Context, src flexserver.RestoreSource) (*backup.Info, error) {
	dir, err := m.scratchDir()
	if err != nil {
		return nil, err
	}
	return backup.SourceInfo(ctx, backup.Source{Stanza: src.Stanza, RepoPath: m.repoPath(src.Location, src.Stanza),
		Passphrase: src.Passphrase}, dir, m.user, m.log)
}

// RemoveBackups deletes a stanza's repositories.
func (m *Manager) RemoveBackups(ctx context.Context, stanza string, locations ...string) error {
	for _, loc := range locations {
		if loc == "" {
			continue
		}
		if err := os.RemoveAll(m.repoPath(loc, stanza)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove backups of %s in %s: %w", stanza, loc, err)
		}
	}
	return nil
}

// Restore builds a new server from a source's backups: header, volume, restored files with the
// new server's own configuration and certificate, recovery, then its own stanza.
func (m *Manager) Restore(ctx context.Context, inst flexserver.Instance, env *dataenc.Envelope, dek []byte, pp backup.Passphrases, src flexserver.RestoreSource) (backup.RestoreResult, error) {
	if err := m.newVolume(ctx, inst, env, dek); err != nil {
		return backup.RestoreResult{}, err
	}
	work, err := m.scratchDir()
	if err != nil {
		return backup.RestoreResult{}, err
	}
	defer os.RemoveAll(work)
	res, err := backup.Restore(ctx, backup.RestoreOptions{
		Source: backup.Source{Stanza: src.Stanza, RepoPath: m.repoPath(src.Location, src.Stanza), Passphrase: src.Passphrase},
		Target: src.Target, Instance: m.instance(inst), WorkDir: work, HelperBinary: m.helperBinary(),
		Logger: m.log.With("server", inst.Name),
		// The restored files carry the source's configuration and certificate: the new
		// server's own replace them before it starts.
		Configure: func(ctx context.Context) error { return m.configure(ctx, inst) },
	})
	if err != nil {
		return res, err
	}
	if err := m.stanza(inst).Create(ctx, pp); err != nil {
		return res, fmt.Errorf("create the restored server's backup stanza: %w", err)
	}
	return res, nil
}

// PassphraseServer is the daemon's answer to the archive helper: a server's PostgreSQL (and
// only it, checked by the kernel's peer credentials) gets the passphrases of its own stanza,
// which pass returns. The caller runs Listen before any server starts, then Serve.
func (m *Manager) PassphraseServer(pass func(ctx context.Context, req backup.Request) (backup.Passphrases, error)) *backup.PassphraseServer {
	return &backup.PassphraseServer{Path: m.PassphraseSocket(), Logger: m.log, Passphrases: pass,
		Owner: func(_ context.Context, stanza string) (backup.Owner, error) {
			// A stanza is a server of this host: its directory exists.
			if !filepath.IsLocal(stanza) || strings.ContainsAny(stanza, `/\`) {
				return backup.Owner{}, backup.ErrUnknownStanza
			}
			if _, err := os.Stat(filepath.Join(m.cfg.Root, stanza, "backup")); err != nil {
				return backup.Owner{}, fmt.Errorf("%w: %s", backup.ErrUnknownStanza, stanza)
			}
			return backup.Owner{UID: m.user.UID, DataDir: m.dataDir(flexserver.Instance{UID: stanza})}, nil
		}}
}
