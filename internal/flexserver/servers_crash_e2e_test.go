package flexserver_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// beginCreate sends a server create through the API and returns its Azure-AsyncOperation URL.
func beginCreate(t testing.TB, d *testenv.Daemon, group, name string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"location": "eastus", "sku": map[string]any{"name": "Standard_B1ms", "tier": "Burstable"},
		"properties": map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": adminPassword,
			"version": "15", "storage": map[string]any{"storageSizeGB": 32}}}
	for k, v := range extra {
		if k == "properties" {
			for pk, pv := range v.(map[string]any) {
				body["properties"].(map[string]any)[pk] = pv
			}
			continue
		}
		body[k] = v
	}
	r := d.ARM(t, http.MethodPut, serverPath(d, group, name)+"?api-version=2025-08-01", body)
	if r.Status != 202 {
		t.Fatalf("create %s: %d %s", name, r.Status, r.Raw)
	}
	return r.Header.Get("Azure-AsyncOperation")
}

// waitSucceeded waits for a long-running operation and fails the test unless it succeeded.
func waitSucceeded(t testing.TB, d *testenv.Daemon, what, asyncURL string) {
	t.Helper()
	if op := d.WaitOperation(t, asyncURL, 5*time.Minute); op["status"] != "Succeeded" {
		t.Fatalf("%s: %v\n%s", what, op, d.Logs())
	}
}

// createServer creates a server through the API and waits until it is Ready.
func createServer(t testing.TB, d *testenv.Daemon, group, name string, extra map[string]any) map[string]any {
	t.Helper()
	waitSucceeded(t, d, "create "+name, beginCreate(t, d, group, name, extra))
	return serverRaw(t, d, group, name)
}

// waitState polls the server until it reaches state.
func waitState(t testing.TB, d *testenv.Daemon, group, name, state string, timeout time.Duration) map[string]any {
	t.Helper()
	var srv map[string]any
	testkit.Eventually(t, timeout, "server "+name+" "+state, func() error {
		srv = serverRaw(t, d, group, name)
		if got := props(srv)["state"]; got != state {
			return fmt.Errorf("it is %v", got)
		}
		return nil
	})
	return srv
}

// committer inserts from, from+1, ... into table counter, one autocommitted INSERT at a time,
// until an INSERT fails or stop is called, and keeps what a client knows: the highest value
// whose commit was acknowledged, and the value in flight when it stopped (whose commit may or
// may not have happened: its acknowledgement was lost).
type committer struct {
	from int64
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	acked    int64
	inflight int64
	err      error
}

func startCommitter(t testing.TB, open func() (*pgx.Conn, error), from int64) *committer {
	t.Helper()
	c := &committer{from: from, acked: from - 1, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := open()
	if err != nil {
		t.Fatalf("committer: %v", err)
	}
	go func() {
		defer close(c.done)
		defer conn.Close(context.Background())
		for i := from; ; i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			c.mu.Lock()
			c.inflight = i
			c.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := conn.Exec(ctx, "INSERT INTO counter VALUES ($1)", i)
			cancel()
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				return
			}
			c.acked, c.inflight = i, 0
			c.mu.Unlock()
		}
	}()
	return c
}

// connectOwnPort connects as the administrator to a server's own port, behind the endpoint,
// verifying the server's certificate for its host name (the only name it covers).
func connectOwnPort(t testing.TB, d *testenv.Daemon, port int, hostName string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=pgadmin dbname=postgres sslmode=verify-full connect_timeout=5", port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = adminPassword
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(d.Profile().CACertificate))
	cfg.TLSConfig.RootCAs = pool
	cfg.TLSConfig.ServerName = hostName
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// state is the highest acknowledged value, the value in flight (0: none) and why it stopped.
func (c *committer) state() (acked, inflight int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked, c.inflight, c.err
}

// waitAcked waits until at least n more commits than before were acknowledged.
func (c *committer) waitAcked(t testing.TB, what string, n int64) int64 {
	t.Helper()
	before, _, _ := c.state()
	testkit.Eventually(t, 2*time.Minute, what, func() error {
		acked, _, err := c.state()
		if acked >= before+n {
			return nil
		}
		if err != nil {
			t.Fatalf("%s: the committer stopped at %d: %v", what, acked, err)
		}
		return fmt.Errorf("%d acknowledged so far", acked-before)
	})
	acked, _, _ := c.state()
	return acked
}

// waitFailed waits until the committer's INSERTs fail (the server died under it).
func (c *committer) waitFailed(t testing.TB) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		acked, _, _ := c.state()
		t.Fatalf("the committer still commits (%d acknowledged) although its server was killed", acked)
	}
}

// checkCommits connects (waiting for the server to accept) and checks that table counter holds
// exactly the values 1..n, each once, where n is the last acknowledged value or the one in
// flight: nothing acknowledged lost, nothing never sent present. It returns n.
func checkCommits(t testing.TB, d *testenv.Daemon, srv map[string]any, c *committer) int64 {
	t.Helper()
	acked, inflight, why := c.state()
	var count, distinct, lo, hi int64
	testkit.Eventually(t, 2*time.Minute, "the server answers after the crash", func() error {
		conn, err := connect(t, d, srv, "postgres")
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.QueryRow(context.Background(),
			"SELECT count(*), count(DISTINCT n), coalesce(min(n), 0), coalesce(max(n), 0) FROM counter").Scan(&count, &distinct, &lo, &hi)
	})
	if count != distinct || lo != 1 || hi != count {
		t.Fatalf("counter holds %d rows, %d distinct, from %d to %d: not 1..n once each", count, distinct, lo, hi)
	}
	switch {
	case hi == acked:
	case inflight != 0 && hi == inflight:
		t.Logf("the INSERT of %d in flight at the crash committed (its acknowledgement was lost)", inflight)
	case hi < acked:
		t.Fatalf("lost acknowledged commits: %d acknowledged (since %d), %d present", acked, c.from, hi)
	default:
		t.Fatalf("more than was sent: %d acknowledged, %d in flight, %d present", acked, inflight, hi)
	}
	t.Logf("%d commits acknowledged (%d in this run, ended by %v), exactly 1..%d present", acked, acked-c.from+1, why, hi)
	return hi
}

// killProcess sends SIGKILL to pid, which must be running exe, and waits until it is dead.
func killProcess(t testing.TB, pid int, exe string) {
	t.Helper()
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || filepath.Base(string(bytes.SplitN(cl, []byte{0}, 2)[0])) != exe {
		t.Fatalf("process %d is not %s (%q, %v): nothing killed", pid, exe, cl, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s %d: %v", exe, pid, err)
	}
	if err := testkit.WaitGone([]int{pid}, 30*time.Second); err != nil {
		t.Fatalf("%s after SIGKILL: %v", exe, err)
	}
}

// postmasterOf is the PID in the mount's postmaster.pid.
func postmasterOf(t testing.TB, mount string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(plainDir(mount), "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 1 {
		t.Fatalf("postmaster.pid names %q", b)
	}
	return pid
}

// TestCrashDuringLoad: while pgbench and a committing client run, (1) the daemon and then the
// postmaster die by SIGKILL, and the daemon is started again; (2) the volume's layer fails
// under the server (gocryptfs's FUSE process dies by SIGKILL; fscrypt's key is removed) and the
// running daemon's reconciler must bring the server back.
// Each time the counter table holds exactly what was acknowledged (and at most the one commit
// in flight), and a crash that killed nothing fails the test.
func TestCrashDuringLoad(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "crashy", nil)
	uid, mount := serverMount(t, d, runDir, srv)
	cipher := filepath.Join(d.DataDir, "servers", uid, "cipher")
	conn, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE counter (n bigint)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	// The load and the committer of the first crash connect to the server's own port: the
	// server outlives its daemon, but the PostgreSQL endpoint lives in the daemon, and every
	// connection through it ends with the daemon (see below).
	own := ownPort(t, d, srv)
	port := strconv.Itoa(own)
	pgbench := func(args ...string) *exec.Cmd {
		cmd := exec.Command("/usr/lib/postgresql/15/bin/pgbench", append([]string{"-h", "127.0.0.1", "-p", port, "-U", "pgadmin"}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE=require")
		return cmd
	}
	if out, err := pgbench("-i", "-s", "2", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	// load runs pgbench until the crash ends it; the returned func waits for it (it fails with
	// its server: only that it ran matters).
	load := func(t *testing.T) func() {
		cmd := pgbench("-c", "2", "-T", "600", "postgres")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		return func() {
			select {
			case <-exited:
				t.Fatal("pgbench ended before the crash: the crash was not under load")
			default:
			}
		}
	}

	var present int64
	if !t.Run("daemon and postmaster killed", func(t *testing.T) {
		underLoad := load(t)
		c := startCommitter(t, func() (*pgx.Conn, error) {
			return connectOwnPort(t, d, own, props(srv)["fullyQualifiedDomainName"].(string))
		}, 1)
		viaEndpoint, err := connect(t, d, srv, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer viaEndpoint.Close(context.Background())
		c.waitAcked(t, "commits before the crash", 100)
		underLoad()
		d.Kill()
		// The server outlives its daemon: it goes on committing.
		c.waitAcked(t, "commits with the daemon dead", 20)
		underLoad()
		// A session through the endpoint ended with the daemon.
		if err := viaEndpoint.Ping(context.Background()); err == nil {
			t.Error("a session through the PostgreSQL endpoint outlived the daemon")
		}
		if mounts := testkit.MountsUnder(t, filepath.Join(runDir, "mnt")); len(mounts) != 1 || mounts[0] != mount {
			t.Fatalf("mounts %v, want the server's %s", mounts, mount)
		}
		killProcess(t, postmasterOf(t, mount), "postgres")
		c.waitFailed(t)
		d.StartAgain()
		srv = waitState(t, d, "rg", "crashy", "Ready", 2*time.Minute)
		present = checkCommits(t, d, srv, c)
	}) {
		t.FailNow()
	}

	// The layer fails under the server: gocryptfs's FUSE server dies (the plaintext view goes
	// with it), or fscrypt's key is removed from the filesystem behind the daemon's back (files
	// PostgreSQL has open stay readable, nothing else opens). Either way the reconciler brings
	// the server back.
	layer := volume.DetectLayer(cipher)
	t.Run(layer+" layer fails", func(t *testing.T) {
		underLoad := load(t)
		c := startCommitter(t, func() (*pgx.Conn, error) { return connect(t, d, srv, "postgres") }, present+1)
		c.waitAcked(t, "commits before the crash", 100)
		underLoad()
		var fuse []int
		switch layer {
		case volume.LayerGocryptfs:
			fuse = testkit.FUSEServers(cipher)
			if len(fuse) != 1 {
				t.Fatalf("gocryptfs processes serving %s: %v, want one", cipher, fuse)
			}
			killProcess(t, fuse[0], "gocryptfs")
			// (statfs always asks the FUSE server: the kernel may answer a stat from its cache.)
			var fs syscall.Statfs_t
			if err := syscall.Statfs(mount, &fs); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
				t.Fatalf("statfs of the mount after its gocryptfs died: %v, want ENOTCONN or ECONNABORTED", err)
			}
		case volume.LayerFscrypt:
			// PostgreSQL's open files keep the key "incompletely removed"; the removal is
			// refused as busy, and the volume reads Stale.
			if err := (&volume.Fscrypt{}).RemoveKey(mount); !errors.Is(err, syscall.EBUSY) {
				t.Fatalf("removing the key under a running server: %v, want EBUSY (files open)", err)
			}
			if _, err := os.ReadDir(filepath.Join(plainDir(mount), "pgdata")); err == nil {
				// A directory listing still works for what the kernel keeps; a new open of a
				// file does not.
				if _, err := os.ReadFile(filepath.Join(plainDir(mount), "pgdata", "PG_VERSION")); err == nil {
					t.Fatal("a file of the volume opens with its key removed")
				}
			}
		default:
			t.Fatalf("the server's volume has layer %q", layer)
		}
		c.waitFailed(t)
		// The daemon's reconciler brings the server back: the layer again, the server serving.
		testkit.Eventually(t, 3*time.Minute, "the reconciler remounts the volume", func() error {
			if layer == volume.LayerGocryptfs {
				if now := testkit.FUSEServers(cipher); len(now) != 1 || now[0] == fuse[0] {
					return fmt.Errorf("gocryptfs processes %v", now)
				}
			}
			if _, err := os.ReadFile(filepath.Join(plainDir(mount), "pgdata", "PG_VERSION")); err != nil {
				return err
			}
			return nil
		})
		if !strings.Contains(d.Logs(), "reconcile: bringing server up") {
			t.Errorf("the daemon's log does not say the reconciler brought the server up")
		}
		srv = waitState(t, d, "rg", "crashy", "Ready", time.Minute)
		checkCommits(t, d, srv, c)
	})
}
