package backup

import (
	"context"
	"fmt"
	"path/filepath"
)

// ArchivePush archives pg_wal/name of the server into every repository
// that is not paused: pgbackrest archive-push, run as the backup account
// (which reads the segment through the server's group), with pp in its
// environment only. The daemon's ArchiveServer calls it for the server's
// archive_command. Pushing a segment that is already archived with the same
// content succeeds, so PostgreSQL's retries are safe.
func (s *Stanza) ArchivePush(ctx context.Context, pp Passphrases, name string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := validateWALName(name); err != nil {
		return err
	}
	wal := filepath.Join(s.DataDir, "pg_wal", name)
	if _, err := s.invocation(pp).run(ctx, "archive-push", wal); err != nil {
		return fmt.Errorf("backup: archive %s of stanza %s: %w", name, s.Name, err)
	}
	return nil
}
