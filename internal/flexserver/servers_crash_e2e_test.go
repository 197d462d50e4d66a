package flexserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
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

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/volume"
)

// createServer creates a server through the API and waits until it is Ready.
func createServer(t testing.TB, d *testenv.Daemon, group, name string, extra map[string]any) map[string]any {
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
	op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 3*time.Minute)
	if op["status"] != "Succeeded" {
		t.Fatalf("create %s: %v\n%s", name, op, d.Logs())
	}
	return serverRaw(t, d, group, name)
}

// waitState polls the server until it reaches state.
func waitState(t testing.TB, d *testenv.Daemon, group, name, state string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		srv := serverRaw(t, d, group, name)
		if props(srv)["state"] == state {
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s is %v, not %s, after %s", name, props(srv)["state"], state, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestCrashDuringLoad kills the daemon and then PostgreSQL with SIGKILL while pgbench and a
// committing client run; after a restart the server is Ready and every committed transaction is
// there.
func TestCrashDuringLoad(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	srv := createServer(t, d, "rg", "crashy", nil)
	p := props(srv)
	conn, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE counter (n bigint)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	port := strconv.Itoa(int(p["port"].(float64)))
	pgbench := func(args ...string) *exec.Cmd {
		cmd := exec.Command("/usr/lib/postgresql/15/bin/pgbench", append([]string{"-h", "127.0.0.1", "-p", port, "-U", "pgadmin"}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+adminPassword, "PGSSLMODE=require")
		return cmd
	}
	if out, err := pgbench("-i", "-s", "2", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	load := pgbench("-c", "2", "-T", "60", "postgres")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer load.Process.Kill()

	// The committing client: every value it saw acknowledged must survive.
	var mu sync.Mutex
	acked := int64(0)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := connect(t, d, srv, "postgres")
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Exec(context.Background(), "INSERT INTO counter VALUES ($1)", i); err != nil {
				return
			}
			mu.Lock()
			acked = i
			mu.Unlock()
		}
	}()
	time.Sleep(3 * time.Second)
	d.Kill()
	time.Sleep(time.Second)
	// Then PostgreSQL itself dies hard.
	pidFile := filepath.Join(runDir, "mnt")
	entries, _ := os.ReadDir(pidFile)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(pidFile, e.Name(), "pgdata", "postmaster.pid"))
		if err != nil {
			t.Fatalf("postmaster.pid: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill postmaster %d: %v", pid, err)
		}
	}
	close(stop)
	<-done
	load.Wait()
	mu.Lock()
	last := acked
	mu.Unlock()
	if last < 10 {
		t.Fatalf("only %d commits acknowledged before the crash", last)
	}

	d.StartAgain()
	srv = waitState(t, d, "rg", "crashy", "Ready", time.Minute)
	var conn2 interface{ Close(context.Context) error }
	deadline := time.Now().Add(time.Minute)
	var max int64
	for {
		c, err := connect(t, d, srv, "postgres")
		if err == nil {
			err = c.QueryRow(ctx, "SELECT coalesce(max(n), 0) FROM counter").Scan(&max)
			conn2 = c
			if err == nil {
				break
			}
			c.Close(ctx)
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not back after restart: %v\n%s", err, d.Logs())
		}
		time.Sleep(500 * time.Millisecond)
	}
	conn2.Close(ctx)
	if max < last {
		t.Fatalf("lost committed transactions: last acknowledged %d, present %d", last, max)
	}
	t.Logf("acknowledged %d commits before SIGKILL of daemon and postmaster; %d present after restart", last, max)
}

// TestDEKCustody: the DEK is in no file under the data directory (raw, hex or base64), and its
// wrapped form cannot be unwrapped through the key store by any user principal.
func TestDEKCustody(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	createServer(t, d, "rg", "custody", nil)
	dirs := serverDirs(t, d)
	if len(dirs) != 1 {
		t.Fatalf("server dirs: %v", dirs)
	}
	h, err := volume.ReadHeader(ctx, filepath.Join(d.DataDir, "servers", dirs[0], "header.json"))
	if err != nil {
		t.Fatal(err)
	}
	kid := h.KeyID + "/" + h.KeyVersion

	// As the administrator, with a key-store token: the service key is out of reach.
	tok := d.Token(t, "https://vault.localhost/.default")
	r := d.Do(t, http.MethodPost, kid+"/unwrapkey?api-version=7.5", tok,
		map[string]string{"alg": h.Algorithm, "value": base64.RawURLEncoding.EncodeToString(h.WrappedKey)})
	if r.Status/100 == 2 || r.Body["value"] != nil {
		t.Fatalf("a user principal unwrapped the DEK through the key store: %d %s", r.Status, r.Raw)
	}

	// Recover the DEK the way only the service can (the daemon stopped, its store opened
	// in-process) and look for it in every file.
	d.Stop()
	box, err := seal.LoadOrCreateRootKey(filepath.Join(d.DataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(d.DataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	signing, err := daemon.TokenSigningKey(d.DataDir, box)
	if err != nil {
		t.Fatal(err)
	}
	issuer := auth.NewIssuer(signing, d.Profile().Endpoint, d.Profile().TenantID, st, auth.Audiences{})
	kv, err := keyvault.New(keyvault.Options{Store: st, Box: box, Tokens: issuer, Endpoint: d.Profile().Endpoint, KeyVaultSuffix: "vault.localhost",
		TenantID: d.Profile().TenantID, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dek, err := kv.UnwrapWithServiceKey(ctx, kid, h.WrappedKey)
	st.Close()
	if err != nil || len(dek) != 32 {
		t.Fatalf("unwrap in-process: %v", err)
	}
	needles := [][]byte{dek, []byte(hex.EncodeToString(dek)), []byte(strings.ToUpper(hex.EncodeToString(dek))),
		[]byte(base64.StdEncoding.EncodeToString(dek)), []byte(base64.RawURLEncoding.EncodeToString(dek))}
	if hits := grepTree(t, d.DataDir, nil, needles...); len(hits) > 0 {
		t.Fatalf("the DEK appears in plaintext in %v", hits)
	}
	if hits := grepTree(t, runDir, []string{filepath.Join(runDir, "mnt")}, needles...); len(hits) > 0 {
		t.Fatalf("the DEK appears in plaintext in %v", hits)
	}
	// No process shows it on its command line or in its environment.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		for _, f := range []string{"cmdline", "environ"} {
			if b, err := os.ReadFile(filepath.Join(p, f)); err == nil {
				for _, n := range needles {
					if bytes.Contains(b, n) {
						t.Fatalf("the DEK appears in %s/%s", p, f)
					}
				}
			}
		}
	}
}
