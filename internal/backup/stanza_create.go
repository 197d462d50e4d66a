package backup

import (
	"context"
	"fmt"
)

// Create runs pgbackrest stanza-create: it initialises the stanza in every
// repository that is not paused, encrypting each repository's info files
// under its passphrase. PostgreSQL must be running (pgBackRest reads the
// system identifier and version from it). Creating an existing stanza with
// the same passphrases succeeds, so Create may be repeated after a crash.
//
// WriteConfig must have been called; pp holds the passphrase of every
// repository that is not paused.
func (s *Stanza) Create(ctx context.Context, pp Passphrases) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := s.invocation(pp).run(ctx, "stanza-create"); err != nil {
		return fmt.Errorf("backup: create stanza %s: %w", s.Name, err)
	}
	s.logger().InfoContext(ctx, "backup stanza created", "stanza", s.Name)
	return nil
}
