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
	"syscall"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/sandbox"
)

// Backups, per server uid (the stanza name):
//
//	{BackupRoot}/{region}/backups/{uid}/  a pgBackRest repository (repository 1 in the server's
//	                                      region, 2 in the paired one), owned by the server's
//	                                      backup account (0700)
//	{Root}/{uid}/backup/                  pgbackrest.conf (no secret), lock, log and spool, the
//	                                      backup account's (0700)
//	{RuntimeDir}/bin/pgflex               the archive helper PostgreSQL runs (this binary's copy),
//	                                      which is also the servers' sandbox
//	{RuntimeDir}/backup.sock              where the helper asks the daemon to archive a segment
//	{RuntimeDir}/restore/{id}/            a restore's or a source listing's scratch directory
//
// Every directory on the way to a repository or a configuration is traversable but not
// listable (0711): pgBackRest runs as each server's backup account. PostgreSQL's account never
// reads a repository, a configuration or a passphrase: its archive_command asks the daemon,
// which runs pgBackRest as the backup account.

// helperBinary is the archive helper's path.
func (m *Manager) helperBinary() string { return filepath.Join(m.cfg.RuntimeDir, "bin", "pgflex") }

// ArchiveSocket is where the daemon answers the archive helper.
func (m *Manager) ArchiveSocket() string { return filepath.Join(m.cfg.RuntimeDir, "backup.sock") }

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
// starts: a PostgreSQL adopted from an earlier run keeps archiving through the same path. Every
// call checks that the helper, which the daemon runs as root to build each sandbox, and the
// directories above it are still root's and writable by no one else.
func (m *Manager) ensureHelper() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.helperOK {
		return rootOnly(m.cfg.RuntimeDir, filepath.Dir(m.helperBinary()), m.helperBinary())
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install the archive helper: %w", err)
	}
	if err := installHelper(self, m.helperBinary()); err != nil {
		return fmt.Errorf("install the archive helper: %w", err)
	}
	if err := rootOnly(m.cfg.RuntimeDir, filepath.Dir(m.helperBinary()), m.helperBinary()); err != nil {
		return err
	}
	m.helperOK = true
	return nil
}

// rootOnly checks that each path is root's, not a link, and writable by no one else.
func rootOnly(paths ...string) error {
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || st.Uid != 0 || fi.Mode()&os.ModeSymlink != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s is not root's alone (mode %v): the runtime directory was tampered with; the daemon runs nothing from it", p, fi.Mode())
		}
	}
	return nil
}

func (m *Manager) repoPath(location, stanza string) string {
	return backup.RepoPath(filepath.Join(m.cfg.BackupRoot, location), stanza)
}

// stanza is the pgBackRest configuration of a server, run by its backup account.
func (m *Manager) stanza(inst flexserver.Instance) (*backup.Stanza, error) {
	bk, err := m.backupAccount(inst.UID)
	if err != nil {
		return nil, err
	}
	repos := []backup.Repo{{Index: backup.RepoPrimary, Path: m.repoPath(inst.Location, inst.UID)}}
	if inst.GeoLocation != "" {
		repos = append(repos, backup.Repo{Index: backup.RepoGeo, Path: m.repoPath(inst.GeoLocation, inst.UID), Paused: inst.GeoPaused})
	}
	mount := m.mountDir(inst)
	return &backup.Stanza{Name: inst.UID, ConfigDir: filepath.Join(m.cfg.Root, inst.UID, "backup"),
		DataDir: m.dataDir(inst), SocketDir: m.socketDir(inst), Port: inst.Port, Account: bk,
		Repos: repos, RetentionDays: inst.RetentionDays, Logger: m.log.With("server", inst.Name),
		// pgBackRest reads the server's volume, where the server's own account may have planted
		// links: it sees the volume read-only and follows no link in it, and sees no other
		// server's volume.
		Sandbox:     &sandbox.Spec{Volumes: filepath.Join(m.cfg.RuntimeDir, "mnt"), Own: mount, NoFollow: []string{mount}},
		SandboxExec: m.helperBinary()}, nil
}

// archiving adds continuous archiving through the helper to a server's settings.
func (m *Manager) archiving(inst flexserver.Instance, s *postgres.Settings) error {
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	cmd, err := st.ArchiveCommand(backup.Helper{Binary: m.helperBinary(), Socket: m.ArchiveSocket()})
	if err != nil {
		return err
	}
	s.ArchiveMode, s.ArchiveCommand = "on", cmd
	return nil
}

// ConfigureBackups rewrites pgbackrest.conf from inst (repository 2 paused or not).
func (m *Manager) ConfigureBackups(ctx context.Context, inst flexserver.Instance) error {
	if err := os.Chmod(filepath.Join(m.cfg.Root, inst.UID), 0o711); err != nil {
		return fmt.Errorf("backup configuration: %w", err)
	}
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	return st.WriteConfig(ctx)
}

// Backup takes a full backup into one repository.
func (m *Manager) Backup(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases, repo int) (backup.Backup, error) {
	st, err := m.stanza(inst)
	if err != nil {
		return backup.Backup{}, err
	}
	return st.Backup(ctx, pp, backup.BackupOptions{Repo: repo, Type: backup.TypeFull})
}

// BackupInfo lists the server's backups.
func (m *Manager) BackupInfo(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases) (*backup.Info, error) {
	st, err := m.stanza(inst)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx, pp)
}

// DeleteBackup removes one backup set.
func (m *Manager) DeleteBackup(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases, repo int, label string) error {
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	return st.DeleteBackup(ctx, pp, repo, label)
}

// ExpireBackups applies the retention.
func (m *Manager) ExpireBackups(ctx context.Context, inst flexserver.Instance, pp backup.Passphrases) error {
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	return st.Expire(ctx, pp)
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
	st, err := m.stanza(inst)
	if err != nil {
		return err
	}
	return st.Check(ctx, pp)
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

// source describes a restore source's repository, read as the source's backup account.
func (m *Manager) source(src flexserver.RestoreSource) (backup.Source, error) {
	bk, err := m.backupAccount(src.Stanza)
	if err != nil {
		return backup.Source{}, err
	}
	return backup.Source{Stanza: src.Stanza, RepoPath: m.repoPath(src.Location, src.Stanza),
		Passphrase: src.Passphrase, Account: bk}, nil
}

// SourceInfo lists the backups of a restore source's repository.
func (m *Manager) SourceInfo(ctx context.Context, src flexserver.RestoreSource) (*backup.Info, error) {
	from, err := m.source(src)
	if err != nil {
		return nil, err
	}
	dir, err := m.scratchDir()
	if err != nil {
		return nil, err
	}
	return backup.SourceInfo(ctx, from, dir, m.log)
}

// RemoveBackups deletes a stanza's repositories, then its backup account (whose processes are
// ended first).
func (m *Manager) RemoveBackups(ctx context.Context, stanza string, locations ...string) error {
	if err := m.killAccount(ctx, kindBackup, stanza); err != nil {
		return fmt.Errorf("remove backups of %s: %w", stanza, err)
	}
	for _, loc := range locations {
		if loc == "" {
			continue
		}
		if err := os.RemoveAll(m.repoPath(loc, stanza)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove backups of %s in %s: %w", stanza, loc, err)
		}
	}
	// The account owned the repositories and the stanza's configuration (removed with the
	// server's directory): nothing of it is left for a later account with its uid.
	if err := m.removeAccount(ctx, kindBackup, stanza); err != nil {
		return fmt.Errorf("remove backups of %s: %w", stanza, err)
	}
	return nil
}

// Restore builds a new server from a source's backups: accounts, header, volume, restored
// files with the new server's own configuration and certificate, recovery, then its own stanza.
func (m *Manager) Restore(ctx context.Context, inst flexserver.Instance, env *dataenc.Envelope, dek []byte, pp backup.Passphrases, src flexserver.RestoreSource) (_ backup.RestoreResult, err error) {
	from, err := m.source(src)
	if err != nil {
		return backup.RestoreResult{}, err
	}
	db, err := m.newVolume(ctx, inst, env, dek)
	if err != nil {
		return backup.RestoreResult{}, err
	}
	// pgBackRest restores as the source server's backup account, which is not in this server's
	// group: it may pass through the plaintext directory (traverse only) while it restores.
	if err := m.closePlainDir(inst, db, 0o711); err != nil {
		return backup.RestoreResult{}, err
	}
	defer func() {
		if cerr := m.closePlainDir(inst, db, 0o710); cerr != nil && err == nil {
			err = cerr
		}
	}()
	work, err := m.scratchDir()
	if err != nil {
		return backup.RestoreResult{}, err
	}
	defer os.RemoveAll(work)
	res, err := backup.Restore(ctx, backup.RestoreOptions{
		Source: from, Target: src.Target, Instance: m.instance(inst, db), WorkDir: work, HelperBinary: m.helperBinary(),
		Logger: m.log.With("server", inst.Name),
		// The restored files carry the source's configuration and certificate: the new
		// server's own replace them before it starts.
		Configure: func(ctx context.Context) error { return m.configure(ctx, inst, db) },
	})
	if err != nil {
		return res, err
	}
	st, err := m.stanza(inst)
	if err != nil {
		return res, err
	}
	if err := st.Create(ctx, pp); err != nil {
		return res, fmt.Errorf("create the restored server's backup stanza: %w", err)
	}
	return res, nil
}

// ArchiveServer is the daemon's answer to the archive helper: a server's PostgreSQL (and only
// it: the peer's uid is the server's own account, and the peer descends from the postmaster
// this data plane started or adopted) has its WAL archived. The daemon releases the server's
// backup keys through pass (reason says why), runs pgBackRest as the server's backup account
// with the passphrases in that process's environment, and wipes them. The caller runs Listen
// before any server starts, then Serve.
func (m *Manager) ArchiveServer(lookup func(ctx context.Context, uid string) (flexserver.Instance, error),
	pass func(ctx context.Context, stanza, reason string) (backup.Passphrases, error)) *backup.ArchiveServer {
	return &backup.ArchiveServer{Path: m.ArchiveSocket(), Logger: m.log,
		Target: func(ctx context.Context, uid uint32) (backup.ArchiveTarget, error) {
			kind, serverUID, err := m.serverOfAccount(uid)
			if err != nil || kind != kindDB {
				return backup.ArchiveTarget{}, fmt.Errorf("%w: uid %d", backup.ErrUnknownStanza, uid)
			}
			inst, err := lookup(ctx, serverUID)
			if err != nil {
				return backup.ArchiveTarget{}, fmt.Errorf("%w: %v", backup.ErrUnknownStanza, err)
			}
			pi, err := m.running(inst)
			if err != nil {
				return backup.ArchiveTarget{}, err
			}
			if pi.User.UID != uid {
				return backup.ArchiveTarget{}, fmt.Errorf("%w: uid %d", backup.ErrUnknownStanza, uid)
			}
			pm, err := pi.Postmaster()
			if err != nil {
				return backup.ArchiveTarget{}, err
			}
			return backup.ArchiveTarget{Stanza: inst.UID, UID: uid, Postmaster: pm,
				Push: func(ctx context.Context, name string, peer backup.Peer) error {
					st, err := m.stanza(inst)
					if err != nil {
						return err
					}
					pp, err := pass(ctx, inst.UID, fmt.Sprintf("archive-push %s, asked by pid %d", name, peer.PID))
					if err != nil {
						return err
					}
					defer pp.Wipe()
					return st.ArchivePush(ctx, pp, name)
				}}, nil
		}}
}
