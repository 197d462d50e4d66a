package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestBackupRestore drives one geo-redundant server through its backup
// life: continuous archiving through the helper and the passphrase socket,
// full backups into both repositories, point-in-time restore from
// repository 1, geo-restore from repository 2, and checks that neither
// data nor passphrases leak. The subtests share the server and run in
// order.
func TestBackupRestore(t *testing.T) {
	e := newTestEnv(t)
	top := t
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	src := e.newSource(t, true)

	// A unique marker, in the rows of every phase: it must reach neither
	// repository in plaintext. Repositories are lz4-compressed, which
	// stores the first occurrence of a string as a literal, so an
	// unencrypted repository would contain it.
	marker := "pgflex-marker-" + randomHex(t, 16)
	sqlExec(ctx, t, src.inst,
		"CREATE TABLE rows (id serial PRIMARY KEY, phase text NOT NULL, marker text NOT NULL)",
		"INSERT INTO rows (phase, marker) SELECT '0', '"+marker+"' FROM generate_series(1, 1000)",
	)

	var full1, full2 Backup
	t.Run("full backups into both repositories, passphrases on no command line", func(t *testing.T) {
		w := testkit.Watch(e.secretNeedles())
		defer w.Stop()
		var err error
		full1, err = src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoPrimary})
		if err != nil {
			t.Fatal(err)
		}
		full2, err = src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoGeo, Type: TypeFull})
		if err != nil {
			t.Fatal(err)
		}
		w.Stop()
		// The watch's positive control: it saw pgBackRest run, and found the passphrases where
		// they must be, in its environment.
		inCmdline, inEnviron := 0, 0
		for _, h := range w.Hits() {
			switch h.Where {
			case "cmdline":
				inCmdline++
				t.Errorf("%s (pid %d, uid %d) had %s on its command line", h.Exe, h.PID, h.UID, h.Needle)
			case "environ":
				if h.Exe == "pgbackrest" {
					inEnviron++
				}
			}
		}
		seen := w.Seen("pgbackrest")
		if seen == 0 || inEnviron == 0 || w.Sweeps() == 0 {
			t.Errorf("the watch saw %d pgbackrest processes, %d environments holding a passphrase in %d sweeps: it proved nothing",
				seen, inEnviron, w.Sweeps())
		}
		t.Logf("watched %d pgbackrest processes in %d sweeps: %d command lines and %d pgbackrest environments held a secret",
			seen, w.Sweeps(), inCmdline, inEnviron)
		for _, b := range []Backup{full1, full2} {
			if b.Type != TypeFull || !labelRE.MatchString(b.Label) || b.Size <= 0 || b.RepoSize <= 0 ||
				b.Stop.Before(b.Start) || b.WALStart == "" || b.WALStop == "" || b.LSNStart == "" {
				t.Errorf("backup not described fully: %+v", b)
			}
		}
		if full1.Repo != RepoPrimary || full2.Repo != RepoGeo {
			t.Errorf("repos: %d, %d", full1.Repo, full2.Repo)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Rows A, the target time T, rows B: all after the backups, so a
	// restore to T must replay archived WAL and stop exactly there.
	// Recovery can stop no earlier than the backups' consistency points,
	// which pgBackRest records in whole seconds.
	waitServerClock(ctx, t, src.inst, full2.Stop.Add(2*time.Second))
	var target time.Time
	sqlExec(ctx, t, src.inst, "INSERT INTO rows (phase, marker) SELECT 'A', '"+marker+"' FROM generate_series(1, 1000)")
	sqlScan(ctx, t, src.inst, "SELECT clock_timestamp()", &target)
	sqlExec(ctx, t, src.inst, "INSERT INTO rows (phase, marker) SELECT 'B', '"+marker+"' FROM generate_series(1, 1000)")

	t.Run("check forces a WAL switch archived in both repositories", func(t *testing.T) {
		if err := src.stanza.Check(ctx, src.pp); err != nil {
			t.Fatal(err)
		}
		in, err := src.stanza.Info(ctx, src.pp)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Backups) != 2 {
			t.Fatalf("backups: %+v", in.Backups)
		}
		for _, repo := range []int{RepoPrimary, RepoGeo} {
			var found bool
			for _, a := range in.Archive {
				if a.Repo == repo && a.Min != "" && a.Max >= full2.WALStop {
					found = true
				}
			}
			if !found {
				t.Errorf("repository %d: archive %+v does not reach %s", repo, in.Archive, full2.WALStop)
			}
		}
		earliest, ok := in.EarliestRestoreDate(RepoPrimary)
		if !ok || !earliest.Equal(full1.Stop.Add(time.Second)) {
			t.Errorf("earliest restore date %v, %v; want %v", earliest, ok, full1.Stop.Add(time.Second))
		}
	})

	t.Run("point-in-time restore from repository 1", func(t *testing.T) {
		inst, res, err := e.restoreInto(ctx, t, src, RepoPrimary, target, src.pp[RepoPrimary], nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Backup.Label != full1.Label {
			t.Errorf("restored %s, want %s", res.Backup.Label, full1.Label)
		}
		var n0, nA, nB int
		sqlScan(ctx, t, inst, "SELECT count(*) FILTER (WHERE phase='0'), count(*) FILTER (WHERE phase='A'), count(*) FILTER (WHERE phase='B') FROM rows", &n0, &nA, &nB)
		if n0 != 1000 || nA != 1000 || nB != 0 {
			t.Errorf("restored to %v: rows 0=%d A=%d B=%d, want 1000 1000 0", target, n0, nA, nB)
		}
		var restoreCommand string
		sqlScan(ctx, t, inst, "SELECT current_setting('restore_command')", &restoreCommand)
		if restoreCommand != "" {
			t.Errorf("restore_command still set after recovery: %q", restoreCommand)
		}
		stopInstance(t, inst)
	})

	t.Run("geo-restore of the latest state from repository 2, then its own stanza", func(t *testing.T) {
		newName := "g" + randomHex(t, 6)
		var newStanza *Stanza
		var newPP Passphrases
		archive := func(inst *postgres.Instance, bk osuser.User) string {
			newStanza = e.stanzaFor(newName, inst, bk, false)
			newPP = e.passphrases(t, newStanza)
			if err := newStanza.WriteConfig(ctx); err != nil {
				t.Error(err)
			}
			e.grant(newStanza, inst, newPP)
			cmd, err := newStanza.ArchiveCommand(e.helper)
			if err != nil {
				t.Error(err)
			}
			return cmd
		}
		inst, res, err := e.restoreInto(ctx, t, src, RepoGeo, time.Time{}, src.pp[RepoGeo], archive)
		if err != nil {
			t.Fatal(err)
		}
		if res.Backup.Label != full2.Label {
			t.Errorf("restored %s, want %s", res.Backup.Label, full2.Label)
		}
		var nA, nB int
		sqlScan(ctx, t, inst, "SELECT count(*) FILTER (WHERE phase='A'), count(*) FILTER (WHERE phase='B') FROM rows", &nA, &nB)
		if nA != 1000 || nB != 1000 {
			t.Errorf("latest: rows A=%d B=%d, want 1000 1000", nA, nB)
		}
		// The new server archives into its own stanza and can be backed up.
		if err := newStanza.Create(ctx, newPP); err != nil {
			t.Fatal(err)
		}
		b, err := newStanza.Backup(ctx, newPP, BackupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Repo != RepoPrimary || b.Type != TypeFull {
			t.Errorf("new server's backup: %+v", b)
		}
		stopInstance(t, inst)
	})

	t.Run("wrong passphrase: restore fails clearly and leaves nothing", func(t *testing.T) {
		wrong, err := Passphrase(bytes.Repeat([]byte{7}, DEKSize), src.name)
		if err != nil {
			t.Fatal(err)
		}
		inst, _, err := e.restoreInto(ctx, t, src, RepoPrimary, time.Time{}, wrong, nil)
		if err == nil {
			t.Fatal("restore with a wrong passphrase succeeded")
		}
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "wrong passphrase") {
			t.Errorf("error = %v; want a pgBackRest error that names the likely cause", err)
		}
		if hits := e.secretNeedles().AddSecret("wrong passphrase", wrong).Find([]byte(err.Error())); len(hits) > 0 {
			t.Errorf("error text holds %v: %v", hits, err)
		}
		if _, serr := os.Stat(inst.DataDir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("failed restore left %s: %v", inst.DataDir, serr)
		}
		t.Logf("error: %v", err)
	})

	t.Run("restore before the earliest restore date is refused", func(t *testing.T) {
		inst, _, err := e.restoreInto(ctx, t, src, RepoPrimary, full1.Start.Add(-time.Hour), src.pp[RepoPrimary], nil)
		if !errors.Is(err, ErrNoBackup) {
			t.Fatalf("error = %v, want ErrNoBackup", err)
		}
		if _, serr := os.Stat(inst.DataDir); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("refused restore left %s", inst.DataDir)
		}
	})

	t.Run("restore to a time the archive does not reach fails with PostgreSQL's reason", func(t *testing.T) {
		_, _, err := e.restoreInto(ctx, t, src, RepoPrimary, time.Now().Add(time.Hour), src.pp[RepoPrimary], nil)
		if err == nil || !strings.Contains(err.Error(), "recovery target") {
			t.Fatalf("error = %v, want recovery's own reason", err)
		}
	})

	t.Run("socket refuses every peer but the server's own PostgreSQL, and gives out no secret", func(t *testing.T) {
		other := e.newSource(t, false) // another server, another account
		push := func(uid, gid uint32, stanza string) []string {
			return []string{opArchivePush, "--socket=" + e.helper.Socket, "--stanza=" + stanza, "pg_wal/000000010000000000000001"}
		}
		cases := []struct {
			name     string
			uid, gid uint32
			args     []string
			want     string
		}{
			{"an account of no server", 65534, 65534, push(0, 0, src.name), "is not the PostgreSQL account of a server"},
			{"another server's account", other.inst.User.UID, other.inst.User.GID, push(0, 0, src.name), "which is not its server's"},
			{"the server's own account, not run by its postmaster", src.inst.User.UID, src.inst.User.GID, push(0, 0, src.name), "does not descend from the postmaster"},
			{"the server's own account, archive-get on the daemon's socket", src.inst.User.UID, src.inst.User.GID,
				[]string{opArchiveGet, "--socket=" + e.helper.Socket, "--stanza=" + src.name, "000000010000000000000001", "/dev/null"}, "does not descend from the postmaster"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cmd := exec.CommandContext(ctx, e.helper.Binary, c.args...)
				cmd.Dir = "/"
				cmd.Env = baseEnv()
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.gid, Groups: []uint32{}}}
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() == 0 {
					t.Errorf("exit: %v; want a failure", err)
				}
				if !strings.Contains(string(out), c.want) {
					t.Errorf("output %q, want %q", out, c.want)
				}
				if hits := e.secretNeedles().Find(out); len(hits) > 0 {
					t.Errorf("a refused peer got %v", hits)
				}
			})
		}
		// Version 1 of the protocol asked for passphrases: it is refused outright.
		conn, err := net.Dial("unix", e.helper.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "pgflex-backup/1 archive-push %s\n", src.name)
		answer, _ := io.ReadAll(io.LimitReader(conn, 4096))
		if !strings.HasPrefix(string(answer), "refused ") {
			t.Errorf("a version-1 request was answered %q", answer)
		}
	})

	t.Run("no passphrase in any environment the server's account can read", func(t *testing.T) {
		// Poll every process's environment while the server archives and is backed up; the
		// pgbackrest processes must hold the passphrases (the poll's positive control) and must
		// all run as the backup account, never as the server's PostgreSQL account.
		w := testkit.Watch(e.secretNeedles())
		defer w.Stop()
		sqlExec(ctx, t, src.inst, "INSERT INTO rows (phase, marker) VALUES ('E', 'archived under watch')")
		if err := src.stanza.Check(ctx, src.pp); err != nil {
			t.Fatal(err)
		}
		if _, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoPrimary, Type: TypeIncr}); err != nil {
			t.Fatal(err)
		}
		w.Stop()
		holders := map[int]uint32{} // pid → uid of the environments holding a secret
		var pgbackrest int
		for _, h := range w.Hits() {
			if h.Where == "environ" {
				holders[h.PID] = h.UID
				if h.Exe == "pgbackrest" {
					pgbackrest++
				}
			}
		}
		if pgbackrest == 0 || w.Seen("pgbackrest") == 0 {
			t.Fatalf("no pgbackrest process seen holding a passphrase (%d seen, %d sweeps): the watch proved nothing",
				w.Seen("pgbackrest"), w.Sweeps())
		}
		for pid, uid := range holders {
			if uid != src.bk.UID {
				t.Errorf("process %d of uid %d held a passphrase; only the backup account %d may", pid, uid, src.bk.UID)
			}
		}
		t.Logf("%d processes held a passphrase (%d of them pgbackrest)", len(holders), pgbackrest)
	})

	t.Run("daemon down: archiving waits, nothing is lost", func(t *testing.T) {
		e.stopServer()
		var seg string
		var failedBefore int64
		sqlScan(ctx, t, src.inst, "SELECT failed_count FROM pg_stat_archiver", &failedBefore)
		sqlExec(ctx, t, src.inst, "INSERT INTO rows (phase, marker) VALUES ('C', 'while the daemon was down')")
		sqlScan(ctx, t, src.inst, "SELECT pg_walfile_name(pg_current_wal_lsn())", &seg)
		sqlExec(ctx, t, src.inst, "SELECT pg_switch_wal()")
		testkit.Eventually(t, 2*time.Minute, "the archiver tries, and fails, to archive "+seg, func() error {
			var failed int64
			sqlScan(ctx, t, src.inst, "SELECT failed_count FROM pg_stat_archiver", &failed)
			if failed == failedBefore {
				return fmt.Errorf("failed_count still %d", failed)
			}
			return nil
		})
		if _, err := os.Stat(filepath.Join(src.inst.DataDir, "pg_wal", "archive_status", seg+".ready")); err != nil {
			t.Errorf("segment %s not kept for a retry: %v", seg, err)
		}
		e.startServer(top)
		if err := src.stanza.Check(ctx, src.pp); err != nil {
			t.Fatal(err)
		}
		for _, repo := range src.stanza.Repos {
			if !archived(t, repo.Path, src.name, seg) {
				t.Errorf("segment %s missing from repository %d after the daemon came back", seg, repo.Index)
			}
		}
	})

	t.Run("repository 2 paused: WAL goes to repository 1 only", func(t *testing.T) {
		if err := src.stanza.SetPaused(ctx, RepoGeo, true); err != nil {
			t.Fatal(err)
		}
		// The daemon can no longer unwrap the geo DEK.
		only1 := Passphrases{RepoPrimary: bytes.Clone(src.pp[RepoPrimary])}
		e.grant(src.stanza, src.inst, only1)
		var seg string
		sqlExec(ctx, t, src.inst, "INSERT INTO rows (phase, marker) VALUES ('D', 'while repository 2 was paused')")
		sqlScan(ctx, t, src.inst, "SELECT pg_walfile_name(pg_current_wal_lsn())", &seg)
		if err := src.stanza.Check(ctx, only1); err != nil {
			t.Fatal(err)
		}
		if !archived(t, src.stanza.Repos[0].Path, src.name, seg) {
			t.Errorf("segment %s missing from repository 1", seg)
		}
		if archived(t, src.stanza.Repos[1].Path, src.name, seg) {
			t.Errorf("segment %s reached paused repository 2", seg)
		}
		if _, err := src.stanza.Backup(ctx, only1, BackupOptions{Repo: RepoGeo}); err == nil || !strings.Contains(err.Error(), "paused") {
			t.Errorf("backup into a paused repository: %v", err)
		}
		// Resume.
		if err := src.stanza.SetPaused(ctx, RepoGeo, false); err != nil {
			t.Fatal(err)
		}
		e.grant(src.stanza, src.inst, src.pp)
		if err := src.stanza.Check(ctx, src.pp); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete a backup and expire", func(t *testing.T) {
		newer, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoPrimary})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.stanza.DeleteBackup(ctx, src.pp, RepoPrimary, full1.Label); err != nil {
			t.Fatal(err)
		}
		if err := src.stanza.Expire(ctx, src.pp); err != nil {
			t.Fatal(err)
		}
		in, err := src.stanza.Info(ctx, src.pp)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := in.Find(RepoPrimary, full1.Label); ok {
			t.Errorf("deleted backup %s still listed", full1.Label)
		}
		if _, ok := in.Find(RepoPrimary, newer.Label); !ok {
			t.Errorf("backup %s lost", newer.Label)
		}
		if _, ok := in.Find(RepoGeo, full2.Label); !ok {
			t.Errorf("repository 2's backup %s lost (retention is 7 days)", full2.Label)
		}
		if earliest, _ := in.EarliestRestoreDate(RepoPrimary); !earliest.Equal(newer.Stop.Add(time.Second)) {
			t.Errorf("earliest restore date %v after deletion, want %v", earliest, newer.Stop.Add(time.Second))
		}
		if err := src.stanza.DeleteBackup(ctx, src.pp, RepoPrimary, "not-a-label"); err == nil {
			t.Error("a malformed label was accepted")
		}
	})

	t.Run("no plaintext marker in either repository", func(t *testing.T) {
		needle := testkit.Needles{}.Add("marker", []byte(marker))
		// The positive control: the same scan finds the marker in the plaintext data directory.
		plain := testkit.ScanFiles(t, []string{src.inst.DataDir}, needle, testkit.ScanOptions{})
		if len(plain.Paths("marker")) == 0 {
			t.Fatalf("marker not found in the plaintext data directory (%d files read): the scan proves nothing", plain.Files)
		}
		for _, r := range src.stanza.Repos {
			res := testkit.ScanFiles(t, []string{r.Path}, needle, testkit.ScanOptions{})
			if res.Files == 0 {
				t.Errorf("repository %d: the scan read no file in %s", r.Index, r.Path)
			}
			if len(res.Hits) > 0 {
				t.Errorf("repository %d holds the marker in plaintext: %v", r.Index, res.Paths("marker"))
			}
			t.Logf("repository %d: %d files, %d bytes read", r.Index, res.Files, res.Bytes)
		}
	})

	t.Run("no passphrase or DEK in any file or log", func(t *testing.T) {
		// Every file of every server, repository and volume (mounted: their plaintext too), and
		// a control holding every secret in every form, which the scan must find.
		secrets := e.secretNeedles()
		plant := testkit.Plant(t, filepath.Join(t.TempDir(), "plant"), secrets)
		res := testkit.ScanFiles(t, []string{e.tmp, plant}, secrets, testkit.ScanOptions{})
		if missing := res.Missing(secrets, plant); len(missing) > 0 {
			t.Fatalf("the scan missed the planted %v: it proves nothing", missing)
		}
		if leaks := res.Outside(plant); len(leaks) > 0 {
			t.Errorf("secrets found in files: %v", leaks)
		}
		if read := res.Files - len(secrets); read < 1000 {
			t.Errorf("read only %d files under %s", read, e.tmp)
		}
		t.Logf("%d files, %d bytes read", res.Files-len(secrets), res.Bytes)
		logs := e.logs.Bytes()
		if !bytes.Contains(logs, []byte("backup files restored")) {
			t.Errorf("the captured logs (%d bytes) lack the restores' records: they are not the logs", len(logs))
		}
		if hits := secrets.Find(logs); len(hits) > 0 {
			t.Errorf("secrets reached the logs: %v", hits)
		}
	})
}

// waitServerClock waits until the server's clock is past when, which a test needs when its
// target is later than the backups' consistency points, recorded in whole seconds.
func waitServerClock(ctx context.Context, t *testing.T, inst *postgres.Instance, when time.Time) {
	t.Helper()
	conn, err := inst.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	testkit.Eventually(t, time.Until(when)+30*time.Second, "the server's clock passes "+when.Format(time.RFC3339Nano), func() error {
		var now time.Time
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
			return err
		}
		if !now.After(when) {
			return fmt.Errorf("server clock %s", now.Format(time.RFC3339Nano))
		}
		return nil
	})
}

// archived reports whether a WAL segment is in a repository's archive
// (pgBackRest names files {segment}-{sha1}{.ext} under
// archive/{stanza}/{pg-version}-{id}/{first 16 characters}/).
func archived(t *testing.T, repoPath, stanza, segment string) bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(repoPath, "archive", stanza, "*", segment[:16], segment+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m) > 0
}
