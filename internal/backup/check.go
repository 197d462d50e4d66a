package backup

import (
	"context"
	"fmt"
)

// Check runs pgbackrest check: PostgreSQL's archiving configuration matches
// the stanza, a WAL switch is forced and the segment reaches every
// repository that is not paused within the archive timeout. A nil error
// therefore also means that every commit made before Check began is in the
// archive, so a restore can reach it.
func (s *Stanza) Check(ctx context.Context, pp Passphrases) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := s.invocation(pp).run(ctx, "check"); err != nil {
		return fmt.Errorf("backup: check stanza %s: %w", s.Name, err)
	}
	return nil
}
