package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/fsutil"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
)

// ErrNoBackup: the repository holds no backup from which the requested
// point in time can be reached.
var ErrNoBackup = errors.New("backup: no backup to restore from")

// ErrTargetNotReached: the archived WAL ends before the requested point in
// time (no transaction committed after it was archived). Restoring to the
// end of the archive (a zero Target) gives the state at that point.
var ErrTargetNotReached = errors.New("backup: the archived WAL ends before the restore target")

// Source is the repository a restore reads: the source server's repository
// 1 for a point-in-time restore, its repository 2 for a geo-restore. It
// needs neither the source server nor its configuration, so a deleted
// server can be restored while its backups are retained.
type Source struct {
	// Stanza is the source server's stanza.
	Stanza string
	// RepoPath is the repository directory (RepoPath(regionRoot, Stanza)).
	RepoPath string
	// Passphrase is that repository's passphrase (Passphrase of its backup
	// DEK); Restore does not keep it.
	Passphrase []byte
	// Account is the source server's backup account, which owns the
	// repository: pgBackRest reads it as that account. (It outlives its
	// server for as long as the backups are retained.)
	Account osuser.User

	plaintext bool // benchmarks' unencrypted baseline
}

// RestoreOptions describe a restore into a new server.
type RestoreOptions struct {
	Source Source
	// Target is the point in time to recover to (the last transaction
	// committed at or before it is included). Zero means the end of the
	// archived WAL: the latest state the repository can give.
	Target time.Time
	// Instance is the new server's PostgreSQL: its DataDir must not exist
	// yet and its parent must be the new server's mounted volume. Restore
	// starts it to recover and returns with it running, promoted.
	Instance *postgres.Instance
	// WorkDir is a directory outside the volume for the restore's
	// pgbackrest.conf, pgBackRest's lock, log and spool directories, WAL
	// fetched for recovery and the recovery socket (short: the socket path
	// is limited to 107 bytes). It holds no secret.
	WorkDir string
	// HelperBinary is the pgflex executable PostgreSQL runs as
	// restore_command (archive-get); the PostgreSQL user must be able to
	// run it.
	HelperBinary string
	// Configure is called once the source's files are in DataDir and
	// before PostgreSQL starts. Those files include the source's
	// configuration, so Configure writes the new server's own
	// (postgres.WriteConfig: port, socket, archive_command of the new
	// stanza) and its certificate. Recovery settings are kept apart by
	// pgBackRest in postgresql.auto.conf, which Configure must not touch.
	Configure func(ctx context.Context) error

	// Tuning of the restore; ProcessMax defaults to 2 as for backups.
	// (It was 1 while Debian's gocryptfs 2.3 raced parallel file
	// creation; scripts/setup.sh now installs a gocryptfs that does not.)
	Tuning Tuning
	// Pgbackrest is the pgbackrest executable; default DefaultPgbackrest.
	Pgbackrest string
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger
}

// RestoreResult says what a restore did.
type RestoreResult struct {
	// Backup is the backup set restored.
	Backup Backup
	// FilesTime is the time pgBackRest took to restore the files,
	// RecoveryTime the time PostgreSQL took to replay WAL and promote.
	FilesTime, RecoveryTime time.Duration
}

// recoverySocket is the name of the recovery socket in WorkDir.
const recoverySocket = "recovery.sock"

// Restore restores a backup from opts.Source into a new data directory and
// recovers it to opts.Target:
//
//  1. pgbackrest info picks the newest backup consistent at Target (or the
//     newest, for the latest state); none gives ErrNoBackup;
//  2. pgbackrest restore writes its files into the new DataDir, with
//     recovery settings whose restore_command is pgflex's archive helper;
//  3. Configure writes the new server's configuration;
//  4. PostgreSQL starts and replays archived WAL: its restore_command
//     (the helper) asks an ArchiveServer that Restore runs on
//     WorkDir/recovery.sock, for this server's postmaster only, which runs
//     pgbackrest archive-get and hands the helper the fetched file, until
//     it reaches the target and promotes;
//  5. the recovery settings are removed (ALTER SYSTEM RESET ALL: pgflex
//     keeps every setting of its own in postgresql.conf).
//
// pgBackRest runs as the source's backup account throughout: the files it
// restores are handed to the new server's account (step 2), and the WAL it
// fetches reaches PostgreSQL as an open file. The passphrase reaches
// pgBackRest through its environment only; the new server's account, which
// runs PostgreSQL and the helper, never holds it. On failure PostgreSQL is
// stopped and the error carries pgBackRest's or PostgreSQL's message; the
// caller removes the new server's files.
func Restore(ctx context.Context, opts RestoreOptions) (res RestoreResult, err error) {
	if err := opts.validate(); err != nil {
		return res, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	inst := opts.Instance
	src := opts.Source

	// The data directory must be new: restoring over anything would mix
	// two servers' files.
	if err := os.Mkdir(inst.DataDir, 0o700); err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	// A failed restore leaves nothing behind in the volume.
	defer func() {
		if err != nil {
			if rerr := os.RemoveAll(inst.DataDir); rerr != nil {
				log.WarnContext(ctx, "backup: remove the data directory of a failed restore", "err", rerr)
			}
		}
	}()
	// pgBackRest writes the files as the source's backup account; they are
	// the new server's once restored.
	if err := os.Chown(inst.DataDir, int(src.Account.UID), int(src.Account.GID)); err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	pgbackrest := opts.Pgbackrest
	if pgbackrest == "" {
		pgbackrest = DefaultPgbackrest
	}
	inv, err := sourceInvocation(src, opts.WorkDir, inst.DataDir, opts.Tuning, pgbackrest, log)
	if err != nil {
		return res, err
	}
	pp := inv.pass
	defer pp.Wipe()

	// 1. Which backup.
	in, ierr := info(ctx, inv, repoArg(1))
	if ierr != nil {
		return res, fmt.Errorf("backup: cannot read the repository %s of stanza %s (wrong passphrase, or not this stanza's repository): %w", src.RepoPath, src.Stanza, ierr)
	}
	var ok bool
	if opts.Target.IsZero() {
		res.Backup, ok = in.Latest(1)
		if !ok {
			return res, fmt.Errorf("%w: the repository of stanza %s holds no backup", ErrNoBackup, src.Stanza)
		}
	} else {
		res.Backup, ok = in.latestBefore(1, opts.Target)
		if !ok {
			earliest, has := in.EarliestRestoreDate(1)
			if !has {
				return res, fmt.Errorf("%w: the repository of stanza %s holds no backup", ErrNoBackup, src.Stanza)
			}
			return res, fmt.Errorf("%w: %s is before the earliest restore point %s of stanza %s",
				ErrNoBackup, opts.Target.UTC().Format(time.RFC3339Nano), earliest.Format(time.RFC3339), src.Stanza)
		}
	}

	// 2. Files.
	helper := Helper{Binary: opts.HelperBinary, Socket: filepath.Join(opts.WorkDir, recoverySocket)}
	restoreCommand := helperCommand(helper, opArchiveGet, src.Stanza) + " %f %p"
	args := []string{repoArg(1), "--set=" + res.Backup.Label, "--recovery-option=restore_command=" + restoreCommand}
	if opts.Target.IsZero() {
		args = append(args, "--type=default")
	} else {
		args = append(args, "--type=time", "--target="+formatTarget(opts.Target), "--target-action=promote")
	}
	start := time.Now()
	if _, err := inv.run(ctx, "restore", args...); err != nil {
		return res, fmt.Errorf("backup: restore backup %s of stanza %s: %w", res.Backup.Label, src.Stanza, err)
	}
	if err := chownTree(inst.DataDir, inst.User); err != nil {
		return res, fmt.Errorf("backup: restore: hand the restored files to the new server: %w", err)
	}
	res.FilesTime = time.Since(start)
	log.InfoContext(ctx, "backup files restored", "stanza", src.Stanza, "label", res.Backup.Label,
		"data_dir", inst.DataDir, "duration", res.FilesTime)

	// 3. The new server's configuration.
	if opts.Configure != nil {
		if err := opts.Configure(ctx); err != nil {
			return res, fmt.Errorf("backup: restore: configure the new server: %w", err)
		}
	}

	// 4. Recovery, with an archive socket that serves this server's
	// postmaster only. archive-get reads the new server's pg_control (for
	// the system identifier), so it runs with the new server's group too.
	walDir := filepath.Join(opts.WorkDir, "wal")
	if err := mkdirOwned(walDir, 0o700, int(src.Account.UID), int(src.Account.GID)); err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	getInv := inv
	getInv.user.Groups = append(append([]uint32{}, inv.user.Groups...), inst.User.GID)
	srv := &ArchiveServer{Path: helper.Socket, Logger: log,
		Target: func(_ context.Context, uid uint32) (ArchiveTarget, error) {
			if uid != inst.User.UID {
				return ArchiveTarget{}, ErrUnknownStanza
			}
			pm, err := inst.Postmaster()
			if err != nil {
				return ArchiveTarget{}, err
			}
			return ArchiveTarget{Stanza: src.Stanza, UID: inst.User.UID, Postmaster: pm,
				Get: func(ctx context.Context, name string, _ Peer) (*os.File, error) {
					return archiveGet(ctx, getInv, walDir, name)
				}}, nil
		}}
	if err := srv.Listen(); err != nil {
		return res, err
	}
	sctx, stopServer := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(sctx); err != nil {
			log.WarnContext(ctx, "backup recovery socket", "err", err)
		}
	}()
	defer func() { stopServer(); <-served }()

	start = time.Now()
	if err := inst.Start(ctx); err != nil {
		stopQuietly(inst, log)
		return res, recoveryFailed(inst, err)
	}
	// PostgreSQL accepts connections in hot standby, before the target is
	// reached: wait for the promotion.
	if err := waitPromoted(ctx, inst); err != nil {
		stopQuietly(inst, log)
		return res, recoveryFailed(inst, err)
	}
	res.RecoveryTime = time.Since(start)

	// 5. Promoted: drop the recovery settings.
	if err := finishRecovery(ctx, inst); err != nil {
		stopQuietly(inst, log)
		return res, err
	}
	log.InfoContext(ctx, "backup restored", "stanza", src.Stanza, "label", res.Backup.Label, "data_dir", inst.DataDir,
		"target", opts.Target, "files", res.FilesTime, "recovery", res.RecoveryTime)
	return res, nil
}

func (o *RestoreOptions) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(validateStanzaName(o.Source.Stanza))
	add(validatePath("source repository", o.Source.RepoPath))
	if !o.Source.plaintext && len(o.Source.Passphrase) == 0 {
		add(errors.New("backup: restore needs the source repository's passphrase"))
	}
	if o.Instance == nil {
		add(errors.New("backup: restore needs the new server's Instance"))
	} else {
		add(validatePath("data dir", o.Instance.DataDir))
		if o.Instance.User.UID == 0 {
			add(errors.New("backup: refusing to restore as root"))
		}
	}
	add(validatePath("restore work dir", o.WorkDir))
	if len(filepath.Join(o.WorkDir, recoverySocket)) > maxSocketPath {
		add(fmt.Errorf("backup: restore work dir %q is too long for its socket", o.WorkDir))
	}
	add(validatePath("helper binary", o.HelperBinary))
	if o.Pgbackrest != "" {
		add(validatePath("pgbackrest binary", o.Pgbackrest))
	}
	if err := o.Tuning.validate(); err != nil {
		add(fmt.Errorf("backup: %w", err))
	}
	return errors.Join(errs...)
}

// formatTarget renders a recovery target PostgreSQL parses exactly, in UTC
// with microseconds (PostgreSQL's precision).
func formatTarget(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000000") + "+00"
}

// waitPromoted waits until the server has left recovery, or has stopped
// (recovery failed), or ctx ends.
func waitPromoted(ctx context.Context, inst *postgres.Instance) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		st, err := inst.Status(ctx)
		if err == nil && !st.Running {
			return fmt.Errorf("postgres stopped during recovery: %s", st.LastExit.Reason())
		}
		inRecovery, err := inRecovery(ctx, inst)
		if err == nil && !inRecovery {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("recovery not finished: %w (last error: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func inRecovery(ctx context.Context, inst *postgres.Instance) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := inst.Connect(cctx)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var in bool
	err = conn.QueryRow(cctx, "SELECT pg_is_in_recovery()").Scan(&in)
	return in, err
}

// finishRecovery removes the recovery settings pgBackRest wrote to
// postgresql.auto.conf.
func finishRecovery(ctx context.Context, inst *postgres.Instance) error {
	conn, err := inst.Connect(ctx)
	if err != nil {
		return fmt.Errorf("backup: restore: %w", err)
	}
	defer conn.Close(context.Background())
	// pgflex never uses ALTER SYSTEM (its settings are postgresql.conf,
	// generated), so postgresql.auto.conf holds only what pgBackRest wrote.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM RESET ALL"); err != nil {
		return fmt.Errorf("backup: restore: remove recovery settings: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("backup: restore: reload: %w", err)
	}
	return nil
}

// stopQuietly stops a server whose recovery failed, so that its volume can
// be unmounted.
func stopQuietly(inst *postgres.Instance, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := inst.Stop(ctx, postgres.StopFast); err != nil {
		log.WarnContext(ctx, "backup: stop the restored server", "err", err)
		_ = inst.Stop(ctx, postgres.StopImmediate)
	}
}

// recoveryFailed is the error of a recovery that stopped: it names what PostgreSQL logged last
// (e.g. "recovery ended before configured recovery target was reached", ErrTargetNotReached)
// and carries the log's tail as evidence, read now: a failed restore's files are removed.
func recoveryFailed(inst *postgres.Instance, err error) error {
	err = inst.WithLog(err)
	lines := postgres.LogOf(err)
	msg := scrub(postgres.FailureLine(lines), nil)
	if msg == "" {
		return fmt.Errorf("backup: recovery of the restored server failed: %w", err)
	}
	if strings.Contains(msg, "recovery ended before configured recovery target was reached") {
		err = fmt.Errorf("%w: %w", ErrTargetNotReached, err)
	}
	return fmt.Errorf("backup: recovery of the restored server failed: %s: %w", msg, err)
}

// sourceInvocation writes a configuration for reading src's repository
// (as repository 1) into workDir, with pgBackRest's lock, log and spool
// directories, and returns the invocation that uses it with src's
// passphrase (a copy, which the caller wipes). dataDir is where a restore
// writes.
func sourceInvocation(src Source, workDir, dataDir string, tuning Tuning, pgbackrest string, log *slog.Logger) (invocation, error) {
	user := src.Account
	if user.UID == 0 || user.Name == "" {
		return invocation{}, errors.New("backup: reading a repository needs its backup account, not root")
	}
	// Traversable: the restored server's helper reaches the recovery
	// socket in it. The rest belongs to the source's backup account.
	if err := mkdirOwned(workDir, 0o711, 0, 0); err != nil {
		return invocation{}, fmt.Errorf("backup: work dir: %w", err)
	}
	if err := makeWorkDirs(workDir, user); err != nil {
		return invocation{}, err
	}
	confPath := filepath.Join(workDir, "pgbackrest.conf")
	global := append(commonOptions(workDir, tuning), repoOptions(1, src.RepoPath, src.plaintext, 0)...)
	conf := renderINI([]section{{"global", global}, {src.Stanza, []option{{"pg1-path", dataDir}}}})
	if err := writeFileOwned(confPath, conf, 0o600, int(user.UID), int(user.GID)); err != nil {
		return invocation{}, fmt.Errorf("backup: write %s: %w", confPath, err)
	}
	pp := Passphrases{}
	if !src.plaintext {
		pp[1] = append([]byte(nil), src.Passphrase...)
	}
	return invocation{bin: pgbackrest, config: confPath, stanza: src.Stanza, user: user,
		repos: map[int]bool{1: !src.plaintext}, pass: pp, logger: log}, nil
}

// SourceInfo lists the backups in a source repository without its server
// (which may be stopped, or deleted within its retention): what a restore
// from it can reach. workDir is a scratch directory for pgBackRest's
// configuration, lock and log (removed afterwards); the repository reads
// as repository 1 in the result.
func SourceInfo(ctx context.Context, src Source, workDir string, log *slog.Logger) (*Info, error) {
	if err := validateStanzaName(src.Stanza); err != nil {
		return nil, err
	}
	if err := validatePath("source repository", src.RepoPath); err != nil {
		return nil, err
	}
	if err := validatePath("work dir", workDir); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	defer os.RemoveAll(workDir)
	inv, err := sourceInvocation(src, workDir, workDir, Tuning{}, DefaultPgbackrest, log)
	if err != nil {
		return nil, err
	}
	defer inv.pass.Wipe()
	in, err := info(ctx, inv, repoArg(1))
	if err != nil {
		return nil, fmt.Errorf("backup: cannot read the repository of stanza %s (wrong passphrase, or not this stanza's repository): %w", src.Stanza, err)
	}
	return in, nil
}

// archiveGet fetches one WAL file from the source's archive into dir (the
// source's backup account's) with pgbackrest archive-get, and returns it
// open, already unlinked: only the open file reaches the helper.
func archiveGet(ctx context.Context, inv invocation, dir, name string) (*os.File, error) {
	if err := validateWALName(name); err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, name)
	_ = os.Remove(dst)
	if _, err := inv.run(ctx, "archive-get", name, dst); err != nil {
		// archive-get exits 1, with no error of its own, when the archive
		// has no such file: the normal end of recovery.
		var pe *Error
		if errors.As(err, &pe) && pe.Code == 1 {
			return nil, ErrNotInArchive
		}
		return nil, fmt.Errorf("backup: fetch %s from stanza %s: %w", name, inv.stanza, err)
	}
	f, err := fsutil.OpenBeneath(dir, name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("backup: fetch %s: %w", name, err)
	}
	_ = os.Remove(dst)
	return f, nil
}

// chownTree hands every file under root (root included) to user, never
// following a symbolic link: the tree was written by another account, and
// a link in it must not make root chown something outside.
func chownTree(root string, user osuser.User) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(user.UID), int(user.GID))
	})
}
