package pgrouter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/tlsca"
)

// The router's tests run real PostgreSQL 15 servers (two, each under an OS account of its own,
// as the daemon runs them) behind a real router, and connect with pgx and with psql (libpq).

const (
	testSuffix   = "pgrouter.localhost"
	testAdmin    = "pgadmin"
	testPassword = "Rout3r-Test-Passw0rd"
)

// testServer is one PostgreSQL server of the fixture.
type testServer struct {
	name   string
	marker string // the value of its marker table
	user   osuser.User
	inst   *postgres.Instance
	addr   string
}

// fixture is what every test shares: a CA, two running servers. Starting PostgreSQL takes
// seconds, so they are made once per test binary (TestMain stops them).
type fixture struct {
	ca      *tlsca.CA
	servers map[string]*testServer
	tmp     string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		fix.stop()
	}
	os.Exit(code)
}

// requireServers skips (or fails under CI) where PostgreSQL cannot run, then returns the
// fixture.
func requireServers(t testing.TB) *fixture {
	t.Helper()
	testkit.Require(t, testkit.Root, testkit.PostgreSQL, testkit.Accounts)
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func newFixture() (*fixture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "pgrouter-test-")
	if err != nil {
		return nil, err
	}
	f := &fixture{tmp: tmp, servers: map[string]*testServer{}}
	if err := os.Chmod(tmp, 0o711); err != nil {
		return f, err
	}
	box, err := seal.LoadOrCreateRootKey(filepath.Join(tmp, "root.key"))
	if err != nil {
		return f, err
	}
	if err := os.Mkdir(filepath.Join(tmp, "tls"), 0o700); err != nil {
		return f, err
	}
	if f.ca, err = tlsca.LoadOrCreate(filepath.Join(tmp, "tls"), box); err != nil {
		return f, err
	}
	for i, name := range []string{"alpha", "bravo"} {
		s, err := f.startServer(ctx, name, "pgflex-rtrtest"+strconv.Itoa(i+1))
		if err != nil {
			f.stop()
			return nil, fmt.Errorf("start server %s: %w", name, err)
		}
		f.servers[name] = s
	}
	return f, nil
}

func (f *fixture) startServer(ctx context.Context, name, account string) (*testServer, error) {
	user, err := osuser.Ensure(ctx, account, osuser.Options{Comment: "pgflex router test"})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(f.tmp, name)
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := postgres.Settings{Port: port, SocketDir: filepath.Join(dir, "run")}
	dataDir := filepath.Join(dir, "pgdata")
	inst := &postgres.Instance{DataDir: dataDir, User: user, Port: port, SocketDir: s.SocketDir,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := &testServer{name: name, marker: "marker-of-" + name, user: user, inst: inst, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := postgres.InitDB(ctx, postgres.InitOptions{DataDir: dataDir, User: user}); err != nil {
		return nil, err
	}
	leaf, err := f.ca.Issue(name, []string{"127.0.0.1", name + "." + testSuffix})
	if err != nil {
		return nil, err
	}
	if err := postgres.InstallServerCertificate(ctx, dataDir, user, leaf.CertPEM, leaf.KeyPEM); err != nil {
		return nil, err
	}
	if err := postgres.WriteConfig(ctx, dataDir, user, s); err != nil {
		return nil, err
	}
	if err := inst.Start(ctx); err != nil {
		return nil, err
	}
	conn, err := inst.Connect(ctx)
	if err != nil {
		return srv, err
	}
	defer conn.Close(ctx)
	if err := postgres.CreateAdmin(ctx, conn, testAdmin, []byte(testPassword)); err != nil {
		return srv, err
	}
	for _, q := range []string{
		"CREATE TABLE marker (v text)",
		"INSERT INTO marker VALUES ('" + srv.marker + "')",
		"GRANT SELECT ON marker TO " + testAdmin,
		"GRANT ALL ON SCHEMA public TO " + testAdmin,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return srv, fmt.Errorf("%s: %w", q, err)
		}
	}
	return srv, nil
}

func (f *fixture) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range f.servers {
		if err := s.inst.Stop(ctx, postgres.StopFast); err != nil {
			_ = s.inst.Stop(ctx, postgres.StopImmediate)
		}
	}
	os.RemoveAll(f.tmp)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pool trusts the fixture's CA.
func (f *fixture) pool() *x509.CertPool { return f.ca.Pool() }

// caFile writes the CA certificate for libpq's sslrootcert.
func (f *fixture) caFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, f.ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// directory is the test's Directory: the fixture's servers, and a state per name that a test
// may set (a server that is "stopped" is refused as the daemon refuses it).
type directory struct {
	f       *fixture
	mu      sync.Mutex
	refuse  map[string]*Refusal
	extra   map[string]Target // names that lead elsewhere (a closed port)
	lookups int
}

func newDirectory(f *fixture) *directory {
	return &directory{f: f, refuse: map[string]*Refusal{}, extra: map[string]Target{}}
}

func (d *directory) Lookup(_ context.Context, name string) (Target, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	if r := d.refuse[name]; r != nil {
		return Target{}, r
	}
	if t, ok := d.extra[name]; ok {
		return t, nil
	}
	s, ok := d.f.servers[name]
	if !ok {
		return Target{}, NotFound(name)
	}
	return Target{Name: name, Addr: s.addr, Owner: s.user.UID}, nil
}

// LookupProcess finds the server by the OS account that runs the process, as the daemon does.
func (d *directory) LookupProcess(_ context.Context, pid uint32) (Target, error) {
	st, err := procfs.Read(int(pid))
	if err != nil {
		return Target{}, err
	}
	for _, s := range d.f.servers {
		if st.RUID == s.user.UID {
			return Target{Name: s.name, Addr: s.addr, Owner: s.user.UID}, nil
		}
	}
	return Target{}, errors.New("no server runs that process")
}

// running is a router serving on a loopback port for one test.
type running struct {
	r    *Router
	addr string
	port int
	done chan error
}

// startRouter serves a router with cfg's Directory (default: the fixture's) until the test
// ends.
func startRouter(t testing.TB, f *fixture, cfg Config) *running {
	t.Helper()
	if cfg.Suffix == "" {
		cfg.Suffix = testSuffix
	}
	if cfg.Directory == nil {
		cfg.Directory = newDirectory(f)
	}
	if len(cfg.Certificate.Certificate) == 0 {
		cfg.Certificate = routerCertificate(t, f)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rn := &running{r: r, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, done: make(chan error, 1)}
	go func() { rn.done <- r.Serve(ln) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-rn.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return rn
}

// routerCertificate is what the daemon gives the router: *.{suffix} and the loopback
// addresses, from the CA.
func routerCertificate(t testing.TB, f *fixture) tls.Certificate {
	t.Helper()
	leaf, err := f.ca.Issue("pgflex postgres endpoint", []string{"*." + testSuffix, "localhost", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pgxConfig is a connection to host through the router (or any port), as the administrator.
func (f *fixture) pgxConfig(t testing.TB, host string, port int, sslmode string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=%s connect_timeout=10",
		host, port, testAdmin, sslmode))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = testPassword
	if cfg.TLSConfig != nil {
		cfg.TLSConfig.RootCAs = f.pool()
	}
	return cfg
}

func (f *fixture) connect(t testing.TB, host string, port int, sslmode string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, f.pgxConfig(t, host, port, sslmode))
}
