package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// pgCLI runs the real pgflex binary against a real daemon whose servers are real: encrypted
// volumes with PostgreSQL inside.
type pgCLI struct {
	t   *testing.T
	d   *testenv.Daemon
	cfg string
}

// requireServers skips where servers cannot run at all, saying why (and fails instead where
// every end-to-end test must run: see testkit.Require).
func requireServers(t *testing.T) {
	t.Helper()
	testkit.Require(t, append(testkit.DataPlane, testkit.PSQL, testkit.LocalhostNames)...)
}

func newPgCLI(t *testing.T) *pgCLI {
	// Each test has a daemon, data and runtime directory and port range of its own: they run
	// side by side (two at a time on two cores), as the provider's end-to-end tests do.
	t.Parallel()
	requireServers(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t)}})
	return &pgCLI{t: t, d: d, cfg: t.TempDir()}
}

func (c *pgCLI) run(args ...string) testenv.CLIResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return c.d.CLI(ctx, c.cfg, "", args...)
}

func (c *pgCLI) ok(args ...string) testenv.CLIResult {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != 0 {
		c.t.Fatalf("pgflex %s: exit %d\nstderr: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

func (c *pgCLI) tsv(args ...string) string {
	c.t.Helper()
	return strings.TrimSpace(c.ok(append(args, "-o", "tsv")...).Stdout)
}

func (c *pgCLI) json(v any, args ...string) {
	c.t.Helper()
	r := c.ok(args...)
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		c.t.Fatalf("pgflex %s printed no JSON: %v\n%s", strings.Join(args, " "), err, r.Stdout)
	}
}

func (c *pgCLI) fails(code int, want string, args ...string) testenv.CLIResult {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != code || !strings.Contains(r.Stderr, want) || r.Stdout != "" {
		c.t.Fatalf("pgflex %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, code, want)
	}
	return r
}

// TestPostgresServerFlowsThroughCLI drives one service-managed-key server through its whole
// life with the CLI, as a user would: create with a generated password, show, list, queries over
// TLS with the certificate verified (execute through the driver, connect through psql), databases,
// update (tags, retention, password), stop, start, restart, delete.
func TestPostgresServerFlowsThroughCLI(t *testing.T) {
	c := newPgCLI(t)
	fs := []string{"postgres", "flexible-server"}
	pg := func(args ...string) []string { return append(append([]string{}, fs...), args...) }
	c.ok("group", "create", "-n", "rg1", "-l", "eastus")

	// Refused before anything is created.
	c.fails(1, "ERROR: User assigned identity and keyvault key need to be provided together. Please provide --identity and --key together.",
		pg("create", "-g", "rg1", "-n", "pgcli-one", "--identity", "some-identity")...)
	c.fails(1, "ERROR: Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.",
		pg("create", "-g", "rg1", "-n", "pgcli-one", "--backup-identity", "a", "--backup-key", "https://v.vault.localhost/keys/k")...)
	if out := c.tsv(pg("list", "-g", "rg1", "--query", "length(@)")...); out != "0" {
		t.Fatalf("a refused create left a server behind: %s", out)
	}

	var created map[string]any
	r := c.ok(pg("create", "-g", "rg1", "-n", "pgcli-one", "-u", "pgadmin", "--tier", "Burstable", "--sku-name", "Standard_B1ms",
		"--storage-size", "32", "--tags", "env=test")...)
	if err := json.Unmarshal([]byte(r.Stdout), &created); err != nil {
		t.Fatalf("create printed no JSON: %v\n%s", err, r.Stdout)
	}
	password, _ := created["password"].(string)
	port, _ := created["port"].(float64)
	// The server's host name, on the daemon's PostgreSQL endpoint (a free port in tests: it
	// appears in the URI since it is not 5432).
	endpoint := fmt.Sprintf("pgcli-one.postgres.localhost:%d", c.d.PostgresPort())
	if len(password) != 22 || created["username"] != "pgadmin" || created["host"] != "pgcli-one.postgres.localhost" ||
		int(port) != c.d.PostgresPort() || created["skuname"] != "Standard_B1ms" || created["databaseName"] != "postgres" ||
		created["connectionString"] != "postgresql://pgadmin:"+password+"@"+endpoint+"/postgres?sslmode=require" {
		t.Fatalf("create output: %s", r.Stdout)
	}
	// The connection string create printed works as printed (psql resolves the name itself).
	if out, err := exec.Command("psql", created["connectionString"].(string), "-X", "-A", "-t", "-c", "select current_user").CombinedOutput(); err != nil ||
		strings.TrimSpace(string(out)) != "pgadmin" {
		t.Fatalf("psql %s: %v %s", created["connectionString"], err, out)
	}
	if !strings.Contains(r.Stderr, "Make a note of your password.") || strings.Contains(r.Stderr, password) {
		t.Errorf("create stderr: %s", r.Stderr)
	}
	if strings.Contains(c.d.Logs(), password) {
		t.Error("the generated password is in the daemon's log")
	}

	var shown map[string]any
	c.json(&shown, pg("show", "-g", "rg1", "-n", "pgcli-one")...)
	if shown["state"] != "Ready" || shown["dataEncryption"].(map[string]any)["type"] != "SystemManaged" ||
		shown["tags"].(map[string]any)["env"] != "test" || shown["resourceGroup"] != "rg1" || shown["version"] != created["version"] {
		t.Fatalf("show: %v", shown)
	}
	if out := c.tsv(pg("list", "--query", "[].name")...); out != "pgcli-one" {
		t.Fatalf("list: %q", out)
	}

	// Queries over TLS (verify-full against the profile's CA).
	var rows []map[string]any
	c.json(&rows, pg("execute", "-n", "pgcli-one", "-u", "pgadmin", "-p", password,
		"-q", "select 1 as one, current_user as who, ssl from pg_stat_ssl where pid = pg_backend_pid()")...)
	if len(rows) != 1 || rows[0]["one"] != float64(1) || rows[0]["who"] != "pgadmin" || rows[0]["ssl"] != true {
		t.Fatalf("execute: %v", rows)
	}
	r = c.ok(pg("connect", "-n", "pgcli-one", "-p", password, "-q", "select 'psql-' || 'marker' as m, current_setting('ssl') as tls")...)
	if !strings.Contains(r.Stdout, "psql-marker") || !strings.Contains(r.Stdout, " on") {
		t.Fatalf("connect -q: %q %s", r.Stdout, r.Stderr)
	}

	// Databases. az's default collation is en_US.utf8, which a host may lack (the data plane
	// then refuses it); C.utf8 exists wherever PostgreSQL runs.
	c.ok(pg("db", "create", "-g", "rg1", "-s", "pgcli-one", "-d", "appdb", "--charset", "UTF8", "--collation", "C.utf8")...)
	if out := c.tsv(pg("db", "list", "-g", "rg1", "-s", "pgcli-one", "--query", "[?name=='appdb'].charset")...); !strings.EqualFold(out, "UTF8") {
		t.Fatalf("db list: %q", out)
	}
	if out := c.tsv(pg("db", "show", "-g", "rg1", "-s", "pgcli-one", "-d", "appdb", "--query", "name")...); out != "appdb" {
		t.Fatalf("db show: %q", out)
	}
	c.json(&rows, pg("execute", "-n", "pgcli-one", "-p", password, "-d", "appdb",
		"-q", "create table t (x int); insert into t values (7), (8); select sum(x) as total, current_database() as db from t")...)
	if len(rows) != 1 || rows[0]["total"] != float64(15) || rows[0]["db"] != "appdb" {
		t.Fatalf("execute in appdb: %v", rows)
	}

	// The printed connection string works as it is.
	var cs string
	cs = c.tsv(pg("show-connection-string", "-s", "pgcli-one", "-u", "pgadmin", "-p", password, "-d", "appdb", "--query", "connectionStrings.psql_cmd")...)
	out, err := exec.Command("psql", cs, "-X", "-A", "-t", "-c", "select count(*) from t").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Fatalf("psql %s: %v %s", cs, err, out)
	}

	// Update: tags, retention, password.
	var updated map[string]any
	newPassword := "N3w-" + password[:10] + "!x"
	c.json(&updated, pg("update", "-g", "rg1", "-n", "pgcli-one", "--tags", "env=prod", "owner=db", "--backup-retention", "14", "-p", newPassword)...)
	if updated["tags"].(map[string]any)["env"] != "prod" || updated["backup"].(map[string]any)["backupRetentionDays"] != float64(14) ||
		updated["state"] != "Ready" {
		t.Fatalf("update: %v", updated)
	}
	c.fails(1, "Unable to connect to flexible server", pg("execute", "-n", "pgcli-one", "-p", password, "-q", "select 1")...)
	c.json(&rows, pg("execute", "-n", "pgcli-one", "-p", newPassword, "-q", "select 2 as two")...)
	if len(rows) != 1 || rows[0]["two"] != float64(2) {
		t.Fatalf("execute with the new password: %v", rows)
	}

	// Firewall rules: create made one for this machine's address towards the endpoint
	// (127.0.0.1); without a rule for it, the endpoint refuses as Azure does.
	rule, _ := created["firewallName"].(string)
	var rules []map[string]any
	c.json(&rules, pg("firewall-rule", "list", "-g", "rg1", "-n", "pgcli-one")...)
	if len(rules) != 1 || rules[0]["name"] != rule || rules[0]["startIpAddress"] != "127.0.0.1" || rules[0]["endIpAddress"] != "127.0.0.1" {
		t.Fatalf("rules after create (firewallName %q): %v", rule, rules)
	}
	refused := `no pg_hba.conf entry for host "127.0.0.1", user "pgadmin", database "postgres", SSL encryption`
	c.ok(pg("firewall-rule", "delete", "-g", "rg1", "-n", "pgcli-one", "-r", rule, "--yes")...)
	c.fails(1, refused, pg("execute", "-n", "pgcli-one", "-p", newPassword, "-q", "select 1")...)
	c.ok(pg("firewall-rule", "create", "-g", "rg1", "-n", "pgcli-one", "-r", "local", "--start-ip-address", "127.0.0.2")...)
	c.fails(1, refused, pg("execute", "-n", "pgcli-one", "-p", newPassword, "-q", "select 1")...)
	c.ok(pg("firewall-rule", "update", "-g", "rg1", "-n", "pgcli-one", "-r", "local", "--start-ip-address", "127.0.0.1")...)
	var ruleShown map[string]any
	c.json(&ruleShown, pg("firewall-rule", "show", "-g", "rg1", "-n", "pgcli-one", "-r", "local")...)
	if ruleShown["startIpAddress"] != "127.0.0.1" || ruleShown["endIpAddress"] != "127.0.0.2" {
		t.Fatalf("rule after update: %v", ruleShown)
	}
	c.json(&rows, pg("execute", "-n", "pgcli-one", "-p", newPassword, "-q", "select 3 as three")...)
	if len(rows) != 1 || rows[0]["three"] != float64(3) {
		t.Fatalf("execute once a rule admits 127.0.0.1 again: %v", rows)
	}
	c.fails(1, "You cannot enable data encryption on a server that was not created with data encryption.",
		pg("update", "-g", "rg1", "-n", "pgcli-one", "--identity", "some-identity", "--key", "https://v.vault.localhost/keys/k")...)

	// Stop, start, restart.
	if r := c.ok(pg("stop", "-g", "rg1", "-n", "pgcli-one")...); r.Stdout != "" {
		t.Fatalf("stop printed %q", r.Stdout)
	}
	if st := c.tsv(pg("show", "-g", "rg1", "-n", "pgcli-one", "--query", "state")...); st != "Stopped" {
		t.Fatalf("state after stop: %s", st)
	}
	c.fails(1, "Unable to connect to flexible server", pg("execute", "-n", "pgcli-one", "-p", newPassword, "-q", "select 1")...)
	c.ok(pg("start", "-g", "rg1", "-n", "pgcli-one")...)
	c.ok(pg("restart", "-g", "rg1", "-n", "pgcli-one")...)
	if st := c.tsv(pg("show", "-g", "rg1", "-n", "pgcli-one", "--query", "state")...); st != "Ready" {
		t.Fatalf("state after start and restart: %s", st)
	}
	c.json(&rows, pg("execute", "-n", "pgcli-one", "-p", newPassword, "-d", "appdb", "-q", "select count(*) as n from t")...)
	if len(rows) != 1 || rows[0]["n"] != float64(2) {
		t.Fatalf("data after stop/start/restart: %v", rows)
	}

	// Delete a database, then the server.
	c.ok(pg("db", "delete", "-g", "rg1", "-s", "pgcli-one", "-d", "appdb", "--yes")...)
	if out := c.tsv(pg("db", "list", "-g", "rg1", "-s", "pgcli-one", "--query", "[?name=='appdb'] | length(@)")...); out != "0" {
		t.Fatalf("db list after delete: %q", out)
	}
	c.fails(1, "Use --yes", pg("delete", "-g", "rg1", "-n", "pgcli-one")...)
	c.ok(pg("delete", "-g", "rg1", "-n", "pgcli-one", "--yes")...)
	c.fails(3, "ResourceNotFound", pg("show", "-g", "rg1", "-n", "pgcli-one")...)
}

// TestPostgresCustomerManagedKeyFlowsThroughCLI runs the seed document's CLI blocks with pgflex
// in place of az, on real servers whose keys live in the real key store: create with a
// customer-managed key without and with geo-redundant backup, update the key (a new version) and
// the geo-backup key, and each error the document quotes, client-side and service-side.
func TestPostgresCustomerManagedKeyFlowsThroughCLI(t *testing.T) {
	c := newPgCLI(t)
	pg := func(args ...string) []string { return append([]string{"postgres", "flexible-server"}, args...) }
	small := []string{"--tier", "Burstable", "--sku-name", "Standard_B1ms", "--storage-size", "32", "-u", "pgadmin"}

	// Preparation (the seed's prerequisites): a key store and an identity with get, list,
	// wrapKey and unwrapKey in the server's region, and another pair in its paired region.
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
	prepare := func(vault, identity, location string) (kid, identityID string) {
		c.ok("keyvault", "create", "-g", "rg", "-n", vault, "-l", location, "--enable-purge-protection", "true", "-o", "none")
		kid = c.tsv("keyvault", "key", "create", "--vault-name", vault, "-n", "key", "--query", "key.kid")
		principal := c.tsv("identity", "create", "-g", "rg", "-n", identity, "-l", location, "--query", "principalId")
		c.ok("keyvault", "set-policy", "-g", "rg", "-n", vault, "--object-id", principal, "--key-permissions", "wrapKey", "unwrapKey", "get", "list", "-o", "none")
		return kid, c.tsv("identity", "show", "-g", "rg", "-n", identity, "--query", "id")
	}
	kid, identityID := prepare("pgcmkvault", "pgcmkid", "eastus")
	geoKid, geoIdentityID := prepare("pggeovault", "pggeoid", "westus")

	// "If your server doesn't have geo-redundant backups enabled".
	var created map[string]any
	c.json(&created, pg(append([]string{"create", "-g", "rg", "-n", "cmk-one", "--geo-redundant-backup", "Disabled",
		"--identity", "pgcmkid", "--key", kid}, small...)...)...)
	password := created["password"].(string)
	var de map[string]any
	c.json(&de, pg("show", "-g", "rg", "-n", "cmk-one", "--query", "dataEncryption")...)
	if de["type"] != "AzureKeyVault" || de["primaryKeyUri"] != kid || !strings.EqualFold(de["primaryUserAssignedIdentityId"].(string), identityID) {
		t.Fatalf("dataEncryption = %v", de)
	}
	if ids := c.tsv(pg("identity", "list", "-g", "rg", "-s", "cmk-one", "--query", "keys(userAssignedIdentities)")...); !strings.EqualFold(ids, identityID) {
		t.Fatalf("identity list = %q, want %s", ids, identityID)
	}
	var rows []map[string]any
	c.json(&rows, pg("execute", "-n", "cmk-one", "-p", password, "-q", "select 'encrypted' as v")...)
	if len(rows) != 1 || rows[0]["v"] != "encrypted" {
		t.Fatalf("execute on the CMK server: %v", rows)
	}

	// "If your server has geo-redundant backups enabled".
	c.ok(pg(append([]string{"create", "-g", "rg", "-n", "cmk-geo", "--geo-redundant-backup", "Enabled",
		"--identity", "pgcmkid", "--key", kid, "--backup-identity", "pggeoid", "--backup-key", geoKid}, small...)...)...)
	c.json(&de, pg("show", "-g", "rg", "-n", "cmk-geo", "--query", "dataEncryption")...)
	if de["geoBackupKeyUri"] != geoKid || !strings.EqualFold(de["geoBackupUserAssignedIdentityId"].(string), geoIdentityID) || de["primaryKeyUri"] != kid {
		t.Fatalf("geo dataEncryption = %v", de)
	}

	// The errors the document quotes.
	c.fails(1, "ERROR: User assigned identity and keyvault key need to be provided together. Please provide --identity and --key together.",
		pg("update", "-g", "rg", "-n", "cmk-one", "--identity", "pgcmkid")...)
	c.fails(1, "ERROR: User assigned identity and keyvault key need to be provided together. Please provide --backup-identity and --backup-key together.",
		pg("update", "-g", "rg", "-n", "cmk-geo", "--backup-identity", "pggeoid")...)
	missing := kid[:strings.Index(kid, "/keys/")] + "/keys/missing"
	r := c.fails(1, "Code: AzureKeyVaultKeyNameNotFound\nMessage: The operation could not be completed because the Azure Key Vault Key name '"+missing+
		"' does not exist or User Assigned Identity does not have Get access to the Key",
		pg("update", "-g", "rg", "-n", "cmk-one", "--identity", "pgcmkid", "--key", missing)...)
	if !strings.Contains(r.Stderr, "ERROR: (AzureKeyVaultKeyNameNotFound) ") {
		t.Errorf("not az's error form: %s", r.Stderr)
	}
	c.fails(1, "ERROR: Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.",
		pg("update", "-g", "rg", "-n", "cmk-one", "--backup-identity", "pggeoid", "--backup-key", geoKid)...)

	// An identity passed to update is added to the server even when the update then fails.
	c.ok("identity", "create", "-g", "rg", "-n", "nopermid", "-l", "eastus", "-o", "none")
	c.fails(1, "AzureKeyVaultKeyNameNotFound", pg("update", "-g", "rg", "-n", "cmk-one", "--identity", "nopermid", "--key", kid)...)
	if ids := c.tsv(pg("identity", "list", "-g", "rg", "-s", "cmk-one", "--query", "keys(userAssignedIdentities) | length(@)")...); ids != "2" {
		t.Fatalf("identities after the failed update: %s", ids)
	}

	// Update to the key's new version: the server uses it, data stays readable.
	newKid := c.tsv("keyvault", "key", "rotate", "--vault-name", "pgcmkvault", "-n", "key", "--query", "key.kid")
	var upd map[string]any
	c.json(&upd, pg("update", "-g", "rg", "-n", "cmk-one", "--identity", "pgcmkid", "--key", newKid)...)
	if got := upd["dataEncryption"].(map[string]any); got["primaryKeyUri"] != newKid || got["primaryKeyVersionInUse"] != newKid[strings.LastIndex(newKid, "/")+1:] {
		t.Fatalf("after update: %v", got)
	}
	c.json(&rows, pg("execute", "-n", "cmk-one", "-p", password, "-q", "select 1 as one")...)
	if len(rows) != 1 || rows[0]["one"] != float64(1) {
		t.Fatalf("execute after the key update: %v", rows)
	}
	// Backup flags alone: the primary key stays as it is.
	newGeoKid := c.tsv("keyvault", "key", "rotate", "--vault-name", "pggeovault", "-n", "key", "--query", "key.kid")
	c.json(&de, pg("update", "-g", "rg", "-n", "cmk-geo", "--backup-identity", "pggeoid", "--backup-key", newGeoKid, "--query", "dataEncryption")...)
	if de["geoBackupKeyUri"] != newGeoKid || de["primaryKeyUri"] != kid {
		t.Fatalf("after the geo update: %v", de)
	}

	// Identity sub-commands: identities in use cannot be removed.
	c.fails(1, "because it's used for data encryption.", pg("identity", "remove", "-g", "rg", "-s", "cmk-one", "-n", "pgcmkid", "--yes")...)
	c.fails(1, "because it's used for geo backup data encryption.", pg("identity", "remove", "-g", "rg", "-s", "cmk-geo", "-n", "pggeoid", "--yes")...)
	c.ok(pg("identity", "remove", "-g", "rg", "-s", "cmk-one", "-n", "nopermid", "--yes")...)
	nopermID := strings.Replace(identityID, "/pgcmkid", "/nopermid", 1)
	c.fails(1, "Identity '"+nopermID+"' does not exist in server cmk-one.", pg("identity", "show", "-g", "rg", "-s", "cmk-one", "-n", nopermID)...)
	var shown map[string]any
	c.json(&shown, pg("identity", "show", "-g", "rg", "-s", "cmk-one", "-n", "pgcmkid")...)
	if shown["principalId"] == "" || shown["clientId"] == "" {
		t.Fatalf("identity show = %v", shown)
	}
}
