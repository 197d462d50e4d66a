package backup

import (
	"context"
	"fmt"
)

// Backup types.
const (
	TypeFull = "full"
	TypeDiff = "diff"
	TypeIncr = "incr"
)

// BackupOptions choose what Backup takes.
type BackupOptions struct {
	// Repo is the repository to back up into; default 1. pgBackRest backs
	// up into one repository at a time, so a geo-redundant server is
	// backed up into each.
	Repo int
	// Type is TypeFull (default), TypeDiff or TypeIncr.
	Type string
}

// Backup takes a backup of the running server into one repository and
// returns it. It waits until the WAL the backup needs is archived, so the
// backup is restorable when Backup returns. pgBackRest then expires what
// retention no longer needs. pp holds the passphrase of every repository
// that is not paused (pgBackRest opens them all).
func (s *Stanza) Backup(ctx context.Context, pp Passphrases, opts BackupOptions) (Backup, error) {
	if err := s.Validate(); err != nil {
		return Backup{}, err
	}
	if opts.Repo == 0 {
		opts.Repo = RepoPrimary
	}
	if opts.Type == "" {
		opts.Type = TypeFull
	}
	switch opts.Type {
	case TypeFull, TypeDiff, TypeIncr:
	default:
		return Backup{}, fmt.Errorf("backup: type %q is not one of full, diff, incr", opts.Type)
	}
	if _, err := s.activeRepo(opts.Repo); err != nil {
		return Backup{}, err
	}
	inv := s.invocation(pp)
	if _, err := inv.run(ctx, "backup", repoArg(opts.Repo), "--type="+opts.Type); err != nil {
		return Backup{}, fmt.Errorf("backup: %s backup of stanza %s into repository %d: %w", opts.Type, s.Name, opts.Repo, err)
	}
	in, err := info(ctx, inv, repoArg(opts.Repo))
	if err != nil {
		return Backup{}, fmt.Errorf("backup: list backups of stanza %s: %w", s.Name, err)
	}
	b, ok := in.Latest(opts.Repo)
	if !ok {
		return Backup{}, fmt.Errorf("backup: stanza %s: the new backup is missing from repository %d", s.Name, opts.Repo)
	}
	s.logger().InfoContext(ctx, "backup taken", "stanza", s.Name, "repo", opts.Repo, "label", b.Label,
		"type", b.Type, "size", b.Size, "repo_size", b.RepoSize, "duration", b.Stop.Sub(b.Start))
	return b, nil
}
