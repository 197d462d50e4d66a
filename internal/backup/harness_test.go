package backup

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// The end-to-end harness: real gocryptfs volumes, real PostgreSQL 15 run
// as an account of each server's own, real pgBackRest run as that server's
// backup account, and this test binary as pgflex's archive helper (see
// TestMain). The test stands in for the daemon: it runs the ArchiveServer
// and knows each server's passphrases.

func requireIntegration(t testing.TB) {
	t.Helper()
	testkit.Require(t, testkit.DataPlane...)
}

// syncBuffer collects the log output of everything under test, to check
// that no passphrase reaches a log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// newTestLogger logs everything, debug included, into w.
func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testEnv struct {
	tmp     string
	helper  Helper
	logs    *syncBuffer
	logger  *slog.Logger
	certPEM []byte
	keyPEM  []byte

	mu      sync.Mutex
	grants  map[uint32]grant // the daemon's view: PostgreSQL account → its server and passphrases
	secrets [][]byte         // every passphrase and DEK made, for leak scans

	stopServer func() // stops the ArchiveServer
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	requireIntegration(t)
	tmp := t.TempDir()
	// The PostgreSQL user must traverse to its files.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	e := &testEnv{tmp: tmp, logs: &syncBuffer{}, grants: map[uint32]grant{}}
	e.logger = newTestLogger(e.logs)
	e.helper = Helper{Binary: filepath.Join(tmp, "bin", "pgflex"), Socket: filepath.Join(tmp, "run", "backup.sock")}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(e.helper.Binary), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, e.helper.Binary, 0o755); err != nil {
		t.Fatal(err)
	}
	e.certPEM, e.keyPEM = selfSignedCert(t)
	if path := os.Getenv("PGFLEX_BACKUP_TEST_LOG"); path != "" {
		t.Cleanup(func() { _ = os.WriteFile(path, e.logs.Bytes(), 0o600) })
	}
	e.startServer(t)
	return e
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startServer runs the daemon's ArchiveServer in-process. Its stop is registered before it
// starts; Serve's error is reported by the stop, in the goroutine that calls it.
func (e *testEnv) startServer(t testing.TB) {
	t.Helper()
	srv := &ArchiveServer{Path: e.helper.Socket, Logger: e.logger, Target: e.target}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	started := false
	var once sync.Once
	e.stopServer = func() {
		once.Do(func() {
			cancel()
			if !started {
				return
			}
			if err := <-served; err != nil {
				t.Errorf("archive server: %v", err)
			}
		})
	}
	t.Cleanup(e.stopServer)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	started = true
	go func() { served <- srv.Serve(ctx) }()
}

// grant is what the test's stand-in for the daemon knows of a server.
type grant struct {
	stanza *Stanza
	inst   *postgres.Instance
	pp     Passphrases
}

// target stands in for the daemon's callback, which finds the server by its
// PostgreSQL account and unwraps its backup DEKs to archive.
func (e *testEnv) target(_ context.Context, uid uint32) (ArchiveTarget, error) {
	e.mu.Lock()
	g, ok := e.grants[uid]
	e.mu.Unlock()
	if !ok {
		return ArchiveTarget{}, ErrUnknownStanza
	}
	pm, err := g.inst.Postmaster()
	if err != nil {
		return ArchiveTarget{}, err
	}
	return ArchiveTarget{Stanza: g.stanza.Name, UID: uid, Postmaster: pm,
		Push: func(ctx context.Context, name string, _ Peer) error {
			e.mu.Lock()
			pp := e.grants[uid].pp.clone()
			e.mu.Unlock()
			defer pp.Wipe()
			return g.stanza.ArchivePush(ctx, pp, name)
		}}, nil
}

func (e *testEnv) grant(st *Stanza, inst *postgres.Instance, pp Passphrases) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.grants[inst.User.UID] = grant{stanza: st, inst: inst, pp: pp.clone()}
}

// accounts makes a server's two OS accounts, as the daemon does: one for
// PostgreSQL and one for backups, in the first's group. Cleanup ends their
// processes and removes them.
func accounts(t testing.TB, name string) (db, bk osuser.User) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbName, bkName := "pgflex-tdb-"+name, "pgflex-tbk-"+name
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		for _, n := range []string{bkName, dbName} {
			if u, err := osuser.Lookup(n); err == nil {
				_ = procfs.KillUser(cctx, u.UID)
			}
			if err := osuser.Remove(cctx, n); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	db, err := osuser.Ensure(ctx, dbName, osuser.Options{Comment: "pgflex backup test"})
	if err != nil {
		t.Fatal(err)
	}
	bk, err = osuser.Ensure(ctx, bkName, osuser.Options{Comment: "pgflex backup test", Groups: []string{dbName}})
	if err != nil {
		t.Fatal(err)
	}
	return db, bk
}

func (e *testEnv) remember(secret []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, bytes.Clone(secret))
}

func (e *testEnv) allSecrets() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.secrets
}

// secretNeedles are every passphrase and DEK made so far, each in every form it could be
// written in, for leak scans.
func (e *testEnv) secretNeedles() testkit.Needles {
	n := testkit.Needles{}
	for i, s := range e.allSecrets() {
		n.AddSecret("secret "+strconv.Itoa(i), s)
	}
	return n
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newVolume creates and mounts a fresh encrypted volume for a server.
func (e *testEnv) newVolume(t testing.TB, name string) *volume.Volume {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := make([]byte, volume.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	defer clear(key)
	vol := &volume.Volume{Dir: filepath.Join(e.tmp, "servers", name, "vol"), Logger: e.logger}
	t.Cleanup(func() { unmountOrEnd(t, vol) })
	if err := vol.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := vol.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	return vol
}

// unmountOrEnd unmounts vol; should that fail, it detaches the mount and ends the gocryptfs
// process serving it (SIGTERM, then SIGKILL), which would otherwise live on holding the key.
func unmountOrEnd(t testing.TB, vol *volume.Volume) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := vol.Unmount(ctx); err != nil {
		t.Errorf("cleanup: unmount %s: %v; detaching and ending gocryptfs", vol.Dir, err)
		if n, err := testkit.DetachFUSE(vol.MountDir(), vol.CipherDir(), 5*time.Second); err != nil {
			t.Errorf("cleanup: %v (%d gocryptfs processes)", err, n)
		}
	}
}

// newInstance describes a server's PostgreSQL in vol, run by db; cleanup
// stops it.
func (e *testEnv) newInstance(t testing.TB, name string, vol *volume.Volume, db osuser.User) *postgres.Instance {
	t.Helper()
	inst := &postgres.Instance{
		DataDir: filepath.Join(vol.MountDir(), "pgdata"), User: db,
		Port: freePort(t), SocketDir: filepath.Join(e.tmp, "servers", name, "run"), Logger: e.logger,
	}
	t.Cleanup(func() { stopInstance(t, inst) })
	return inst
}

// stopInstance stops a server, escalating, so its volume can be unmounted.
func stopInstance(t testing.TB, inst *postgres.Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fresh := &postgres.Instance{DataDir: inst.DataDir, User: inst.User, Port: inst.Port, SocketDir: inst.SocketDir, Logger: inst.Logger}
	if err := fresh.Stop(ctx, postgres.StopFast); err != nil {
		t.Logf("cleanup: fast stop: %v", err)
		if err := fresh.Stop(ctx, postgres.StopImmediate); err != nil {
			t.Errorf("cleanup: immediate stop: %v", err)
		}
	}
}

// settings is the server configuration the daemon would write; pgBackRest
// connects as the backup role from the backup account.
func (e *testEnv) settings(inst *postgres.Instance, bk osuser.User, archiveCommand string) postgres.Settings {
	s := postgres.Settings{
		Port: inst.Port, SocketDir: inst.SocketDir,
		BackupOSUser:  bk.Name,
		SharedBuffers: 32 * postgres.MB,
	}
	if archiveCommand != "" {
		s.ArchiveMode, s.ArchiveCommand = "on", archiveCommand
	}
	return s
}

// configure writes a server's certificate and configuration.
func (e *testEnv) configure(ctx context.Context, inst *postgres.Instance, bk osuser.User, archiveCommand string) error {
	if err := postgres.InstallServerCertificate(ctx, inst.DataDir, inst.User, e.certPEM, e.keyPEM); err != nil {
		return err
	}
	return postgres.WriteConfig(ctx, inst.DataDir, inst.User, e.settings(inst, bk, archiveCommand))
}

func (e *testEnv) regionRoot(region string) string { return filepath.Join(e.tmp, "regions", region) }

// testServer is a server with continuous archiving into its stanza.
type testServer struct {
	name   string
	vol    *volume.Volume
	inst   *postgres.Instance
	bk     osuser.User // its backup account
	stanza *Stanza
	pp     Passphrases
}

// stanzaFor describes name's stanza, run by the backup account bk, with
// repository 1 in eastus and, when geo, repository 2 in westus (its pair).
func (e *testEnv) stanzaFor(name string, inst *postgres.Instance, bk osuser.User, geo bool) *Stanza {
	s := &Stanza{
		Name: name, ConfigDir: filepath.Join(e.tmp, "servers", name, "backup"),
		DataDir: inst.DataDir, SocketDir: inst.SocketDir, Port: inst.Port, Account: bk,
		Repos:         []Repo{{Index: RepoPrimary, Path: RepoPath(e.regionRoot("eastus"), name)}},
		RetentionDays: 7, Logger: e.logger,
	}
	if geo {
		s.Repos = append(s.Repos, Repo{Index: RepoGeo, Path: RepoPath(e.regionRoot("westus"), name)})
	}
	return s
}

// passphrases makes a backup DEK per repository and derives passphrases
// as the daemon would.
func (e *testEnv) passphrases(t testing.TB, s *Stanza) Passphrases {
	t.Helper()
	pp := Passphrases{}
	for _, r := range s.Repos {
		dek := make([]byte, DEKSize)
		if _, err := rand.Read(dek); err != nil {
			t.Fatal(err)
		}
		p, err := Passphrase(dek, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		e.remember(dek)
		e.remember(p)
		pp[r.Index] = p
	}
	return pp
}

// newSource creates, starts and backs-up-configures a server: volume,
// initdb, stanza, archive_command through the helper, stanza-create.
func (e *testEnv) newSource(t testing.TB, geo bool) *testServer {
	t.Helper()
	return e.newSourceWith(t, func(s *Stanza) {
		if geo {
			s.Repos = append(s.Repos, Repo{Index: RepoGeo, Path: RepoPath(e.regionRoot("westus"), s.Name)})
		}
	})
}

// newSourceWith is newSource with the stanza (repository 1 only) adjusted
// by modify.
func (e *testEnv) newSourceWith(t testing.TB, modify func(*Stanza)) *testServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "s" + randomHex(t, 6)
	db, bk := accounts(t, name)
	vol := e.newVolume(t, name)
	inst := e.newInstance(t, name, vol, db)
	if err := postgres.InitDB(ctx, postgres.InitOptions{DataDir: inst.DataDir, User: db}); err != nil {
		t.Fatal(err)
	}
	st := e.stanzaFor(name, inst, bk, false)
	modify(st)
	pp := e.passphrases(t, st)
	if err := st.WriteConfig(ctx); err != nil {
		t.Fatal(err)
	}
	cmd, err := st.ArchiveCommand(e.helper)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.configure(ctx, inst, bk, cmd); err != nil {
		t.Fatal(err)
	}
	e.grant(st, inst, pp)
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := inst.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = postgres.CreateBackupRole(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, pp); err != nil {
		t.Fatal(err)
	}
	return &testServer{name: name, vol: vol, inst: inst, bk: bk, stanza: st, pp: pp}
}

// restoreInto restores src's repository repo into a new server, with
// accounts of its own; archiveCommand, if set, gives its archive_command
// (from the new server's instance and backup account).
func (e *testEnv) restoreInto(ctx context.Context, t testing.TB, src *testServer, repo int, target time.Time, pass []byte, archiveCommand func(inst *postgres.Instance, bk osuser.User) string) (*postgres.Instance, RestoreResult, error) {
	t.Helper()
	name := "r" + randomHex(t, 6)
	db, bk := accounts(t, name)
	vol := e.newVolume(t, name)
	inst := e.newInstance(t, name, vol, db)
	r, err := src.stanza.repo(repo)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Restore(ctx, RestoreOptions{
		Source:       Source{Stanza: src.name, RepoPath: r.Path, Passphrase: pass, Account: src.bk},
		Target:       target,
		Instance:     inst,
		WorkDir:      filepath.Join(e.tmp, "servers", name, "restore"),
		HelperBinary: e.helper.Binary,
		Configure: func(ctx context.Context) error {
			cmd := ""
			if archiveCommand != nil {
				cmd = archiveCommand(inst, bk)
			}
			return e.configure(ctx, inst, bk, cmd)
		},
		Logger: e.logger,
	})
	return inst, res, err
}

func selfSignedCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// sqlExec runs statements as the superuser over the socket.
func sqlExec(ctx context.Context, t testing.TB, inst *postgres.Instance, stmts ...string) {
	t.Helper()
	conn, err := inst.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// sqlScan runs one query returning one row.
func sqlScan(ctx context.Context, t testing.TB, inst *postgres.Instance, query string, dest ...any) {
	t.Helper()
	conn, err := inst.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, query).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
