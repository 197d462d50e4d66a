// Package backup runs pgflex's backups with pgBackRest: one stanza per
// server, repository 1 in the server's region, repository 2 (geo-redundant
// backup) in the paired region, each encrypted by pgBackRest (aes-256-cbc)
// under its own passphrase.
//
// # Files
//
//   - config.go: the typed Stanza (PostgreSQL, repositories, retention,
//     tuning) rendered into pgbackrest.conf, which holds no secret;
//   - passphrase.go: a repository's passphrase, derived from its backup DEK;
//   - stanza_create.go, backups_create.go, backups_list.go (info),
//     backups_delete.go (expire), check.go, restore.go: the operations;
//   - passphrase_server.go and archive_helper.go: how PostgreSQL's
//     archive_command and restore_command obtain passphrases;
//   - pgbackrest.go: running pgBackRest as the PostgreSQL OS user, and its
//     errors.
//
// # Passphrases
//
// A repository's passphrase is derived from that repository's 32-byte backup
// DEK (see Passphrase) and reaches pgBackRest only through its environment
// (PGBACKREST_REPO{n}_CIPHER_PASS): never a file, never a command line.
// pgBackRest itself keeps it that way: it redacts secure options from its
// logs and does not pass them on the command lines of its local processes,
// which inherit the environment instead.
//
// Operations the daemon runs (backup, info, check, expire, restore) take the
// passphrases as an argument and put them in the environment of the one
// pgBackRest process they start. PostgreSQL's archive_command is the hard
// case, since PostgreSQL runs it without the daemon: it is
//
//	/path/to/pgflex archive-push --socket=... --stanza=... --config=... %p
//
// a subcommand of pgflex's own binary (RunHelper) which asks the daemon for
// the passphrases over a Unix socket (PassphraseServer), then runs
// pgbackrest archive-push with them in that child's environment only. The
// daemon answers only a peer whose SO_PEERCRED uid is the stanza's
// PostgreSQL user and whose ancestors include a postgres process working in
// the stanza's own data directory, so a server's PostgreSQL gets its own
// stanza's passphrases and nothing else; keys are unwrapped only after
// that check. Restores use the same helper as
// restore_command (archive-get), answered by a socket of their own that
// lives only while the new server recovers.
//
// When the daemon is down, archive-push fails and PostgreSQL keeps the WAL
// segment and retries it later: nothing is lost. When the geo-backup key
// is unusable, repository 2 is paused (Stanza.SetPaused): it is left out of
// pgbackrest.conf, so archive-push and backups go to repository 1 only, and
// the primary is not disturbed.
package backup
