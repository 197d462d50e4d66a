package flexserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// kms is a test's customer-side key management: a vault, keys and identities, driven through
// the ARM and Key Vault REST APIs as the administrator (the vault's creator).
type kms struct {
	t        testing.TB
	d        *testenv.Daemon
	group    string
	vault    string
	vaultURI string
	adminOID string
}

func newKMS(t testing.TB, d *testenv.Daemon, group, vault string, rbac bool) *kms {
	t.Helper()
	return newKMSIn(t, d, group, vault, "eastus", rbac)
}

func newKMSIn(t testing.TB, d *testenv.Daemon, group, vault, location string, rbac bool) *kms {
	t.Helper()
	k := &kms{t: t, d: d, group: group, vault: vault, adminOID: testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default"))}
	props := map[string]any{"tenantId": d.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
		"enablePurgeProtection": true, "softDeleteRetentionInDays": 7, "enableRbacAuthorization": rbac, "accessPolicies": []any{}}
	if !rbac {
		props["accessPolicies"] = []any{policy(d, k.adminOID, "all")}
	}
	r := d.ARM(t, http.MethodPut, k.vaultPath()+"?api-version=2023-07-01", map[string]any{"location": location, "properties": props})
	if r.Status/100 != 2 {
		t.Fatalf("create vault: %d %s", r.Status, r.Raw)
	}
	k.vaultURI = strings.TrimSuffix(props2(r.Body)["vaultUri"].(string), "/")
	if rbac {
		k.assign("00482a5a-887f-4fb3-b363-3b7fe8e74483", k.adminOID, k.vaultPath()) // Key Vault Administrator
	}
	return k
}

func props2(m map[string]any) map[string]any { return m["properties"].(map[string]any) }

func policy(d *testenv.Daemon, oid string, perms ...string) map[string]any {
	return map[string]any{"tenantId": d.Profile().TenantID, "objectId": oid, "permissions": map[string]any{"keys": perms}}
}

func (k *kms) vaultPath() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", k.d.Profile().SubscriptionID, k.group, k.vault)
}

// kv calls the vault's keys REST API.
func (k *kms) kv(method, path string, body any) testenv.ARMResponse {
	k.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return k.d.Do(k.t, method, k.vaultURI+path+sep+"api-version=7.5", k.d.Token(k.t, "https://vault.localhost/.default"), body)
}

func (k *kms) mustKV(method, path string, body any) map[string]any {
	k.t.Helper()
	r := k.kv(method, path, body)
	if r.Status/100 != 2 {
		k.t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Raw)
	}
	return r.Body
}

// createKey makes an RSA key and returns its versioned kid.
func (k *kms) createKey(name string) string {
	k.t.Helper()
	b := k.mustKV(http.MethodPost, "/keys/"+name+"/create", map[string]any{"kty": "RSA", "key_size": 2048})
	return b["key"].(map[string]any)["kid"].(string)
}

func (k *kms) rotate(name string) string {
	k.t.Helper()
	return k.mustKV(http.MethodPost, "/keys/"+name+"/rotate", nil)["key"].(map[string]any)["kid"].(string)
}

func (k *kms) setAttributes(name, version string, attrs map[string]any) {
	k.t.Helper()
	k.mustKV(http.MethodPatch, "/keys/"+name+"/"+version, map[string]any{"attributes": attrs})
}

type ident struct{ id, principal, client string }

func (k *kms) createIdentity(name string) ident {
	k.t.Helper()
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", k.d.Profile().SubscriptionID, k.group, name)
	r := k.d.ARM(k.t, http.MethodPut, id+"?api-version=2023-01-31", map[string]any{"location": "eastus"})
	if r.Status/100 != 2 {
		k.t.Fatalf("create identity: %d %s", r.Status, r.Raw)
	}
	p := props2(r.Body)
	return ident{id: id, principal: p["principalId"].(string), client: p["clientId"].(string)}
}

func (k *kms) policyOp(kind string, p map[string]any) {
	k.t.Helper()
	r := k.d.ARM(k.t, http.MethodPut, k.vaultPath()+"/accessPolicies/"+kind+"?api-version=2023-07-01",
		map[string]any{"properties": map[string]any{"accessPolicies": []any{p}}})
	if r.Status/100 != 2 {
		k.t.Fatalf("access policy %s: %d %s", kind, r.Status, r.Raw)
	}
}

func (k *kms) grant(principal string) {
	k.policyOp("add", policy(k.d, principal, "get", "list", "wrapKey", "unwrapKey"))
}

func (k *kms) assign(roleID, principal, scope string) string {
	k.t.Helper()
	name := arm.NewGUID()
	path := scope + "/providers/Microsoft.Authorization/roleAssignments/" + name + "?api-version=2022-04-01"
	r := k.d.ARM(k.t, http.MethodPut, path, map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/subscriptions/" + k.d.Profile().SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID,
		"principalId":      principal, "principalType": "ServicePrincipal"}})
	if r.Status/100 != 2 {
		k.t.Fatalf("role assignment: %d %s", r.Status, r.Raw)
	}
	return scope + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// cmkServer creates a CMK server using keyURI through identity.
func cmkServer(t testing.TB, d *testenv.Daemon, group, name, keyURI string, id ident) map[string]any {
	t.Helper()
	return createServer(t, d, group, name, map[string]any{
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{id.id: map[string]any{}}},
		"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyURI,
			"primaryUserAssignedIdentityId": id.id}},
	})
}

func writeMarker(t testing.TB, d *testenv.Daemon, srv map[string]any, marker string) {
	t.Helper()
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS marker (v text); INSERT INTO marker VALUES ('"+marker+"')"); err != nil {
		t.Fatal(err)
	}
}

func readMarker(t testing.TB, d *testenv.Daemon, srv map[string]any, marker string) {
	t.Helper()
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM marker WHERE v = $1", marker).Scan(&n); err != nil || n != 1 {
		t.Fatalf("marker rows: %d %v", n, err)
	}
}

func versionInUse(t testing.TB, d *testenv.Daemon, group, name string) string {
	enc := props(serverRaw(t, d, group, name))["dataEncryption"].(map[string]any)
	v, _ := enc["primaryKeyVersionInUse"].(string)
	return v
}

// monitored starts a daemon whose key monitor checks every 300 ms.
func monitored(t testing.TB, extra ...string) (*testenv.Daemon, string) {
	runDir := testenv.RuntimeDir(t)
	args := append([]string{"--runtime-dir", runDir, "--key-check-interval", "300ms", "--key-grace-period", "3s"}, extra...)
	return testenv.Start(t, testenv.Options{Args: args}), runDir
}

// TestKeyMonitorFollowsNewVersions: a versionless reference follows a rotation with the server
// online; after a daemon restart the DEK unwraps with the new version.
func TestKeyMonitorFollowsNewVersions(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, runDir := monitored(t)
	createGroup(t, d, "rg", "eastus")
	k := newKMS(t, d, "rg", "kvfollow", false)
	first := k.createKey("dek")
	id := k.createIdentity("srv-id")
	k.grant(id.principal)
	versionless := first[:strings.LastIndex(first, "/")]
	srv := cmkServer(t, d, "rg", "follows", versionless, id)
	if got := props(srv)["dataEncryption"].(map[string]any)["primaryKeyURI"]; got != versionless {
		t.Fatalf("primaryKeyURI = %v", got)
	}
	if v := versionInUse(t, d, "rg", "follows"); !strings.HasSuffix(first, "/"+v) {
		t.Fatalf("version in use %s, want that of %s", v, first)
	}
	writeMarker(t, d, srv, "before-rotation")

	// A client keeps querying while the key rotates: the server never goes down. Its connection
	// is opened here (no t.Fatal from the goroutine), and the goroutine is stopped by a cleanup
	// registered before it starts.
	c, err := connect(t, d, srv, "postgres")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var failures, queries atomic.Int64
	var firstFailure atomic.Value
	stop, done := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	stopClient := func() { stopOnce.Do(func() { close(stop); <-done; c.Close(context.Background()) }) }
	t.Cleanup(stopClient)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var one int
			if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
			cancel()
			queries.Add(1)
		}
	}()
	second := k.rotate("dek")
	want := second[strings.LastIndex(second, "/")+1:]
	testkit.Eventually(t, time.Minute, "the DEK rewrapped by the new version "+want, func() error {
		if v := versionInUse(t, d, "rg", "follows"); v != want {
			return fmt.Errorf("version in use %s", v)
		}
		return nil
	})
	// The client's queries span the rewrap: some ran after it.
	after := queries.Load()
	testkit.Eventually(t, time.Minute, "queries after the rewrap", func() error {
		if n := queries.Load(); n <= after+1 {
			return fmt.Errorf("%d queries, %d when the version changed", n, after)
		}
		return nil
	})
	stopClient()
	if failures.Load() != 0 {
		t.Fatalf("server went down during the version update: %d failures in %d queries (first: %v)", failures.Load(), queries.Load(), firstFailure.Load())
	}
	// The event says what happened. The monitor appends it after writing the header beside the
	// volume, so once it is there, so is the header.
	ev := waitActivity(t, d, "keyVersionUpdated", func(e activityEvent) bool { return e.Properties["keyId"] == second })
	if ev.Properties["previousKeyId"] != first || !strings.Contains(ev.Description, second) {
		t.Fatalf("keyVersionUpdated event: %+v", ev)
	}
	dirs := serverDirs(t, d)
	if h, err := volume.ReadHeader(context.Background(), filepath.Join(d.DataDir, "servers", dirs[0], "header.json")); err != nil || h.KeyVersion != want {
		t.Fatalf("header beside the volume = %+v, %v; want version %s", h, err, want)
	}
	// A daemon restart with PostgreSQL stopped: the DEK must now unwrap with the new version.
	d.Stop()
	testenv.StopDataPlane(t, runDir)
	d.StartAgain()
	srv = waitState(t, d, "rg", "follows", "Ready", time.Minute)
	waitConnect(t, d, srv)
	readMarker(t, d, srv, "before-rotation")
	if n := keyOps(auditTrail(t, d, k.vaultPath(), "dek"), time.Time{})["KeyUnwrap "+id.principal+" "+want]; n == 0 {
		t.Fatalf("the audit trail does not show the identity unwrapping with %s", want)
	}
}

// activityEvent is an entry of the activity log, as much of it as the tests read.
type activityEvent struct {
	ResourceID    string            `json:"resourceId"`
	Description   string            `json:"description"`
	Properties    map[string]string `json:"properties"`
	Level         string            `json:"level"`
	Caller        string            `json:"caller"`
	OperationName struct {
		Value string `json:"value"`
	} `json:"operationName"`
	Status struct {
		Value string `json:"value"`
	} `json:"status"`
}

// activity reads the subscription's activity log, every page.
func activity(t testing.TB, d *testenv.Daemon) []activityEvent {
	t.Helper()
	var out []activityEvent
	for next := "/subscriptions/" + d.Profile().SubscriptionID + "/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01"; next != ""; {
		r := d.ARM(t, http.MethodGet, next, nil)
		if r.Status != 200 {
			t.Fatalf("activity log: %d %s", r.Status, r.Raw)
		}
		var page struct {
			Value    []activityEvent `json:"value"`
			NextLink string          `json:"nextLink"`
		}
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Value...)
		next = page.NextLink
	}
	return out
}

// waitActivity waits for an event of the operation (flexibleServers/{op}/action) that matches.
func waitActivity(t testing.TB, d *testenv.Daemon, op string, match func(activityEvent) bool) activityEvent {
	t.Helper()
	var found activityEvent
	testkit.Eventually(t, time.Minute, "a "+op+" event in the activity log", func() error {
		events := activity(t, d)
		for _, e := range events {
			if e.OperationName.Value == "Microsoft.DBforPostgreSQL/flexibleServers/"+op+"/action" && match(e) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("%d events, none matching", len(events))
	})
	return found
}

// waitConnect waits until the server accepts a connection (it may be starting).
func waitConnect(t testing.TB, d *testenv.Daemon, srv map[string]any) {
	t.Helper()
	testkit.Eventually(t, 2*time.Minute, "the server to accept connections", func() error {
		c, err := connect(t, d, srv, "postgres")
		if err != nil {
			return err
		}
		return c.Close(context.Background())
	})
}

// lockedOut checks an Inaccessible server: the state, the key status, refused connections,
// no mount, and a reason naming the cause.
func lockedOut(t testing.TB, d *testenv.Daemon, runDir, group, name, cause string) {
	t.Helper()
	srv := waitState(t, d, group, name, "Inaccessible", time.Minute)
	p := props(srv)
	if p["dataEncryption"].(map[string]any)["primaryEncryptionKeyStatus"] != "Invalid" {
		t.Fatalf("key status = %v", p["dataEncryption"])
	}
	if reason, _ := p["stateReason"].(string); !strings.Contains(reason, cause) {
		t.Fatalf("stateReason %q does not name %q", reason, cause)
	}
	testkit.Eventually(t, time.Minute, "the Inaccessible server to refuse connections and be unmounted", func() error {
		c, err := connect(t, d, srv, "postgres")
		if err == nil {
			c.Close(context.Background())
			return errors.New("it accepts connections")
		}
		if m := testkit.MountsUnder(t, runDir); len(m) > 0 {
			return fmt.Errorf("mounted: %v", m)
		}
		return nil
	})
}

func backReady(t testing.TB, d *testenv.Daemon, group, name, marker string) {
	t.Helper()
	srv := waitState(t, d, group, name, "Ready", 2*time.Minute)
	waitConnect(t, d, srv)
	readMarker(t, d, srv, marker)
}

// TestKeyMonitorRevocation: every way a customer can revoke access makes the server
// Inaccessible; undoing it brings the server back with its data.
func TestKeyMonitorRevocation(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, runDir := monitored(t)
	createGroup(t, d, "rg", "eastus")
	k := newKMS(t, d, "rg", "kvrevoke", false)
	kid := k.createKey("dek")
	keyVersion := kid[strings.LastIndex(kid, "/")+1:]
	id := k.createIdentity("srv-id")
	k.grant(id.principal)
	srv := cmkServer(t, d, "rg", "revocable", kid, id) // pinned version
	writeMarker(t, d, srv, "kept")
	path := serverPath(d, "rg", "revocable")

	// A pinned reference ignores rotations: once the monitor has checked the key twice after the
	// rotation (a check starts only when the one before has acted), nothing changed.
	k.rotate("dek")
	waitChecksAfterRotation(t, d, k.vaultPath(), "dek", id.principal, 2)
	if v := versionInUse(t, d, "rg", "revocable"); v != keyVersion || props(serverRaw(t, d, "rg", "revocable"))["state"] != "Ready" {
		t.Fatalf("pinned server changed after a rotation: version %s, want %s", v, keyVersion)
	}
	if n := rewrapsAfterRotation(auditTrail(t, d, k.vaultPath(), "dek"), id.principal); n != 0 {
		t.Fatalf("the rotation of a pinned key caused %d wraps and unwraps", n)
	}

	causes := []struct {
		name, cause string
		revoke      func()
		restore     func()
	}{
		{"pinned version disabled", "disabled", func() { k.setAttributes("dek", keyVersion, map[string]any{"enabled": false}) },
			func() { k.setAttributes("dek", keyVersion, map[string]any{"enabled": true}) }},
		{"pinned version expired", "expired", func() { k.setAttributes("dek", keyVersion, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}) },
			func() {
				k.setAttributes("dek", keyVersion, map[string]any{"exp": time.Now().Add(365 * 24 * time.Hour).Unix()})
			}},
		{"key deleted", "no longer exists", func() { k.mustKV(http.MethodDelete, "/keys/dek", nil) },
			func() {
				k.mustKV(http.MethodPost, "/deletedkeys/dek/recover", nil)
			}},
		{"access policy removed", "refused", func() { k.policyOp("remove", policy(d, id.principal, "get", "list", "wrapKey", "unwrapKey")) },
			func() { k.grant(id.principal) }},
		{"vault deleted", "no longer exists", func() {
			if r := d.ARM(t, http.MethodDelete, k.vaultPath()+"?api-version=2023-07-01", nil); r.Status/100 != 2 {
				t.Fatalf("delete vault: %d %s", r.Status, r.Raw)
			}
		}, func() {
			r := d.ARM(t, http.MethodPut, k.vaultPath()+"?api-version=2023-07-01", map[string]any{"location": "eastus",
				"properties": map[string]any{"tenantId": d.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "createMode": "recover"}})
			if r.Status/100 != 2 {
				t.Fatalf("recover vault: %d %s", r.Status, r.Raw)
			}
		}},
	}
	for i, c := range causes {
		t.Run(c.name, func(t *testing.T) {
			c.revoke()
			lockedOut(t, d, runDir, "rg", "revocable", c.cause)
			if i == 0 {
				// While Inaccessible: start/stop/restart refused with the cause; show works.
				for _, action := range []string{"start", "stop", "restart"} {
					r := d.ARM(t, http.MethodPost, path+"/"+action+"?api-version=2025-08-01", nil)
					if r.Status != 409 || r.ErrorCode() != "ServerInaccessible" || !strings.Contains(r.ErrorMessage(), c.cause) {
						t.Fatalf("%s while Inaccessible: %d %s", action, r.Status, r.Raw)
					}
				}
			}
			c.restore()
			backReady(t, d, "rg", "revocable", "kept")
		})
	}

	t.Run("identity deleted, server updated to a new identity", func(t *testing.T) {
		if r := d.ARM(t, http.MethodDelete, id.id+"?api-version=2023-01-31", nil); r.Status/100 != 2 {
			t.Fatalf("delete identity: %d", r.Status)
		}
		lockedOut(t, d, runDir, "rg", "revocable", "deleted")
		fresh := k.createIdentity("srv-id-2")
		k.grant(fresh.principal)
		r := d.ARM(t, http.MethodPatch, path+"?api-version=2025-08-01", map[string]any{
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{fresh.id: map[string]any{}}},
			"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": kid,
				"primaryUserAssignedIdentityId": fresh.id}}})
		if r.Status != 202 {
			t.Fatalf("repairing update: %d %s", r.Status, r.Raw)
		}
		if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute); op["status"] != "Succeeded" {
			t.Fatalf("repairing update: %v", op)
		}
		backReady(t, d, "rg", "revocable", "kept")
	})

	t.Run("delete while Inaccessible", func(t *testing.T) {
		k.setAttributes("dek", keyVersion, map[string]any{"enabled": false})
		lockedOut(t, d, runDir, "rg", "revocable", "disabled")
		r := d.ARM(t, http.MethodDelete, path+"?api-version=2025-08-01", nil)
		if r.Status != 202 {
			t.Fatalf("delete: %d %s", r.Status, r.Raw)
		}
		d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute)
		if r := d.ARM(t, http.MethodGet, path+"?api-version=2025-08-01", nil); r.Status != 404 {
			t.Fatalf("server after delete: %d", r.Status)
		}
	})
}

// TestKeyMonitorRBACAndOutage: removing the RBAC role locks the server; a key-store outage
// shorter than the grace period does not; a longer one does, until the store is back.
func TestKeyMonitorRBACAndOutage(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	outage := filepath.Join(t.TempDir(), "outage")
	// A grace period far longer than the brief outage below needs (two checks, 300 ms apart).
	const grace = 10 * time.Second
	d, runDir := monitored(t, "--test-keystore-outage-file", outage, "--key-grace-period", grace.String())
	createGroup(t, d, "rg", "eastus")
	k := newKMS(t, d, "rg", "kvrbac", true)
	kid := k.createKey("dek")
	id := k.createIdentity("srv-id")
	keyScope := k.vaultPath() + "/keys/dek"
	assignment := k.assign("e147488a-f6f5-4113-8e2d-b22465e65bf6", id.principal, keyScope) // Crypto Service Encryption User
	srv := cmkServer(t, d, "rg", "rbacsrv", kid[:strings.LastIndex(kid, "/")], id)
	writeMarker(t, d, srv, "rbac")

	if r := d.ARM(t, http.MethodDelete, assignment+"?api-version=2022-04-01", nil); r.Status/100 != 2 {
		t.Fatalf("delete role assignment: %d %s", r.Status, r.Raw)
	}
	lockedOut(t, d, runDir, "rg", "rbacsrv", "refused")
	k.assign("e147488a-f6f5-4113-8e2d-b22465e65bf6", id.principal, keyScope)
	backReady(t, d, "rg", "rbacsrv", "rbac")

	// A brief outage: held until the monitor has met it twice (the second failure of a streak
	// is the one weighed against the grace period), then lifted. The server never leaves Ready:
	// the monitor made no Ready → Inaccessible transition, and a check after the outage found
	// the key valid.
	const (
		transient = `pgflex_key_checks_total{result="transient",role="primary"}`
		invalid   = `pgflex_key_checks_total{result="invalid",role="primary"}`
		valid     = `pgflex_key_checks_total{result="valid",role="primary"}`
		locked    = `pgflex_server_state_transitions_total{from="Ready",to="Inaccessible"}`
	)
	t.Cleanup(func() { os.Remove(outage) })
	before := metrics(t, d)
	failedChecks := func(m map[string]float64) float64 { return m[transient] + m[invalid] }
	began := time.Now()
	if err := os.WriteFile(outage, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "two checks that met the outage", func() error {
		if n := failedChecks(metrics(t, d)) - failedChecks(before); n < 2 {
			return fmt.Errorf("%v so far", n)
		}
		return nil
	})
	if err := os.Remove(outage); err != nil {
		t.Fatal(err)
	}
	if held := time.Since(began); held >= grace {
		t.Fatalf("the brief outage was held %s, not under the grace period of %s: this machine is too slow for the check", held, grace)
	}
	waitMetric(t, d, valid, metrics(t, d)[valid]+1)
	if after := metrics(t, d); after[locked] != before[locked] {
		t.Fatalf("the server was locked by a brief outage (Ready → Inaccessible %v times, %v before)", after[locked], before[locked])
	}
	if st := props(serverRaw(t, d, "rg", "rbacsrv"))["state"]; st != "Ready" {
		t.Fatalf("server %v after a brief outage", st)
	}
	// An outage longer than the grace period locks the server, not before the grace period is
	// over; the store's return unlocks it.
	began = time.Now()
	if err := os.WriteFile(outage, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lockedOut(t, d, runDir, "rg", "rbacsrv", "grace period")
	if el := time.Since(began); el < grace {
		t.Fatalf("locked %s into the outage, before the grace period of %s was over", el, grace)
	}
	if err := os.Remove(outage); err != nil {
		t.Fatal(err)
	}
	backReady(t, d, "rg", "rbacsrv", "rbac")
	m := metrics(t, d)
	for _, series := range []string{transient, locked, `pgflex_key_check_duration_seconds_count`} {
		if m[series] == 0 {
			t.Fatalf("metrics lack %s", series)
		}
	}
}

// metrics reads the daemon's /metrics: each series (name and labels, as printed) to its value.
func metrics(t testing.TB, d *testenv.Daemon) map[string]float64 {
	t.Helper()
	r := d.Do(t, http.MethodGet, "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %d", r.Status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.Raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric waits until a series reaches at least min.
func waitMetric(t testing.TB, d *testenv.Daemon, series string, min float64) {
	t.Helper()
	testkit.Eventually(t, time.Minute, fmt.Sprintf("%s to reach %v", series, min), func() error {
		if v := metrics(t, d)[series]; v < min {
			return fmt.Errorf("it is %v", v)
		}
		return nil
	})
}

// TestKeyMonitorFollowsGeoKeyVersions: a versionless geo-backup key is followed too, by the
// geo identity, without touching the primary DEK.
func TestKeyMonitorFollowsGeoKeyVersions(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	d, _ := monitored(t)
	createGroup(t, d, "rg", "eastus")
	east := newKMS(t, d, "rg", "kvgeoeast", false)
	west := newKMSIn(t, d, "rg", "kvgeowest", "westus", false)
	pkid := east.createKey("dek")
	gkid := west.createKey("geo")
	pid := east.createIdentity("primary-id")
	gid := west.createIdentity("geo-id")
	east.grant(pid.principal)
	west.grant(gid.principal)
	srv := createServer(t, d, "rg", "geofollow", map[string]any{
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{pid.id: map[string]any{}, gid.id: map[string]any{}}},
		"properties": map[string]any{"backup": map[string]any{"geoRedundantBackup": "Enabled"},
			"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": pkid, "primaryUserAssignedIdentityId": pid.id,
				"geoBackupKeyURI": gkid[:strings.LastIndex(gkid, "/")], "geoBackupUserAssignedIdentityId": gid.id}},
	})
	enc := props(srv)["dataEncryption"].(map[string]any)
	if !strings.HasSuffix(gkid, "/"+enc["geoBackupKeyVersionInUse"].(string)) {
		t.Fatalf("geo version in use %v, want that of %s", enc["geoBackupKeyVersionInUse"], gkid)
	}
	primaryBefore := enc["primaryKeyVersionInUse"]
	nk := west.rotate("geo")
	want := nk[strings.LastIndex(nk, "/")+1:]
	testkit.Eventually(t, time.Minute, "the geo-backup DEK rewrapped by "+want, func() error {
		enc = props(serverRaw(t, d, "rg", "geofollow"))["dataEncryption"].(map[string]any)
		if enc["geoBackupKeyVersionInUse"] != want {
			return fmt.Errorf("dataEncryption %v", enc)
		}
		return nil
	})
	if enc["primaryKeyVersionInUse"] != primaryBefore || enc["geoBackupEncryptionKeyStatus"] != "Valid" {
		t.Fatalf("primary changed or geo status wrong: %v", enc)
	}
	audit := d.ARM(t, http.MethodGet, west.vaultPath()+"/auditEvents?api-version=2023-07-01&keyName=geo", nil)
	if !bytes.Contains(audit.Raw, []byte(gid.principal)) || bytes.Contains(audit.Raw, []byte(pid.principal)) {
		t.Fatalf("the geo key must be used by the geo identity only: %s", audit.Raw)
	}
}
