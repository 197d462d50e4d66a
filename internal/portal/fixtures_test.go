package portal_test

// What the portal's flow tests prepare and check through the API, not through the browser: the
// seed's preparation steps (a vault with purge protection, a key, an identity with rights on
// it) when a test is about something else, and the proof afterwards that what the browser did is
// real (ARM GETs, psql on the server).

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const (
	apiPostgres = "2025-08-01"
	apiIdentity = "2023-01-31"
	apiVault    = "2023-07-01"
	apiGroups   = "2021-04-01"
	apiKeyData  = "7.4"
)

// needServers skips (or under CI fails) a test that creates PostgreSQL servers on a machine
// without their parts.
func needServers(t *testing.T) {
	t.Helper()
	testkit.Require(t, testkit.Root, testkit.FUSE, testkit.PostgreSQL, testkit.PgBackRest, testkit.Accounts, testkit.PSQL, testkit.LocalhostNames, testkit.Chromium)
}

// fx is a test daemon and the administrator's API calls on it.
type fx struct {
	t *testing.T
	d *testenv.Daemon
}

func newFx(t *testing.T, d *testenv.Daemon) *fx { return &fx{t: t, d: d} }

func (f *fx) sub() string { return f.d.Profile().SubscriptionID }

func (f *fx) groupPath(group string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", f.sub(), group)
}

// ServerPath is a server's ARM id.
func (f *fx) ServerPath(group, name string) string {
	return f.groupPath(group) + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name
}

// must sends an ARM request as the administrator and fails the test unless it succeeds.
func (f *fx) must(method, path, apiVersion string, body any) map[string]any {
	f.t.Helper()
	r := f.d.ARM(f.t, method, path+"?api-version="+apiVersion, body)
	if r.Status/100 != 2 {
		f.t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Raw)
	}
	if op := r.Header.Get("Azure-AsyncOperation"); op != "" && (r.Status == http.StatusAccepted || r.Status == http.StatusCreated) {
		st := f.d.WaitOperation(f.t, op, 3*time.Minute)
		if st["status"] != "Succeeded" {
			f.t.Fatalf("%s %s: operation %v", method, path, st)
		}
		if method != http.MethodDelete {
			return f.must(http.MethodGet, path, apiVersion, nil)
		}
	}
	return r.Body
}

// Group creates a resource group.
func (f *fx) Group(name, location string) {
	f.t.Helper()
	f.must(http.MethodPut, f.groupPath(name), apiGroups, map[string]any{"location": location})
}

// Identity creates a user-assigned managed identity and returns its id and principal id.
func (f *fx) Identity(group, name, location string) (id, principal string) {
	f.t.Helper()
	id = f.groupPath(group) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	b := f.must(http.MethodPut, id, apiIdentity, map[string]any{"location": location})
	return id, props(b)["principalId"].(string)
}

// Vault is a key vault made through the API, with the administrator allowed everything.
type Vault struct {
	f    *fx
	ID   string
	URI  string // https://{name}.vault.localhost:PORT (no trailing slash)
	Name string
}

// Vault creates a key vault with soft delete and, when purgeProtection, purge protection.
func (f *fx) Vault(group, name, location string, purgeProtection bool) *Vault {
	f.t.Helper()
	v := &Vault{f: f, ID: f.groupPath(group) + "/providers/Microsoft.KeyVault/vaults/" + name, Name: name}
	admin := testkit.TokenOID(f.t, f.d.Token(f.t, "https://management.azure.com/.default"))
	p := map[string]any{"tenantId": f.d.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
		"softDeleteRetentionInDays": 7, "accessPolicies": []any{v.policy(admin, "all")}}
	if purgeProtection {
		p["enablePurgeProtection"] = true
	}
	b := f.must(http.MethodPut, v.ID, apiVault, map[string]any{"location": location, "properties": p})
	v.URI = strings.TrimSuffix(props(b)["vaultUri"].(string), "/")
	return v
}

func (v *Vault) policy(oid string, perms ...string) map[string]any {
	return map[string]any{"tenantId": v.f.d.Profile().TenantID, "objectId": oid, "permissions": map[string]any{"keys": perms}}
}

// Allow gives a principal the rights a server's identity needs on the vault's keys.
func (v *Vault) Allow(principal string) {
	v.f.t.Helper()
	v.f.must(http.MethodPut, v.ID+"/accessPolicies/add", apiVault, map[string]any{"properties": map[string]any{
		"accessPolicies": []any{v.policy(principal, "get", "list", "wrapKey", "unwrapKey")}}})
}

// Call sends a Key Vault REST request (a path on the vault, or an absolute URL) as the
// administrator and fails the test unless it succeeds.
func (v *Vault) Call(method, path string, body any) map[string]any {
	v.f.t.Helper()
	url := path
	if strings.HasPrefix(path, "/") {
		url = v.URI + path
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	r := v.f.d.Do(v.f.t, method, url+sep+"api-version="+apiKeyData, v.f.d.Token(v.f.t, "https://vault.localhost/.default"), body)
	if r.Status/100 != 2 {
		v.f.t.Fatalf("%s %s: %d %s", method, url, r.Status, r.Raw)
	}
	return r.Body
}

// Key creates an RSA key and returns its versioned id.
func (v *Vault) Key(name string) string {
	v.f.t.Helper()
	return v.Call(http.MethodPost, "/keys/"+name+"/create", map[string]any{"kty": "RSA", "key_size": 2048})["key"].(map[string]any)["kid"].(string)
}

// Rotate makes a new version of a key and returns its id.
func (v *Vault) Rotate(name string) string {
	v.f.t.Helper()
	return v.Call(http.MethodPost, "/keys/"+name+"/rotate", nil)["key"].(map[string]any)["kid"].(string)
}

// SetEnabled enables or disables a key (all its versions' use, as Key Vault's key attribute).
func (v *Vault) SetEnabled(name string, enabled bool) {
	v.f.t.Helper()
	v.Call(http.MethodPatch, "/keys/"+name, map[string]any{"attributes": map[string]any{"enabled": enabled}})
}

// Server reads a server.
func (f *fx) Server(group, name string) map[string]any {
	f.t.Helper()
	return f.must(http.MethodGet, f.ServerPath(group, name), apiPostgres, nil)
}

// ServerStatus is a server's GET status code (404 once it is gone).
func (f *fx) ServerStatus(group, name string) int {
	f.t.Helper()
	return f.d.ARM(f.t, http.MethodGet, f.ServerPath(group, name)+"?api-version="+apiPostgres, nil).Status
}

// WaitState waits until a server's state is want.
func (f *fx) WaitState(group, name, want string, timeout time.Duration) map[string]any {
	f.t.Helper()
	var s map[string]any
	testkit.Eventually(f.t, timeout, "server "+name+" "+want, func() error {
		if s = f.Server(group, name); props(s)["state"] != want {
			return fmt.Errorf("it is %v", props(s)["state"])
		}
		return nil
	})
	return s
}

// AllowLoopback adds a firewall rule for 127.0.0.1 (servers admit no client without one).
func (f *fx) AllowLoopback(group, name string) {
	f.t.Helper()
	f.must(http.MethodPut, f.ServerPath(group, name)+"/firewallRules/loopback", apiPostgres,
		map[string]any{"properties": map[string]any{"startIpAddress": "127.0.0.1", "endIpAddress": "127.0.0.1"}})
}

// PSQL runs sql on a server through the PostgreSQL endpoint, by its host name, with TLS
// verified against pgflex's CA, and returns psql's unaligned output.
func (f *fx) PSQL(group, name, user, password, sql string) string {
	f.t.Helper()
	out, err := f.TryPSQL(group, name, user, password, sql)
	if err != nil {
		f.t.Fatalf("psql on %s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(out)
}

// TryPSQL is PSQL that returns psql's failure instead of failing the test.
func (f *fx) TryPSQL(group, name, user, password, sql string) (string, error) {
	f.t.Helper()
	host := props(f.Server(group, name))["fullyQualifiedDomainName"].(string)
	ca := filepath.Join(f.t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte(f.d.Profile().CACertificate), 0o600); err != nil {
		f.t.Fatal(err)
	}
	conninfo := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=verify-full sslrootcert=%s", host, f.d.PostgresPort(), user, ca)
	cmd := exec.Command("psql", conninfo, "-X", "-A", "-t", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=15")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func props(m map[string]any) map[string]any {
	p, _ := m["properties"].(map[string]any)
	return p
}

// DataEncryption is a server's properties.dataEncryption.
func DataEncryption(server map[string]any) map[string]any {
	de, _ := props(server)["dataEncryption"].(map[string]any)
	return de
}
