package postgres

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// testOSUser runs the package's test servers (the daemon gives each server an account of its
// own; these tests need only one).
const testOSUser = "pgflex-pgtest"

// testEnv is a PostgreSQL instance inside a real encrypted volume.
type testEnv struct {
	vol      *volume.Volume
	user     osuser.User
	settings Settings
	inst     *Instance
	caPool   *x509.CertPool
	tmp      string
	key      []byte // the volume's key, zeroed when the test ends
}

func requireIntegration(t *testing.T) {
	t.Helper()
	testkit.Require(t, testkit.Root, testkit.FUSE, testkit.PostgreSQL, testkit.Accounts)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newTestEnv mounts a fresh volume, runs initdb in it, installs a TLS
// certificate and writes the configuration. Cleanups stop PostgreSQL before
// unmounting, whatever the test's outcome.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	user, err := osuser.Ensure(ctx, testOSUser, osuser.Options{Comment: "pgflex test"})
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, volume.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clear(key) })
	vol := &volume.Volume{Dir: filepath.Join(tmp, "vol")}
	t.Cleanup(func() { unmountOrEnd(t, vol) })
	if err := vol.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := vol.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(vol.MountDir(), "pgdata")
	s := Settings{Port: freePort(t), SocketDir: filepath.Join(tmp, "run")}
	inst := &Instance{DataDir: dataDir, User: user, Port: s.Port, SocketDir: s.SocketDir}
	// Registered before initdb or any server runs (cleanups run last-in first-out: PostgreSQL
	// is stopped before the volume is unmounted).
	t.Cleanup(func() { stopAll(t, inst) })
	if err := InitDB(ctx, InitOptions{DataDir: dataDir, User: user}); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, pool := testCertificate(t)
	if err := InstallServerCertificate(ctx, dataDir, user, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(ctx, dataDir, user, s); err != nil {
		t.Fatal(err)
	}
	return &testEnv{vol: vol, user: user, settings: s, inst: inst, caPool: pool, tmp: tmp, key: key}
}

// unmountOrEnd unmounts vol; should that fail, it detaches the mount and ends the gocryptfs
// process serving it (SIGTERM, then SIGKILL), which would otherwise live on holding the key.
func unmountOrEnd(t testing.TB, vol *volume.Volume) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := vol.Unmount(ctx); err != nil {
		t.Errorf("cleanup: unmount: %v; detaching and ending gocryptfs", err)
		if n, err := testkit.DetachFUSE(vol.MountDir(), vol.CipherDir(), 5*time.Second); err != nil {
			t.Errorf("cleanup: %v (%d gocryptfs processes)", err, n)
		}
	}
}

// stopAll stops the server, escalating to immediate, and waits for every
// process of it to be gone, so that the volume can be unmounted.
func stopAll(t *testing.T, inst *Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fresh := &Instance{DataDir: inst.DataDir, User: inst.User, Port: inst.Port, SocketDir: inst.SocketDir}
	if err := fresh.Stop(ctx, StopFast); err != nil {
		t.Logf("cleanup: fast stop: %v", err)
		_ = fresh.Stop(ctx, StopImmediate)
	}
	for _, pid := range inst.processesInDataDir() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := inst.waitOrphansGone(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// testCertificate makes a CA and a server certificate for 127.0.0.1.
func testCertificate(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgflex test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pool
}

func (e *testEnv) tcp(user, password string) ConnInfo {
	return ConnInfo{
		Host: "127.0.0.1", Port: e.settings.Port, User: user, Password: password, Database: "postgres",
		TLS: &tls.Config{RootCAs: e.caPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	}
}

func countRows(t *testing.T, ci ConnInfo) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := ci.Connect(ctx)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM committed").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInstanceLifecycle(t *testing.T) {
	requireIntegration(t)
	env := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inst := env.inst

	if err := inst.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := inst.Status(ctx)
	if err != nil || !st.Running || !st.Ready || !st.Supervised {
		t.Fatalf("Status after Start = %+v, %v", st, err)
	}
	firstPID := st.PID

	const adminName = "pgadmin"
	adminPassword := []byte("Adm1n-" + strings.Repeat("x", 10) + "-Secr3t!")
	su, err := inst.Connect(ctx)
	if err != nil {
		t.Fatalf("superuser over the socket: %v", err)
	}
	if err := CreateAdmin(ctx, su, adminName, adminPassword); err != nil {
		t.Fatalf("CreateAdmin: %v", err)
	}
	var super, createdb, createrole bool
	if err := su.QueryRow(ctx, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1", adminName).
		Scan(&super, &createdb, &createrole); err != nil {
		t.Fatal(err)
	}
	if super || !createdb || !createrole {
		t.Errorf("admin role: super=%v createdb=%v createrole=%v", super, createdb, createrole)
	}
	su.Close(ctx)
	admin := env.tcp(adminName, string(adminPassword))
	// PostgreSQL 15 gives no one but the owner CREATE on public: the
	// administrator works in a database of its own, as a user would.
	app := admin
	app.Database = "appdb"

	t.Run("TLS and scram required", func(t *testing.T) {
		conn, err := admin.Connect(ctx)
		if err != nil {
			t.Fatalf("admin over TLS with scram: %v", err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Errorf("connection not using TLS: %v %v", ssl, err)
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE appdb"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if conn, err = app.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE committed (id int PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO committed SELECT g, md5(g::text) FROM generate_series(1, 1000) g"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)

		wrong := env.tcp(adminName, "not-the-password")
		if c, err := wrong.Connect(ctx); err == nil {
			c.Close(ctx)
			t.Error("wrong password accepted")
		}
		cfg, err := admin.Config()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig = nil // plaintext TCP: no hostnossl/host line may accept it
		if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			c.Close(ctx)
			t.Error("plaintext TCP connection accepted")
		}
		suTCP := env.tcp(DefaultSuperuser, "")
		if c, err := suTCP.Connect(ctx); err == nil {
			c.Close(ctx)
			t.Error("superuser accepted over TCP")
		} else if !strings.Contains(err.Error(), "pg_hba.conf rejects") {
			t.Errorf("superuser over TCP: %v, want a pg_hba reject", err)
		}
	})

	t.Run("kill -9 of the postmaster loses no committed data", func(t *testing.T) {
		if err := syscall.Kill(firstPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, inst)
		st, err := inst.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastExit == nil || st.LastExit.Signal != "killed" || st.LastExit.Requested != "" {
			t.Fatalf("LastExit = %+v, want killed, not requested", st.LastExit)
		}
		if st.LastExit.ClusterState != "in production" || !strings.Contains(st.LastExit.Reason(), "killed by signal") {
			t.Errorf("reason = %q", st.LastExit.Reason())
		}
		if err := inst.Start(ctx); err != nil {
			t.Fatalf("Start after kill -9: %v", err)
		}
		if n := countRows(t, app); n != 1000 {
			t.Errorf("after crash recovery %d rows, want 1000", n)
		}
	})

	t.Run("adopt after the daemon lost its handle", func(t *testing.T) {
		st, _ := inst.Status(ctx)
		fresh := &Instance{DataDir: inst.DataDir, User: inst.User, Port: inst.Port, SocketDir: inst.SocketDir}
		if err := fresh.Start(ctx); err != nil {
			t.Fatalf("Start (adopt): %v", err)
		}
		fst, err := fresh.Status(ctx)
		if err != nil || !fst.Running || fst.Supervised || fst.PID != st.PID {
			t.Fatalf("adopted Status = %+v (%v); want the running PID %d, not supervised", fst, err, st.PID)
		}
		if err := fresh.Stop(ctx, StopFast); err != nil {
			t.Fatalf("Stop fast (adopted): %v", err)
		}
		if c, err := admin.Connect(ctx); err == nil {
			c.Close(ctx)
			t.Fatal("connection accepted after fast stop")
		}
		fst, err = fresh.Status(ctx)
		if err != nil || fst.Running || fst.ClusterState != "shut down" {
			t.Fatalf("Status after fast stop = %+v, %v", fst, err)
		}
		if fst.LastExit == nil || fst.LastExit.Requested != StopFast {
			t.Errorf("LastExit = %+v, want requested fast", fst.LastExit)
		}
	})

	t.Run("immediate stop then start", func(t *testing.T) {
		if err := inst.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := inst.Stop(ctx, StopImmediate); err != nil {
			t.Fatal(err)
		}
		st, _ := inst.Status(ctx)
		if st.Running || st.ClusterState != "in production" || st.LastExit.Requested != StopImmediate {
			t.Errorf("after immediate stop: %+v, exit %+v", st, st.LastExit)
		}
		// A daemon that was down during the stop still learns it was abrupt.
		other := &Instance{DataDir: inst.DataDir, User: inst.User, Port: inst.Port, SocketDir: inst.SocketDir}
		ost, err := other.Status(ctx)
		if err != nil || ost.LastExit == nil || !strings.Contains(ost.LastExit.Reason(), "stopped abruptly") {
			t.Errorf("unobserved stop: %+v %v", ost.LastExit, err)
		}
		if err := inst.Restart(ctx, StopFast); err != nil { // stopped already: Restart just starts
			t.Fatal(err)
		}
		if n := countRows(t, app); n != 1000 {
			t.Errorf("after immediate stop %d rows, want 1000", n)
		}
		if err := inst.Stop(ctx, StopSmart); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("volume's FUSE server dies under a running server", func(t *testing.T) {
		// What a restarted daemon meets when the FUSE server died too:
		// stop what is left of PostgreSQL, remount, start; crash
		// recovery keeps every committed row.
		if err := inst.Start(ctx); err != nil {
			t.Fatal(err)
		}
		killFUSEServer(t, env.vol.CipherDir())
		if st, err := env.vol.Status(ctx); err != nil || st != volume.Stale {
			t.Fatalf("volume status = %v, %v; want Stale", st, err)
		}
		fresh := &Instance{DataDir: inst.DataDir, User: inst.User, Port: inst.Port, SocketDir: inst.SocketDir}
		if err := fresh.Stop(ctx, StopImmediate); err != nil {
			t.Fatalf("Stop on a stale volume: %v", err)
		}
		if pids := inst.processesInDataDir(); len(pids) > 0 {
			t.Fatalf("processes %v still run on the stale volume", pids)
		}
		if err := env.vol.Mount(ctx, env.key); err != nil {
			t.Fatalf("remount: %v", err)
		}
		if err := inst.Start(ctx); err != nil {
			t.Fatalf("Start after remount: %v", err)
		}
		if n := countRows(t, app); n != 1000 {
			t.Errorf("after losing the FUSE server %d rows, want 1000", n)
		}
		if err := inst.Stop(ctx, StopFast); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("admin password nowhere in the data directory or logs", func(t *testing.T) {
		// The volume's directory holds the ciphertext and, mounted, the plaintext data
		// directory. One scan reads it and a control holding the password in every form.
		password := testkit.Needles{}.AddSecret("admin password", adminPassword)
		plant := testkit.Plant(t, filepath.Join(t.TempDir(), "plant"), password)
		res := testkit.ScanFiles(t, []string{env.vol.Dir, plant}, password, testkit.ScanOptions{})
		if missing := res.Missing(password, plant); len(missing) > 0 {
			t.Fatalf("the scan missed the planted %v: it proves nothing", missing)
		}
		if leaks := res.Outside(plant); len(leaks) > 0 {
			t.Errorf("admin password found in %v", leaks)
		}
		if read := res.Files - len(password); read < 100 {
			t.Errorf("scanned only %d files in %s", read, env.vol.Dir)
		}
		// The scan covered the catalog holding the verifier.
		verifier := testkit.Needles{}.Add("verifier", []byte("SCRAM-SHA-256$4096:"))
		if cat := testkit.ScanFiles(t, []string{filepath.Join(inst.DataDir, "global")}, verifier, testkit.ScanOptions{}); len(cat.Paths("verifier")) == 0 {
			t.Errorf("no SCRAM verifier in global/ (%d files read): the scan is not reading the catalog", cat.Files)
		}
		// The logs hold the failed login of "TLS and scram required" (the control), but no
		// verifier and no statement.
		logNeedles := testkit.Needles{}.Add("verifier", []byte("SCRAM-SHA-256$")).Add("statement", []byte("PASSWORD")).
			Add("failed login", []byte(`password authentication failed for user "`+adminName+`"`))
		logs := testkit.ScanFiles(t, []string{filepath.Join(inst.DataDir, "log")}, logNeedles, testkit.ScanOptions{})
		if len(logs.Paths("failed login")) == 0 {
			t.Errorf("the log scan (%d files, %d bytes) did not find the failed login: it proves nothing", logs.Files, logs.Bytes)
		}
		if hits := append(logs.Paths("verifier"), logs.Paths("statement")...); len(hits) > 0 {
			t.Errorf("password verifier or statement logged in %v", hits)
		}
	})
}

// killFUSEServer kills -9 the gocryptfs process serving cipherDir and waits for the mount to
// turn stale (the kernel sees the server's end of /dev/fuse closed).
func killFUSEServer(t *testing.T, cipherDir string) {
	t.Helper()
	pids := testkit.FUSEServers(cipherDir)
	if len(pids) == 0 {
		t.Fatal("no gocryptfs process found for the volume")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 gocryptfs %d: %v", pid, err)
		}
	}
	if err := testkit.WaitGone(pids, 10*time.Second); err != nil {
		t.Fatalf("gocryptfs after kill -9: %v", err)
	}
	vol := &volume.Volume{Dir: filepath.Dir(cipherDir)}
	testkit.Eventually(t, 10*time.Second, "the volume turns stale once its FUSE server is killed", func() error {
		st, err := vol.Status(context.Background())
		if err == nil && st != volume.Stale {
			err = fmt.Errorf("status %v", st)
		}
		return err
	})
}

func waitStopped(t *testing.T, inst *Instance) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, "the postmaster's exit is seen", func() error {
		st, err := inst.Status(context.Background())
		if err == nil && (st.Running || st.LastExit == nil) {
			err = fmt.Errorf("status %+v", st)
		}
		return err
	})
}

func TestStartRefusesUnmountedDataDir(t *testing.T) {
	testkit.Require(t, testkit.Root) // runs as another user
	inst := &Instance{DataDir: filepath.Join(t.TempDir(), "absent"), User: osuser.User{Name: "x", UID: 65534, GID: 65534}, Port: 5999, SocketDir: t.TempDir()}
	err := inst.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "volume mounted") {
		t.Fatalf("Start on a missing data dir = %v", err)
	}
	if _, err := os.Stat(inst.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Error("Start created the data directory")
	}
}

// TestStartFailureCarriesTheLog: a server that cannot start (its port is taken) fails Start
// with an error that carries the end of its log, so that the evidence outlives the files.
func TestStartFailureCarriesTheLog(t *testing.T) {
	requireIntegration(t)
	t.Parallel()
	e := newTestEnv(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.settings.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = e.inst.Start(ctx)
	if err == nil {
		t.Fatal("Start succeeded on a port in use")
	}
	lines := LogOf(err)
	want := "FATAL: could not create any TCP/IP sockets"
	if got := FailureLine(lines); got != want {
		t.Fatalf("FailureLine of the start error's log = %q, want %q; lines:\n%s", got, want, strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "Address already in use") {
		t.Fatalf("the log lines do not say why:\n%s", strings.Join(lines, "\n"))
	}
}
