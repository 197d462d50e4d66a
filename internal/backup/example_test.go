package backup_test

import (
	"context"
	"log"
	"path/filepath"
	"time"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
)

// A geo-redundant server's backups, as the daemon runs them. (Not run: it
// needs root, a mounted volume, PostgreSQL and pgBackRest.)
func ExampleStanza() {
	ctx := context.Background()
	dir := "/var/lib/pgflex" // the daemon's data directory
	uid := "0e8c2d1a-7c55-4c7e-9b1e-2a7d5f1c9e00"
	// The server's two accounts: PostgreSQL's, and the backup account in its group.
	db, err := osuser.Lookup("pgflex-db-0e8c2d1a7c554c7e")
	if err != nil {
		log.Fatal(err)
	}
	bk, err := osuser.Lookup("pgflex-bk-0e8c2d1a7c554c7e")
	if err != nil {
		log.Fatal(err)
	}
	s := &backup.Stanza{
		Name:      uid,
		ConfigDir: filepath.Join(dir, "servers", uid, "backup"),
		DataDir:   "/run/pgflex/x/mnt/" + uid + "/pgdata",
		SocketDir: "/run/pgflex/x/sock/0e8c2d1a-7c5", Port: 6432, Account: bk,
		Repos: []backup.Repo{
			{Index: backup.RepoPrimary, Path: backup.RepoPath(filepath.Join(dir, "regions", "eastus"), uid)},
			{Index: backup.RepoGeo, Path: backup.RepoPath(filepath.Join(dir, "regions", "westus"), uid)},
		},
		RetentionDays: 7,
	}
	// The repositories' passphrases, derived from backup DEKs just unwrapped by the
	// primary key and by the geo-backup key; they never touch the disk.
	passphrases := func() backup.Passphrases {
		var dek1, dek2 []byte
		p1, _ := backup.Passphrase(dek1, uid)
		p2, _ := backup.Passphrase(dek2, uid)
		return backup.Passphrases{backup.RepoPrimary: p1, backup.RepoGeo: p2}
	}
	var postmaster *postgres.Instance // the server's running PostgreSQL

	// Once per daemon: the socket archive_command asks to archive a segment. It answers
	// only the server's own postmaster, and keeps the passphrases to itself.
	srv := &backup.ArchiveServer{
		Path: "/run/pgflex/x/backup.sock",
		Target: func(ctx context.Context, peerUID uint32) (backup.ArchiveTarget, error) {
			if peerUID != db.UID {
				return backup.ArchiveTarget{}, backup.ErrUnknownStanza
			}
			pm, err := postmaster.Postmaster()
			if err != nil {
				return backup.ArchiveTarget{}, err
			}
			return backup.ArchiveTarget{Stanza: uid, UID: db.UID, Postmaster: pm,
				Push: func(ctx context.Context, name string, _ backup.Peer) error {
					pp := passphrases()
					defer pp.Wipe()
					return s.ArchivePush(ctx, pp, name)
				}}, nil
		},
	}
	if err := srv.Listen(); err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ctx)

	if err := s.WriteConfig(ctx); err != nil {
		log.Fatal(err)
	}
	// archive_command for the server's postgres.Settings (ArchiveMode "on"; BackupOSUser
	// names bk, so that pgBackRest connects as postgres.BackupRole).
	archiveCommand, err := s.ArchiveCommand(backup.Helper{Binary: "/run/pgflex/x/bin/pgflex", Socket: srv.Path})
	if err != nil {
		log.Fatal(err)
	}
	_ = archiveCommand // ... write the configuration, start PostgreSQL ...

	pp := passphrases()
	defer pp.Wipe()
	if err := s.Create(ctx, pp); err != nil {
		log.Fatal(err)
	}
	for _, repo := range []int{backup.RepoPrimary, backup.RepoGeo} {
		if _, err := s.Backup(ctx, pp, backup.BackupOptions{Repo: repo}); err != nil {
			log.Fatal(err)
		}
	}
	in, err := s.Info(ctx, pp)
	if err != nil {
		log.Fatal(err)
	}
	earliest, _ := in.EarliestRestoreDate(backup.RepoPrimary) // properties.backup.earliestRestoreDate
	log.Println("earliest restore point:", earliest)

	// Point-in-time restore into a new server (its volume mounted, its accounts made):
	// pgBackRest reads the repository as the source's backup account.
	newDB, err := osuser.Lookup("pgflex-db-5b1d9a0c3e2f4a61")
	if err != nil {
		log.Fatal(err)
	}
	newInst := &postgres.Instance{DataDir: "/run/pgflex/x/mnt/NEW/pgdata", User: newDB, Port: 6433, SocketDir: "/run/pgflex/x/sock/NEW"}
	_, err = backup.Restore(ctx, backup.RestoreOptions{
		Source:       backup.Source{Stanza: uid, RepoPath: s.Repos[0].Path, Passphrase: pp[backup.RepoPrimary], Account: bk},
		Target:       time.Now().Add(-time.Hour),
		Instance:     newInst,
		WorkDir:      "/run/pgflex/x/restore/a1b2c3",
		HelperBinary: "/run/pgflex/x/bin/pgflex",
		Configure: func(ctx context.Context) error {
			// postgres.WriteConfig and InstallServerCertificate for the new server.
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}
