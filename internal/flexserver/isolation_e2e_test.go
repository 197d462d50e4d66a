package flexserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/testenv"
)

// The isolation suite (issue 11): two servers on one daemon, A (service-managed key) and B
// (customer-managed key), each holding a marker. As A's administrator, and then as A's OS
// account (an escape from SQL is assumed: a shell as that account, inside A's sandbox and
// outside it), every way to reach B, the host, or a backup secret is tried. Each is refused;
// afterwards both servers still serve their markers and their backups still restore. Then B's
// key is disabled, and every secret readable by A's and B's accounts is tried against B's
// repository: none opens it.

// isoServer is what the suite knows of a server.
type isoServer struct {
	name, uid   string
	srv         map[string]any
	port        int
	db, bk      osuser.User // its OS accounts
	mount, sock string      // volume mount and socket directory
	plain       string      // where the volume's plaintext is (plainDir)
	marker      string
}

// postmaster is the server's postmaster PID.
func (s *isoServer) postmaster(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.plain, "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// findServer identifies a server's directories and accounts by its port (the mounts' own
// postgresql.conf say which is which).
func findServer(t testing.TB, d *testenv.Daemon, runDir, name string, srv map[string]any, marker string) *isoServer {
	t.Helper()
	s := &isoServer{name: name, srv: srv, port: ownPort(t, d, srv), marker: marker}
	for _, c := range serverConfs(runDir) {
		b, err := os.ReadFile(c)
		if err == nil && bytes.Contains(b, []byte(fmt.Sprintf("\nport = %d\n", s.port))) {
			s.mount = mountOfConf(runDir, c)
			s.uid = filepath.Base(s.mount)
			s.plain = plainDir(s.mount)
		}
	}
	if s.uid == "" {
		t.Fatalf("no mount of server %s (port %d) under %s", name, s.port, runDir)
	}
	s.sock = filepath.Join(runDir, "sock", s.uid[:12])
	hex16 := strings.ReplaceAll(s.uid, "-", "")[:16]
	var err error
	if s.db, err = osuser.Lookup("pgflex-db-" + hex16); err != nil {
		t.Fatal(err)
	}
	if s.bk, err = osuser.Lookup("pgflex-bk-" + hex16); err != nil {
		t.Fatal(err)
	}
	return s
}

// shell runs a shell script as account u (its uid and group only, no_new_privs): inside the
// mount namespace of the process nsPID (a server's sandbox) when nsPID > 0. It returns what the
// script printed; the script's own failures are the point, so only a failure to run it fails.
func shell(t testing.TB, u osuser.User, nsPID int, env []string, script string) string {
	t.Helper()
	argv := []string{"setpriv", "--reuid=" + strconv.Itoa(int(u.UID)), "--regid=" + strconv.Itoa(int(u.GID)),
		"--clear-groups", "--no-new-privs", "--", "/bin/sh", "-c", script}
	if nsPID > 0 {
		argv = append([]string{"nsenter", "--target=" + strconv.Itoa(nsPID), "--mount", "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LC_ALL=C"}, env...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run as %s: %v\n%s", u.Name, err, out)
	}
	return string(out)
}

// copyTool installs the test binary (the attacker's tools) at path, owned by u.
func copyTool(t testing.TB, path string, u osuser.User) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
}

func randomToken(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestIsolationBetweenServers is the suite.
func TestIsolationBetweenServers(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, runDir := monitored(t)
	createGroup(t, d, "rg", "eastus")
	k := newKMS(t, d, "rg", "kvisob", false)
	kidB := k.createKey("b")
	idB := k.createIdentity("id-b")
	k.grant(idB.principal)

	srvA := createServer(t, d, "rg", "pg-a", nil)
	srvB := cmkServer(t, d, "rg", "pg-b", kidB, idB)
	markerA, markerB := "A-"+randomToken(t, 16), "B-"+randomToken(t, 16)
	writeMarker(t, d, srvA, markerA)
	writeMarker(t, d, srvB, markerB)
	a := findServer(t, d, runDir, "pg-a", srvA, markerA)
	b := findServer(t, d, runDir, "pg-b", srvB, markerB)
	if a.db.UID == b.db.UID || a.bk.UID == b.bk.UID || a.db.UID == a.bk.UID {
		t.Fatalf("servers share an account: A %+v %+v, B %+v %+v", a.db, a.bk, b.db, b.bk)
	}
	t.Logf("A: uid %s, accounts %d/%d; B: uid %s, accounts %d/%d", a.uid, a.db.UID, a.bk.UID, b.uid, b.db.UID, b.bk.UID)

	t.Run("no way out of SQL for A's administrator", func(t *testing.T) { sqlEscapes(t, d, a, b) })
	t.Run("a shell as A's account reaches nothing of B or of the host", func(t *testing.T) { osEscapes(t, d, a, b) })
	t.Run("the archive socket serves only the server's own postmaster and hands out no secret", func(t *testing.T) {
		archiveSocket(t, d, runDir, a, b)
	})
	t.Run("links planted in A's data directory are followed neither by the daemon nor by pgBackRest", func(t *testing.T) {
		plantedLinks(t, d, runDir, a)
	})
	t.Run("backup passphrases live only in the backup accounts' processes; every release is recorded", func(t *testing.T) {
		passphraseCustody(t, d, k, a, b)
	})
	t.Run("both servers still serve their markers, and their backups restore", func(t *testing.T) {
		for _, s := range []*isoServer{a, b} {
			readMarker(t, d, s.srv, s.marker)
			copy := restoreServer(t, d, "rg", s.name+"-copy", restoreBody("PointInTimeRestore", serverPath(d, "rg", s.name),
				time.Now().UTC().Format(time.RFC3339), nil))
			readMarker(t, d, copy, s.marker)
		}
	})
	t.Run("with B's key disabled, nothing readable by A's or B's accounts opens B's backups", func(t *testing.T) {
		revokedCustody(t, d, k, runDir, kidB, a, b)
	})
}

// sqlEscapes: each way out of SQL, as A's administrator over TLS, refused with its exact text.
func sqlEscapes(t *testing.T, d *testenv.Daemon, a, b *isoServer) {
	ctx := context.Background()
	c, err := connect(t, d, a.srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS loot (v text)"); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ sql, state, msg string }{
		{"GRANT pg_execute_server_program TO pgadmin", "42501", `permission denied to grant role "pg_execute_server_program"`},
		{"GRANT pg_read_server_files TO pgadmin", "42501", `permission denied to grant role "pg_read_server_files"`},
		{"GRANT pg_write_server_files TO pgadmin", "42501", `permission denied to grant role "pg_write_server_files"`},
		{"CREATE ROLE sneaky IN ROLE pg_execute_server_program", "42501", `permission denied to grant role "pg_execute_server_program"`},
		{"ALTER GROUP pg_read_server_files ADD USER pgadmin", "42501", `permission denied to alter role "pg_read_server_files"`},
		{"GRANT pgflex_backup TO pgadmin", "42501", `permission denied to grant role "pgflex_backup"`},
		{"ALTER ROLE pgflex_backup PASSWORD 'x'", "42501", `permission denied to alter role "pgflex_backup"`},
		{"ALTER ROLE pgflex_superuser NOSUPERUSER", "42501", `permission denied to alter role "pgflex_superuser"`},
		{"ALTER ROLE pgadmin SUPERUSER", "42501", "must be superuser to alter superuser roles or change superuser attribute"},
		{"COPY loot FROM PROGRAM 'id'", "42501", "must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"},
		{"COPY loot TO PROGRAM 'cat > /tmp/x'", "42501", "must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"},
		{"COPY loot FROM '" + filepath.Join(b.plain, "pgdata", "PG_VERSION") + "'", "42501", "must be superuser or have privileges of the pg_read_server_files role to COPY from a file"},
		{"COPY loot TO '/tmp/loot'", "42501", "must be superuser or have privileges of the pg_write_server_files role to COPY to a file"},
		{"SELECT pg_read_file('/etc/passwd')", "42501", "permission denied for function pg_read_file"},
		{"SELECT pg_ls_dir('/')", "42501", "permission denied for function pg_ls_dir"},
		{"SELECT lo_import('/etc/passwd')", "42501", "permission denied for function lo_import"},
		{"LOAD 'auth_delay'", "42501", `permission denied to load library "auth_delay"`},
		{"ALTER SYSTEM SET archive_command = 'id'", "42501", "permission denied to run ALTER SYSTEM"},
		{"CREATE EXTENSION adminpack", "42501", `extension "adminpack" is not allow-listed for "azure_pg_admin" users in Azure Database for PostgreSQL`},
		{"CREATE EXTENSION file_fdw", "42501", `extension "file_fdw" is not allow-listed for "azure_pg_admin" users in Azure Database for PostgreSQL`},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'auth_delay', '_PG_init'", "42501", "permission denied for language c"},
		{"SET session_preload_libraries = 'auth_delay'", "42501", `permission denied to set parameter "session_preload_libraries"`},
		{"ALTER ROLE pgadmin SET local_preload_libraries = 'auth_delay'", "42501", `permission denied to set parameter "local_preload_libraries"`},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			_, err := c.Exec(ctx, tc.sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tc.state || pe.Message != tc.msg {
				t.Errorf("got %v, want %s %q", err, tc.state, tc.msg)
			}
		})
	}
	// pg_read_all_data and pg_write_all_data are the administrator's to grant; with them no
	// service role's password can be read (there is none) and no catalog changed.
	t.Run("read and write all data, catalogs included", func(t *testing.T) {
		if _, err := c.Exec(ctx, "GRANT pg_read_all_data, pg_write_all_data TO pgadmin"); err != nil {
			t.Fatal(err)
		}
		defer c.Exec(ctx, "REVOKE pg_read_all_data, pg_write_all_data FROM pgadmin")
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_authid WHERE rolname IN ('pgflex_superuser', 'pgflex_backup') AND rolpassword IS NOT NULL").Scan(&n); err != nil || n != 0 {
			t.Errorf("service roles with a password: %d, %v", n, err)
		}
		_, err := c.Exec(ctx, "UPDATE pg_authid SET rolsuper = true WHERE rolname = 'pgadmin'")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("UPDATE pg_authid: %v", err)
		}
	})
	// The service's roles cannot log in over TCP at all.
	for _, role := range []string{"pgflex_superuser", "pgflex_backup"} {
		t.Run("log in over TCP as "+role, func(t *testing.T) {
			p := props(a.srv)
			cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=require connect_timeout=5", p["fullyQualifiedDomainName"], d.PostgresPort(), role))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := pgconn.ConnectConfig(ctx, cfg)
			if err == nil {
				conn.Close(ctx)
				t.Fatalf("%s logged in over TCP", role)
			}
			if !strings.Contains(err.Error(), `pg_hba.conf rejects connection`) {
				t.Errorf("login as %s: %v, want a pg_hba reject", role, err)
			}
		})
	}
}

// osEscapes: a shell as A's PostgreSQL account (as an escape would give), inside A's sandbox
// and outside it, tries B's socket, files and processes, the host's secrets, and A's own
// service logins.
func osEscapes(t *testing.T, d *testenv.Daemon, a, b *isoServer) {
	pmA, pmB := a.postmaster(t), b.postmaster(t)
	psql := func(host string, port int, user string) string {
		return fmt.Sprintf("psql 'host=%s port=%d user=%s dbname=postgres connect_timeout=5' -Atc 'select 1' 2>&1; echo", host, port, user)
	}
	type attempt struct {
		name, script string
		// want: each must appear in the output; never: none may.
		want, never []string
	}
	common := []attempt{
		{"B's socket as the superuser", psql(b.sock, b.port, "pgflex_superuser"), []string{"Permission denied"}, []string{"\n1\n"}},
		{"B's socket as the backup role", psql(b.sock, b.port, "pgflex_backup"), []string{"Permission denied"}, []string{"\n1\n"}},
		{"A's own socket as the superuser", psql(a.sock, a.port, "pgflex_superuser"), []string{`Peer authentication failed for user "pgflex_superuser"`}, []string{"\n1\n"}},
		{"A's own socket as the backup role", psql(a.sock, a.port, "pgflex_backup"), []string{`Peer authentication failed for user "pgflex_backup"`}, []string{"\n1\n"}},
		{"B's data directory", "cat " + filepath.Join(b.plain, "pgdata", "PG_VERSION") + "; ls " + filepath.Join(b.plain, "pgdata") + "; echo end",
			[]string{"Permission denied", "end"}, []string{"\n15\n"}},
		{"B's private /tmp", "ls " + filepath.Join(b.plain, "tmp") + "; echo end", []string{"Permission denied"}, nil},
		{"B's repository", "ls " + repoDir(d, "eastus", b.uid) + "; echo end", []string{"end"}, []string{"archive\n", "backup\n"}},
		{"B's backup configuration", "cat " + filepath.Join(d.DataDir, "servers", b.uid, "backup", "pgbackrest.conf") + "; echo end", []string{"end"}, []string{"repo1-path"}},
		{"the daemon's root key and state", "cat " + filepath.Join(d.DataDir, "root.key") + " " + filepath.Join(d.DataDir, "state.db") + " >/dev/null; echo end", []string{"end"}, nil},
		{"signals to B's postmaster", fmt.Sprintf("kill -TERM %d; kill -0 %d; echo end", pmB, pmB), []string{"end"}, nil},
		{"B's postmaster's environment and memory", fmt.Sprintf("cat /proc/%d/environ; head -c1 /proc/%d/mem; ls /proc/%d/cwd/; echo end", pmB, pmB, pmB),
			[]string{"end"}, []string{"PG_VERSION", "PATH="}},
	}
	for _, where := range []struct {
		name string
		ns   int
	}{{"outside the sandbox", 0}, {"inside A's sandbox", pmA}} {
		t.Run(where.name, func(t *testing.T) {
			for _, at := range common {
				t.Run(at.name, func(t *testing.T) {
					out := shell(t, a.db, where.ns, nil, at.script)
					for _, w := range at.want {
						if !strings.Contains(out, w) {
							t.Errorf("output lacks %q:\n%s", w, out)
						}
					}
					for _, n := range at.never {
						if strings.Contains(out, n) {
							t.Errorf("output holds %q: the attempt succeeded:\n%s", n, out)
						}
					}
				})
			}
		})
	}
	// B is untouched by the signals above.
	if !procfs.Alive(pmB) {
		t.Fatal("B's postmaster died")
	}
	t.Run("inside the sandbox: no other account's process is even listed", func(t *testing.T) {
		out := shell(t, a.db, pmA, nil, fmt.Sprintf(`ls /proc | grep -c '^[0-9]'; test -e /proc/%d && echo "B visible"; test -e /proc/1 && echo "init visible"; grep NoNewPrivs /proc/self/status; ls -A %s | wc -l | sed 's/^/datadir entries: /'`, pmB, d.DataDir))
		for _, bad := range []string{"B visible", "init visible"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s:\n%s", bad, out)
			}
		}
		if !strings.Contains(out, "NoNewPrivs:\t1") || !strings.Contains(out, "datadir entries: 0") {
			t.Errorf("sandbox incomplete:\n%s", out)
		}
		// Positive control: outside the sandbox the same account lists B's postmaster.
		if out := shell(t, a.db, 0, nil, fmt.Sprintf("test -e /proc/%d && echo visible", pmB)); !strings.Contains(out, "visible") {
			t.Errorf("outside the sandbox B's postmaster is not listed either: the check proves nothing:\n%s", out)
		}
	})
	t.Run("A's private /tmp is inside its encrypted volume", func(t *testing.T) {
		marker := "tmp-" + randomToken(t, 16)
		shell(t, a.db, pmA, nil, "echo "+marker+" > /tmp/through-the-sandbox")
		got, err := os.ReadFile(filepath.Join(a.plain, "tmp", "through-the-sandbox"))
		if err != nil || !strings.Contains(string(got), marker) {
			t.Fatalf("the sandbox's /tmp is not A's volume: %q %v", got, err)
		}
		if hits := grepTree(t, "/tmp", nil, []byte(marker)); len(hits) > 0 {
			t.Errorf("the host's /tmp holds what A wrote to its /tmp: %v", hits)
		}
	})
}

// archiveSocket: the daemon's archive socket, asked as A's account by a program that is not
// A's PostgreSQL (a copy of a binary named postgres, started in A's data directory), in
// version 1 (which handed out passphrases) and version 2.
func archiveSocket(t *testing.T, d *testenv.Daemon, runDir string, a, b *isoServer) {
	fake := filepath.Join(a.plain, "tmp", "postgres")
	copyTool(t, fake, a.db)
	sock := filepath.Join(runDir, "backup.sock")
	seg := "000000010000000000000001"
	requests := []string{
		"pgflex-backup/1 archive-push " + b.uid,
		"pgflex-backup/1 archive-push " + a.uid,
		"pgflex-backup/2 archive-push " + b.uid + " " + seg,
		"pgflex-backup/2 archive-push " + a.uid + " " + seg,
		"pgflex-backup/2 archive-get " + a.uid + " " + seg,
	}
	script := "cd " + filepath.Join(a.plain, "pgdata") + " 2>/dev/null || cd /; exec /tmp/postgres " + sock + " '" + strings.Join(requests, "' '") + "'"
	out := shell(t, a.db, a.postmaster(t), []string{toolEnv + "=archive-client"}, script)
	lines := readLines(out)
	var answers []string
	for _, l := range lines {
		if strings.HasPrefix(l, "answer: ") {
			answers = append(answers, l)
		}
	}
	if len(answers) != len(requests) {
		t.Fatalf("answers %d of %d:\n%s", len(answers), len(requests), out)
	}
	wants := []string{"not a pgflex-backup/2 request", "not a pgflex-backup/2 request", "which is not its server's",
		"does not descend from the postmaster", "does not descend from the postmaster"}
	for i, w := range wants {
		if !strings.Contains(answers[i], `"refused `) || !strings.Contains(answers[i], w) {
			t.Errorf("%s: %s, want a refusal naming %q", requests[i], answers[i], w)
		}
	}
	if logs := d.Logs(); strings.Count(logs, `msg="archive request refused"`) < len(requests) {
		t.Errorf("refusals not all logged:\n%s", tail(logs, 30))
	}
}

// restartServer restarts a server through the API and returns the operation's status.
func restartServer(t testing.TB, d *testenv.Daemon, name string) string {
	t.Helper()
	r := d.ARM(t, http.MethodPost, serverPath(d, "rg", name)+"/restart?api-version=2025-08-01", nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("restart %s: %d %s", name, r.Status, r.Raw)
	}
	op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 3*time.Minute)
	status, _ := op["status"].(string)
	return status
}

// rootOwned reports a path's owner and mode, not following a link.
func ownerMode(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d %v", fi.Sys().(*syscall.Stat_t).Uid, fi.Mode())
}

// plantedLinks: A's account (an escape assumed) replaces files of its data directory that the
// daemon, as root, or pgBackRest, as A's backup account, would touch by links to things it
// wants: root's runtime directory and files, pgBackRest's own environment (which holds the
// passphrases). Each attempt fails, nothing it points at changes, and A serves again once the
// links are gone.
func plantedLinks(t *testing.T, d *testenv.Daemon, runDir string, a *isoServer) {
	pgdata := filepath.Join(a.plain, "pgdata")
	victimDir := filepath.Join(filepath.Dir(runDir), "victim-dir")
	victimFile := filepath.Join(filepath.Dir(runDir), "victim-file")
	if err := os.MkdirAll(victimDir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victimFile, []byte("root's own\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, p := range []string{victimDir, victimFile, filepath.Join(runDir, "bin"), filepath.Join(runDir, "bin", "pgflex")} {
		before[p] = ownerMode(t, p)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		for p, want := range before {
			if got := ownerMode(t, p); got != want {
				t.Errorf("%s changed: %s, was %s", p, got, want)
			}
		}
		if b, _ := os.ReadFile(victimFile); string(b) != "root's own\n" {
			t.Errorf("the victim file was written: %q", b)
		}
	}

	t.Run("log directory linked to root's directories", func(t *testing.T) {
		shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+" && mv log log.real && ln -s "+filepath.Join(runDir, "bin")+" log")
		if st := restartServer(t, d, a.name); st == "Succeeded" {
			t.Error("A restarted with its log directory a link")
		}
		unchanged(t)
		shell(t, a.db, 0, nil, "cd "+pgdata+" && rm log && ln -s "+victimDir+" log")
		restartServer(t, d, a.name)
		unchanged(t)
		shell(t, a.db, 0, nil, "cd "+pgdata+" && rm log && mv log.real log")
	})
	t.Run("startup log linked to root's file", func(t *testing.T) {
		shell(t, a.db, 0, nil, "cd "+pgdata+"/log && mv postmaster.log postmaster.log.real; ln -s "+victimFile+" postmaster.log")
		if st := restartServer(t, d, a.name); st == "Succeeded" {
			t.Error("A restarted with its startup log a link")
		}
		unchanged(t)
		shell(t, a.db, 0, nil, "cd "+pgdata+"/log && rm postmaster.log && mv postmaster.log.real postmaster.log")
	})
	if st := restartServer(t, d, a.name); st != "Succeeded" {
		t.Fatalf("A does not restart once the links are gone: %s\n%s", st, tail(d.Logs(), 40))
	}
	waitConnect(t, d, a.srv)
	readMarker(t, d, a.srv, a.marker)

	t.Run("WAL and data files linked to pgBackRest's own environment", func(t *testing.T) {
		// Positive control: a regular history file is archived, so a linked one failing is the
		// link's doing. The regular one goes first and alone: the archiver takes the ready files
		// it found in one scan, and one scan that saw only the linked file would retry it
		// forever, never reaching the regular one.
		shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+"/pg_wal && printf '1\t0/3000000\tcontrol\n' > 00000008.history && "+
			"touch archive_status/00000008.history.ready")
		// Whatever happens below, the link goes, or it would stop archiving for the tests after.
		t.Cleanup(func() {
			shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+" && rm -f leak pg_wal/00000009.history pg_wal/archive_status/00000009.history.ready")
		})
		archived := func(name string) bool {
			m, _ := filepath.Glob(filepath.Join(repoDir(d, "eastus", a.uid), "archive", a.uid, "*", name+"*"))
			return len(m) > 0
		}
		deadline := time.Now().Add(time.Minute)
		for !archived("00000008.history") {
			if time.Now().After(deadline) {
				t.Fatalf("the regular history file was not archived: the attempt proves nothing\n%s", tail(d.Logs(), 30))
			}
			time.Sleep(200 * time.Millisecond)
		}
		shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+"/pg_wal && ln -s /proc/self/environ 00000009.history && touch archive_status/00000009.history.ready")
		// The archiver tries the linked one next and fails each time.
		deadline = time.Now().Add(time.Minute)
		for {
			failed := sqlValues(t, d, a.srv, "SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver")
			if len(failed) == 1 && failed[0] == "00000009.history" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the archiver did not try the linked history file: last failed %v", failed)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if archived("00000009.history") {
			t.Error("the linked history file was archived")
		}
		// A backup with a link in the data directory fails, rather than store what it points at.
		shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+" && ln -s /proc/self/environ leak")
		r := d.ARM(t, http.MethodPut, backupPath(d, "rg", a.name, "with-a-link")+"?api-version=2025-08-01", map[string]any{})
		if r.Status != http.StatusAccepted {
			t.Fatalf("backup: %d %s", r.Status, r.Raw)
		}
		if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 3*time.Minute); op["status"] == "Succeeded" {
			t.Error("a backup with a link to pgBackRest's environment in the data directory succeeded")
		}
		shell(t, a.db, a.postmaster(t), nil, "cd "+pgdata+" && rm leak pg_wal/00000009.history pg_wal/archive_status/00000009.history.ready")
		takeBackup(t, d, "rg", a.name, "links-gone")
	})
}

// passphraseCustody: while both servers archive and are backed up, every process whose
// environment holds a repository passphrase runs as a backup account, none as a PostgreSQL
// account; a watcher run as A's account inside A's sandbox reads no passphrase (it does read a
// planted one); each release is logged at info and in B's key's audit trail, with the server
// and the reason.
func passphraseCustody(t *testing.T, d *testenv.Daemon, k *kms, a, b *isoServer) {
	watcher := filepath.Join(a.plain, "tmp", "postgres")
	if _, err := os.Stat(watcher); err != nil {
		copyTool(t, watcher, a.db)
	}
	began := time.Now()
	// Positive control: a process of A's account, in A's sandbox, with a passphrase-like variable.
	planted := "PGBACKREST_REPO1_CIPHER_PASS=planted-" + randomToken(t, 16)
	control := exec.Command("nsenter", "--target="+strconv.Itoa(a.postmaster(t)), "--mount", "--",
		"setpriv", "--reuid="+strconv.Itoa(int(a.db.UID)), "--regid="+strconv.Itoa(int(a.db.GID)), "--clear-groups", "--", "sleep", "60")
	control.Env = []string{"PATH=/usr/bin:/bin", planted}
	if err := control.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { control.Process.Kill(); control.Wait() }()

	// The attacker's watcher, as A's account in A's sandbox, for the whole activity (it stops
	// when its standard input closes).
	watch := exec.Command("nsenter", "--target="+strconv.Itoa(a.postmaster(t)), "--mount", "--", "setpriv",
		"--reuid="+strconv.Itoa(int(a.db.UID)), "--regid="+strconv.Itoa(int(a.db.GID)), "--clear-groups", "--no-new-privs", "--", "/tmp/postgres", "120")
	watch.Env = []string{"PATH=/usr/bin:/bin", toolEnv + "=watch-environ"}
	var watchBuf bytes.Buffer
	watch.Stdout, watch.Stderr = &watchBuf, &watchBuf
	watchIn, err := watch.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	// The root view, for the same time: who holds a passphrase.
	holders := map[int]uint32{}
	// Account names are looked up when a holder is seen: another test's daemon may remove its
	// accounts before the check below runs.
	names := map[uint32]string{}
	stopRoot := make(chan struct{})
	rootDone := make(chan struct{})
	go func() {
		defer close(rootDone)
		for {
			select {
			case <-stopRoot:
				return
			default:
			}
			pids, _ := procfs.List()
			for _, pid := range pids {
				env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
				if err != nil || !bytes.Contains(env, []byte("PGBACKREST_REPO")) || bytes.Contains(env, []byte("planted-")) {
					continue
				}
				if st, err := procfs.Read(pid); err == nil {
					holders[pid] = st.RUID
					if _, ok := names[st.RUID]; !ok {
						if u, err := user.LookupId(strconv.Itoa(int(st.RUID))); err == nil {
							names[st.RUID] = u.Username
						} else {
							names[st.RUID] = ""
						}
					}
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for _, s := range []*isoServer{a, b} {
		sqlExec(t, d, s.srv, "INSERT INTO marker SELECT 'filler-' || g FROM generate_series(1, 20000) g")
		takeBackup(t, d, "rg", s.name, "custody-"+randomToken(t, 4))
	}
	close(stopRoot)
	<-rootDone
	watchIn.Close()
	if err := watch.Wait(); err != nil {
		t.Fatalf("watcher: %v\n%s", err, watchBuf.String())
	}
	watched := watchBuf.String()

	// Other tests' daemons run side by side: their processes count too, and must hold up the
	// same rule (a backup account, never a PostgreSQL one). Root may: the daemon's sandbox
	// launcher holds pgBackRest's environment for the moment before it drops to the backup
	// account.
	ours := 0
	for pid, uid := range holders {
		if uid == a.bk.UID || uid == b.bk.UID {
			ours++
			continue
		}
		if uid == 0 {
			continue
		}
		if name := names[uid]; !strings.HasPrefix(name, "pgflex-bk-") && !strings.HasPrefix(name, "pgflex-tbk-") {
			t.Errorf("process %d (uid %d, account %q) held a passphrase; only backup accounts may", pid, uid, name)
		}
	}
	if ours == 0 {
		t.Fatal("no process of A's or B's backup account was seen holding a passphrase: the watch proved nothing")
	}
	t.Logf("%d processes held a passphrase (%d of A's and B's), all as backup accounts", len(holders), ours)
	if !strings.Contains(watched, "found: "+planted) {
		t.Fatalf("A's watcher did not find the planted variable: it proves nothing:\n%s", watched)
	}
	for _, l := range readLines(watched) {
		if strings.HasPrefix(l, "found: ") && l != "found: "+planted {
			t.Errorf("A's account read a passphrase: %s", l)
		}
	}

	logs := d.Logs()
	for _, s := range []*isoServer{a, b} {
		for _, reason := range []string{`reason="archive-push 0000`, `reason="on-demand backup custody-`} {
			if !strings.Contains(logs, `msg="backup keys released" server=`+s.name+` uid=`+s.uid) || !strings.Contains(logs, reason) {
				t.Errorf("no info record of %s's key release for %s", s.name, reason)
			}
		}
	}
	// B's key is the customer's: its own audit trail names the server and the reason.
	var pushes, backups int
	trail := auditTrail(t, d, k.vaultPath(), "b")
	for _, e := range trail {
		if e.Operation != "KeyUnwrap" || e.Time.Before(began) || !strings.Contains(e.ClientInfo, "server pg-b, uid "+b.uid+": backup keys for ") {
			continue
		}
		switch {
		case strings.Contains(e.ClientInfo, "archive-push 0000"):
			pushes++
		case strings.Contains(e.ClientInfo, "on-demand backup custody-"):
			backups++
		}
	}
	if pushes == 0 || backups == 0 {
		seen := map[string]int{}
		for _, e := range trail {
			seen[e.Operation+" "+e.ClientInfo]++
		}
		t.Errorf("B's key audit: %d archive-push and %d backup unwraps naming the server; want both. The trail: %v", pushes, backups, seen)
	}
}

// revokedCustody disables B's key, then checks that no process but the daemon holds anything of
// B, and that no secret readable by A's or B's accounts opens B's repository; B comes back when
// the key is enabled again.
func revokedCustody(t *testing.T, d *testenv.Daemon, k *kms, runDir, kidB string, a, b *isoServer) {
	version := kidB[strings.LastIndex(kidB, "/")+1:]
	k.setAttributes("b", version, map[string]any{"enabled": false})
	waitState(t, d, "rg", "pg-b", "Inaccessible", 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for mounted(t, b.mount) {
		if time.Now().After(deadline) {
			t.Fatal("B's volume is still mounted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, u := range []osuser.User{b.db, b.bk} {
		if pids, _ := procfs.OfUser(u.UID); len(pids) > 0 {
			t.Errorf("processes %v of B's account %s outlive the revocation", pids, u.Name)
		}
	}
	cipherB := filepath.Join(d.DataDir, "servers", b.uid)
	pids, _ := procfs.List()
	for _, pid := range pids {
		cl, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(cl, []byte(cipherB)) {
			t.Errorf("process %d still works on B's volume: %q", pid, cl)
		}
	}

	// What every account of A and B can read, everywhere the service writes and in /proc.
	tools := filepath.Join(filepath.Dir(runDir), "tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(tools, "collect")
	copyTool(t, tool, osuser.User{UID: 0, GID: 0})
	roots := []string{d.DataDir, runDir, "/tmp", "/var/tmp", "/dev/shm", "/run/pgflex-test"}
	// Positive controls: a secret planted where each account can read it, and nowhere else.
	plantedA := "plantedA" + randomToken(t, 20)
	if err := os.WriteFile(filepath.Join(a.plain, "tmp", "planted"), []byte(plantedA), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(a.plain, "tmp", "planted"), int(a.db.UID), int(a.db.GID))
	plantedB := "plantedB" + randomToken(t, 20)
	bkPlant := filepath.Join(repoDir(d, "eastus", b.uid), "planted")
	if err := os.WriteFile(bkPlant, []byte(plantedB), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(bkPlant, int(b.bk.UID), int(b.bk.GID))
	defer os.Remove(bkPlant)

	var tokens []string
	// Each account also scans its own places, which it can reach but not list its way to.
	own := func(s *isoServer) []string {
		return []string{filepath.Join(s.plain, "pgdata"), filepath.Join(s.plain, "tmp"), repoDir(d, "eastus", s.uid), filepath.Join(d.DataDir, "servers", s.uid)}
	}
	ownA, ownB := own(a), own(b)
	runs := []struct {
		name    string
		u       osuser.User
		ns      int
		own     []string
		planted string
	}{
		{"A's PostgreSQL account", a.db, 0, ownA, plantedA},
		{"A's PostgreSQL account, in its sandbox", a.db, a.postmaster(t), ownA, plantedA},
		{"A's backup account", a.bk, 0, ownA, ""},
		{"B's PostgreSQL account", b.db, 0, ownB, ""},
		{"B's backup account", b.bk, 0, ownB, plantedB},
	}
	for _, run := range runs {
		var out string
		if run.ns > 0 {
			sandboxTool := filepath.Join(a.plain, "tmp", "postgres")
			if _, err := os.Stat(sandboxTool); err != nil {
				copyTool(t, sandboxTool, a.db)
			}
			out = shell(t, run.u, run.ns, []string{toolEnv + "=collect"}, "/tmp/postgres "+strings.Join(append(roots, run.own...), " "))
		} else {
			out = shell(t, run.u, 0, []string{toolEnv + "=collect"}, tool+" "+strings.Join(append(roots, run.own...), " "))
		}
		var c collected
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("%s: collector output: %v\n%s", run.name, err, out)
		}
		if c.Files == 0 || c.Environs == 0 {
			t.Errorf("%s read %d files and %d environments: the scan proves nothing", run.name, c.Files, c.Environs)
		}
		if run.planted != "" && !containsToken(c.Tokens, run.planted) {
			t.Errorf("%s did not find the secret planted for it: the scan proves nothing", run.name)
		}
		if containsToken(c.Tokens, plantedB) && run.u.UID != b.bk.UID {
			t.Errorf("%s read what only B's backup account may", run.name)
		}
		t.Logf("%s: %d files (%d bytes), %d environments, %d candidate secrets", run.name, c.Files, c.Bytes, c.Environs, len(c.Tokens))
		tokens = append(tokens, c.Tokens...)
	}

	info, err := os.ReadFile(filepath.Join(repoDir(d, "eastus", b.uid), "backup", b.uid, "backup.info"))
	if err != nil {
		t.Fatal(err)
	}
	// Positive control of the trial: a repository pgBackRest encrypts with a known passphrase
	// (A's pg_control gives it a system id) opens with that passphrase and no other.
	known := "known-" + randomToken(t, 16)
	ctlInfo := controlRepository(t, a, known)
	if !opensInfoFile(ctlInfo, []byte(known)) || opensInfoFile(ctlInfo, []byte(known+"x")) {
		t.Fatal("the trial does not tell pgBackRest's passphrase from another: it proves nothing")
	}
	candidates := candidatePassphrases(tokens, b.uid)
	for _, p := range candidates {
		if opensInfoFile(info, p) {
			t.Errorf("a secret readable by a server's account opens B's repository: %q", p)
		}
	}
	t.Logf("%d candidate passphrases tried against B's repository: none opens it", len(candidates))

	k.setAttributes("b", version, map[string]any{"enabled": true})
	backReady(t, d, "rg", "pg-b", b.marker)
}

func containsToken(tokens []string, s string) bool {
	for _, tok := range tokens {
		if strings.Contains(tok, s) {
			return true
		}
	}
	return false
}

// controlRepository makes a pgBackRest repository encrypted under pass (stanza-create, offline,
// from a copy of A's pg_control) and returns its backup.info.
func controlRepository(t testing.TB, a *isoServer, pass string) []byte {
	t.Helper()
	dir := t.TempDir()
	pg := filepath.Join(dir, "pg")
	if err := os.MkdirAll(filepath.Join(pg, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"global/pg_control", "PG_VERSION"} {
		b, err := os.ReadFile(filepath.Join(a.plain, "pgdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pg, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(dir, "repo")
	cmd := exec.Command("pgbackrest", "--stanza=control", "--repo1-path="+repo, "--repo1-cipher-type=aes-256-cbc",
		"--pg1-path="+pg, "--log-path="+dir, "--lock-path="+dir, "--log-level-console=warn", "--no-online", "stanza-create")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGBACKREST_REPO1_CIPHER_PASS=" + pass}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("control repository: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(repo, "backup", "control", "backup.info"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
