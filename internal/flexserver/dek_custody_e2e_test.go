package flexserver_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// custodyVault is the customer's side of a CMK server: a vault with purge protection, driven
// through the ARM and Key Vault REST APIs as the administrator (who may do anything with its
// keys: the test unwraps the CMK servers' DEKs as the customer could).
type custodyVault struct {
	t   testing.TB
	d   *testenv.Daemon
	uri string
	arm string // the vault's ARM id
}

func newCustodyVault(t testing.TB, d *testenv.Daemon, group, name string) *custodyVault {
	t.Helper()
	v := &custodyVault{t: t, d: d, arm: fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s",
		d.Profile().SubscriptionID, group, name)}
	admin := testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default"))
	r := d.ARM(t, http.MethodPut, v.arm+"?api-version=2023-07-01", map[string]any{"location": "eastus", "properties": map[string]any{
		"tenantId": d.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
		"enablePurgeProtection": true, "softDeleteRetentionInDays": 7, "accessPolicies": []any{v.policy(admin, "all")}}})
	if r.Status/100 != 2 {
		t.Fatalf("create vault: %d %s", r.Status, r.Raw)
	}
	v.uri = strings.TrimSuffix(props(r.Body)["vaultUri"].(string), "/")
	return v
}

func (v *custodyVault) policy(oid string, perms ...string) map[string]any {
	return map[string]any{"tenantId": v.d.Profile().TenantID, "objectId": oid, "permissions": map[string]any{"keys": perms}}
}

// call sends a Key Vault REST request (url absolute, or a path on the vault) as the administrator.
func (v *custodyVault) call(method, url string, body any) map[string]any {
	v.t.Helper()
	if strings.HasPrefix(url, "/") {
		url = v.uri + url
	}
	r := v.d.Do(v.t, method, url+"?api-version=7.5", v.d.Token(v.t, "https://vault.localhost/.default"), body)
	if r.Status/100 != 2 {
		v.t.Fatalf("%s %s: %d %s", method, url, r.Status, r.Raw)
	}
	return r.Body
}

func (v *custodyVault) createKey(name string) string {
	return v.call(http.MethodPost, "/keys/"+name+"/create", map[string]any{"kty": "RSA", "key_size": 2048})["key"].(map[string]any)["kid"].(string)
}

func (v *custodyVault) rotate(name string) string {
	return v.call(http.MethodPost, "/keys/"+name+"/rotate", nil)["key"].(map[string]any)["kid"].(string)
}

// unwrap unwraps an envelope with the customer's key, as the customer.
func (v *custodyVault) unwrap(env *dataenc.Envelope) []byte {
	v.t.Helper()
	b := v.call(http.MethodPost, env.KeyID+"/unwrapkey", map[string]any{"alg": env.Algorithm, "value": base64.RawURLEncoding.EncodeToString(env.Wrapped)})
	s, _ := b["value"].(string)
	dek, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(dek) == 0 {
		v.t.Fatalf("unwrap %s: %q %v", env.KeyID, s, err)
	}
	return dek
}

// identity creates a user-assigned identity that may use the vault's keys.
func (v *custodyVault) identity(group, name string) (id, principal string) {
	v.t.Helper()
	id = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", v.d.Profile().SubscriptionID, group, name)
	r := v.d.ARM(v.t, http.MethodPut, id+"?api-version=2023-01-31", map[string]any{"location": "eastus"})
	if r.Status/100 != 2 {
		v.t.Fatalf("create identity: %d %s", r.Status, r.Raw)
	}
	principal = props(r.Body)["principalId"].(string)
	r = v.d.ARM(v.t, http.MethodPut, v.arm+"/accessPolicies/add?api-version=2023-07-01", map[string]any{"properties": map[string]any{
		"accessPolicies": []any{v.policy(principal, "get", "list", "wrapKey", "unwrapKey")}}})
	if r.Status/100 != 2 {
		v.t.Fatalf("access policy: %d %s", r.Status, r.Raw)
	}
	return id, principal
}

// serverAction starts a stop, start or restart of each server and waits for all of them.
func serverAction(t testing.TB, d *testenv.Daemon, group, action string, names ...string) {
	t.Helper()
	ops := map[string]string{}
	for _, name := range names {
		r := d.ARM(t, http.MethodPost, serverPath(d, group, name)+"/"+action+"?api-version=2025-08-01", nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("%s %s: %d %s", action, name, r.Status, r.Raw)
		}
		ops[name] = r.Header.Get("Azure-AsyncOperation")
	}
	for _, name := range names {
		waitSucceeded(t, d, action+" "+name, ops[name])
	}
}

// serviceUnwrapAll stops the daemon, reads every server's envelopes from its store and unwraps
// those wrapped by a service-managed key in process, as only the daemon can (the servers run on
// without it); it starts the daemon again and returns the servers and the plaintext keys, by
// "DEK of NAME" and "backup DEK of NAME", with the customer-wrapped envelopes left to cmk.
func serviceUnwrapAll(t testing.TB, d *testenv.Daemon, cmk func(*dataenc.Envelope) []byte) ([]flexserver.Server, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
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
	var servers []flexserver.Server
	if err := st.View(ctx, func(tx store.Tx) error {
		servers, err = store.ListJSON[flexserver.Server](tx, "pgserver/")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	var later []func()
	for _, srv := range servers {
		for what, env := range map[string]*dataenc.Envelope{"DEK of ": srv.Envelope, "backup DEK of ": srv.BackupEnvelope} {
			if env == nil {
				t.Fatalf("server %s has no %senvelope", srv.Name, what)
			}
			name := what + srv.Name
			if !kv.IsServiceKeyID(env.KeyID) {
				later = append(later, func() { keys[name] = cmk(env) })
				continue
			}
			dek, err := kv.UnwrapWithServiceKey(ctx, env.KeyID, env.Wrapped)
			if err != nil {
				t.Fatalf("unwrap the %s in process: %v", name, err)
			}
			keys[name] = dek
		}
	}
	st.Close()
	d.StartAgain()
	for _, f := range later {
		f()
	}
	for name, k := range keys {
		if len(k) != 32 {
			t.Fatalf("the %s is %d bytes", name, len(k))
		}
	}
	return servers, keys
}

// TestDEKCustody: the plaintext DEKs (and backup DEKs) of an SMK server, a CMK server and a
// CMK server restored from the SMK one's backups are never outside the daemon's memory and the
// key store: not in any process's command line or environment at any moment from before the
// daemon started until after the servers were deleted (every process read every 2 ms
// throughout, through create, stop, start, a key rotation, a restore, a daemon restart and the
// deletes), not in any file outside the plaintext mounts while they run and after the deletes,
// not in the daemon's log; raw, hex, HEX, base64 and base64url, padded and not. The SMK-wrapped
// DEK cannot be unwrapped through the key store by a user principal.
func TestDEKCustody(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	rec := testkit.Record()
	defer rec.Stop()
	runDir := testenv.RuntimeDir(t)
	// gocryptfs: the layer to which the DEK travels out of the daemon (through a pipe to the
	// FUSE server), so the one where a process's arguments or environment could carry it. (The
	// fscrypt layer hands the kernel a key derived from the DEK through an ioctl: no process.)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--key-check-interval", "1s", "--volume-layer", "gocryptfs"}})
	createGroup(t, d, "rg", "eastus")
	v := newCustodyVault(t, d, "rg", "kvcustody")
	first := v.createKey("custody")
	idID, _ := v.identity("rg", "custody-id")
	cmk := func(keyURI string) map[string]any {
		return map[string]any{
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{idID: map[string]any{}}},
			"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyURI,
				"primaryUserAssignedIdentityId": idID}}}
	}
	names := []string{"custody-smk", "custody-cmk", "custody-copy"}

	// Create, stop, start: an SMK and a CMK server side by side.
	smkOp := beginCreate(t, d, "rg", names[0], nil)
	cmkOp := beginCreate(t, d, "rg", names[1], cmk(first[:strings.LastIndex(first, "/")]))
	waitSucceeded(t, d, "create "+names[0], smkOp)
	waitSucceeded(t, d, "create "+names[1], cmkOp)
	serverAction(t, d, "rg", "stop", names[:2]...)
	serverAction(t, d, "rg", "start", names[:2]...)

	// Rotation: the CMK server follows the new version of its versionless key (a rewrap).
	second := v.rotate("custody")
	testkit.Eventually(t, time.Minute, "the DEK rewrapped by the new key version", func() error {
		enc := props(serverRaw(t, d, "rg", names[1]))["dataEncryption"].(map[string]any)
		if got := enc["primaryKeyVersionInUse"]; !strings.HasSuffix(second, "/"+fmt.Sprint(got)) {
			return fmt.Errorf("version in use %v", got)
		}
		return nil
	})

	// Restore: the SMK server's backups into a new server under the customer's key.
	src := serverRaw(t, d, "rg", names[0])
	backup, _ := props(src)["backup"].(map[string]any)
	earliest, err := time.Parse(time.RFC3339, fmt.Sprint(backup["earliestRestoreDate"]))
	if err != nil {
		t.Fatalf("earliestRestoreDate: %v", err)
	}
	testkit.Eventually(t, time.Minute, "a restore point after the earliest", func() error {
		if time.Now().Add(-time.Second).Truncate(time.Second).Before(earliest) {
			return fmt.Errorf("earliest restore point %s", earliest)
		}
		return nil
	})
	body := cmk(second)
	body["location"] = "eastus"
	p := body["properties"].(map[string]any)
	p["createMode"], p["sourceServerResourceId"] = "PointInTimeRestore", src["id"]
	p["pointInTimeUTC"] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
	r := d.ARM(t, http.MethodPut, serverPath(d, "rg", names[2])+"?api-version=2025-08-01", body)
	if r.Status != http.StatusAccepted {
		t.Fatalf("restore: %d %s", r.Status, r.Raw)
	}
	waitSucceeded(t, d, "restore "+names[2], r.Header.Get("Azure-AsyncOperation"))

	// Learn the keys: the service's in process (the daemon stopped and started again: the
	// servers outlive it and are adopted), the customer's through the vault.
	servers, keys := serviceUnwrapAll(t, d, v.unwrap)
	var listed []string
	for _, s := range servers {
		listed = append(listed, s.Name)
	}
	slices.Sort(listed)
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(listed, want) || len(keys) != 2*len(names) {
		t.Fatalf("servers %v with %d keys, want %v with %d", listed, len(keys), want, 2*len(names))
	}
	needles := testkit.Needles{}
	for name, k := range keys {
		needles.AddSecret(name, k)
	}
	for _, name := range names {
		waitState(t, d, "rg", name, "Ready", 2*time.Minute)
	}

	// As the administrator, with a key-store token: the service key is out of reach.
	for _, s := range servers {
		if s.Name != names[0] {
			continue
		}
		tok := d.Token(t, "https://vault.localhost/.default")
		r := d.Do(t, http.MethodPost, s.Envelope.KeyID+"/unwrapkey?api-version=7.5", tok,
			map[string]string{"alg": s.Envelope.Algorithm, "value": base64.RawURLEncoding.EncodeToString(s.Envelope.Wrapped)})
		if r.Status/100 == 2 || r.Body["value"] != nil {
			t.Fatalf("a user principal unwrapped the DEK through the key store: %d %s", r.Status, r.Raw)
		}
	}

	// While all three run: in no file outside the mounts, not in the daemon's log.
	if out := scanOutside(t, d, runDir, needles); len(out.Hits) > 0 {
		t.Fatalf("a DEK in plaintext while the servers run: %v", out.Hits)
	}
	if hits := daemonLogHits(t, d, needles, names...); len(hits) > 0 {
		t.Fatalf("a DEK in the daemon's log: %v", hits)
	}

	// Delete: all three at once.
	ops := map[string]string{}
	for _, name := range names {
		r := d.ARM(t, http.MethodDelete, serverPath(d, "rg", name)+"?api-version=2025-08-01", nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("delete %s: %d %s", name, r.Status, r.Raw)
		}
		ops[name] = r.Header.Get("Azure-AsyncOperation")
	}
	for _, name := range names {
		waitSucceeded(t, d, "delete "+name, ops[name])
	}

	// Positive control of the recording: a child holding two of the keys, in its environment
	// and on its command line, is found; it lives until the recording has read it.
	var stdin io.WriteCloser
	ctl := exec.Command("cat", "-", "/dev/null#"+base64.RawURLEncoding.EncodeToString(keys["DEK of "+names[1]]))
	ctl.Env = []string{"CONTROL=" + fmt.Sprintf("%x", keys["DEK of "+names[0]])}
	stdin, err = ctl.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the control child is recorded", func() error {
		if !rec.SawPID(ctl.Process.Pid) {
			return io.EOF
		}
		return nil
	})
	stdin.Close()
	ctl.Wait()
	rec.Stop()
	var control []string
	for _, h := range rec.Find(needles) {
		if h.PID == ctl.Process.Pid {
			control = append(control, h.Where+": "+h.Needle)
			continue
		}
		t.Errorf("%s in the %s of process %d (%s, uid %d)", h.Needle, h.Where, h.PID, h.Exe, h.UID)
	}
	for _, want := range []string{"cmdline: DEK of " + names[1] + " (base64url, unpadded)", "environ: DEK of " + names[0] + " (hex)"} {
		if !slices.Contains(control, want) {
			t.Errorf("positive control: the recording found %v in the control child, not %s", control, want)
		}
	}
	for _, u := range rec.Unreadable() {
		if slices.Contains([]string{"", "pgflex", "postgres", "gocryptfs", "pgbackrest", "initdb", "pg_ctl"}, u.Exe) {
			t.Errorf("process %d (%q) could not be read: %s", u.PID, u.Exe, u.Needle)
		}
	}
	reads, n := rec.Reads()
	fuse, pg, br, initdb := rec.SeenWith("gocryptfs", d.DataDir), rec.SeenWith("postgres", runDir), rec.SeenWith("pgbackrest", d.DataDir), rec.SeenWith("initdb", runDir)
	t.Logf("recorded %d sweeps, %d reads (%d MiB), %d distinct; this daemon's processes seen: gocryptfs %d, postgres %d, pgbackrest %d, initdb %d",
		rec.Sweeps(), reads, n>>20, rec.Distinct(), fuse, pg, br, initdb)
	// The recording saw this daemon's data plane at work: a gocryptfs per volume init and per
	// mount (three creates, two starts), PostgreSQL and its backends, a pgBackRest per backup,
	// archived segment and restore, an initdb per new cluster.
	if fuse < 8 || pg < 3 || br < 3 || initdb < 2 || rec.Sweeps() < 100 {
		t.Errorf("the recording saw too little of the data plane to prove anything")
	}

	// After the deletes: nothing left anywhere either.
	if out := scanOutside(t, d, runDir, needles); len(out.Hits) > 0 {
		t.Fatalf("a DEK in plaintext after the deletes: %v", out.Hits)
	}
	if hits := daemonLogHits(t, d, needles, names...); len(hits) > 0 {
		t.Fatalf("a DEK in the daemon's log: %v", hits)
	}
}
