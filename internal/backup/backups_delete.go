package backup

import (
	"context"
	"fmt"
	"regexp"
)

// labelRE is pgBackRest's backup label: full, or diff/incr after a prior.
var labelRE = regexp.MustCompile(`^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$`)

// Expire removes what the retention (RetentionDays) no longer needs from
// every repository that is not paused: full backups older than the
// retention, except the newest of them (it is needed to restore to the
// start of the window), with their dependent backups and WAL. pgBackRest
// also expires after each backup; Expire is for a retention that was
// shortened, or a schedule that wants it explicitly.
func (s *Stanza) Expire(ctx context.Context, pp Passphrases) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := s.invocation(pp).run(ctx, "expire"); err != nil {
		return fmt.Errorf("backup: expire stanza %s: %w", s.Name, err)
	}
	return nil
}

// DeleteBackup removes one backup set (and the backups that depend on it)
// from a repository, e.g. an on-demand backup the user deletes. pgBackRest
// refuses to remove the newest backup of a repository.
func (s *Stanza) DeleteBackup(ctx context.Context, pp Passphrases, repo int, label string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if !labelRE.MatchString(label) {
		return fmt.Errorf("backup: %q is not a backup label", label)
	}
	if _, err := s.activeRepo(repo); err != nil {
		return err
	}
	if _, err := s.invocation(pp).run(ctx, "expire", repoArg(repo), "--set="+label); err != nil {
		return fmt.Errorf("backup: delete backup %s of stanza %s from repository %d: %w", label, s.Name, repo, err)
	}
	s.logger().InfoContext(ctx, "backup deleted", "stanza", s.Name, "repo", repo, "label", label)
	return nil
}
