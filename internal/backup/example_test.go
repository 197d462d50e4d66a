package backup_test

import (
	"context"
	"log"
	"path/filepath"
	"time"

	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/postgres"
)

// A geo-redundant server's backups, as the daemon runs them. (Not run: it
// needs root, a mounted volume, PostgreSQL and pgBackRest.)
func ExampleStanza() {
	ctx := context.Background()
	dir := "/var/lib/pgflex" // the daemon's data directory
	uid := "0e8c2d1a-7c55-4c7e-9b1e-2a7d5f1c9e00"
	user, err := postgres.LookupOSUser(postgres.DefaultOSUser)
	if err != nil {
		log.Fatal(err)
	}
	// The repositories' backup DEKs, just unwrapped by the primary key and
	// by the geo-backup key; they never touch the disk.
	var dek1, dek2 []byte
	p1, err := backup.Passphrase(dek1, uid)
	if err != nil {
		log.Fatal(err)
	}
	p2, err := backup.Passphrase(dek2, uid)
	if err != nil {
		log.Fatal(err)
	}
	pp := backup.Passphrases{backup.RepoPrimary: p1, backup.RepoGeo: p2}
	defer pp.Wipe()

	// Once per daemon: the socket archive_command asks for passphrases.
	srv := &backup.PassphraseServer{
		Path: filepath.Join(dir, "run", "backup.sock"),
		Owner: func(ctx context.Context, stanza string) (backup.Owner, error) {
			// The server whose UID is stanza, from the state store.
			return backup.Owner{UID: user.UID, DataDir: "/var/lib/pgflex/servers/" + stanza + "/vol/mount/pgdata"}, nil
		},
		Passphrases: func(ctx context.Context, req backup.Request) (backup.Passphrases, error) {
			// Unwrap the stanza's backup DEKs with the server's keys
			// (leaving out a paused repository) and derive.
			return nil, backup.ErrUnknownStanza
		},
	}
	if err := srv.Listen(); err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ctx)

	s := &backup.Stanza{
		Name:      uid,
		ConfigDir: filepath.Join(dir, "servers", uid, "backup"),
		DataDir:   filepath.Join(dir, "servers", uid, "vol", "mount", "pgdata"),
		SocketDir: filepath.Join(dir, "run", uid), Port: 6432, User: user,
		Repos: []backup.Repo{
			{Index: backup.RepoPrimary, Path: backup.RepoPath(filepath.Join(dir, "regions", "eastus"), uid)},
			{Index: backup.RepoGeo, Path: backup.RepoPath(filepath.Join(dir, "regions", "westus"), uid)},
		},
		RetentionDays: 7,
	}
	if err := s.WriteConfig(ctx); err != nil {
		log.Fatal(err)
	}
	// archive_command for the server's postgres.Settings (ArchiveMode "on";
	// ServiceOSUsers must include user.Name for pgBackRest's connection).
	archiveCommand, err := s.ArchiveCommand(backup.Helper{Binary: "/usr/local/bin/pgflex", Socket: srv.Path})
	if err != nil {
		log.Fatal(err)
	}
	_ = archiveCommand // ... write the configuration, start PostgreSQL ...

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

	// Point-in-time restore into a new server (its volume mounted).
	newInst := &postgres.Instance{DataDir: "/var/lib/pgflex/servers/NEW/vol/mount/pgdata", User: user, Port: 6433, SocketDir: "/var/lib/pgflex/run/NEW"}
	_, err = backup.Restore(ctx, backup.RestoreOptions{
		Source:       backup.Source{Stanza: uid, RepoPath: s.Repos[0].Path, Passphrase: p1},
		Target:       time.Now().Add(-time.Hour),
		Instance:     newInst,
		WorkDir:      "/var/lib/pgflex/servers/NEW/restore",
		HelperBinary: "/usr/local/bin/pgflex",
		Configure: func(ctx context.Context) error {
			// postgres.WriteConfig and InstallServerCertificate for the new server.
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}
