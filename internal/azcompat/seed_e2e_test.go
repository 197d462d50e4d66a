package azcompat_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// Texts the seed document quotes, and az 2.45's own.
const (
	seedPairIdentityKey = "User assigned identity and keyvault key need to be provided together. Please provide --identity and --key together."
	seedKeyNotFound     = "The operation could not be completed because the Azure Key Vault Key name '%s' does not exist or User Assigned Identity does not have Get access to the Key (/azure/postgresql/flexible-server/concepts-data-encryption#requirements-for-configuring-data-encryption-for-azure-database-for-postgresql-flexible-server)."
	seedGeoNotEnabled   = "Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key."
	// az 2.45 refuses customer-managed keys with geo-redundant backup before sending anything
	// (its api-version, 2022-12-01, predates them), and has no --backup-identity/--backup-key
	// for PostgreSQL: CLI 2.50 added both, with api-version 2023-03-01-preview.
	az245GeoCMK = "Data encryption is not supported for geo-redundant backup."
	// newerAPI is what az 2.50 and later send for the geo-redundant CMK flows.
	newerAPI = "2023-03-01-preview"
)

// seedEnv is one daemon, az signed in to it, and the customer's key stores and identities.
type seedEnv struct {
	d    *testenv.Daemon
	az   *testenv.AZ
	sub  string
	port string // the daemon's HTTPS port, part of every key-store URL
	// Identities by name: resource id and principal id.
	ids map[string][2]string
}

func newSeedEnv(t *testing.T) *seedEnv {
	testkit.Require(t, append(testkit.DataPlane, testkit.PSQL, testkit.LocalhostNames)...)
	// The endpoint on PostgreSQL's own port, as Azure's servers are reached: the connection
	// strings az prints name no port. (Only this test binds 5432; the others take free ports.)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t), "--postgres-addr", "127.0.0.1:5432"}})
	e := &seedEnv{d: d, az: testenv.NewAZ(t, d, testenv.AZOptions{}), sub: d.Profile().SubscriptionID, ids: map[string][2]string{}}
	e.port = d.Profile().Endpoint[strings.LastIndexByte(d.Profile().Endpoint, ':')+1:]
	e.az.Must(t, "group", "create", "-n", "rg", "-l", "eastus")
	return e
}

// identity creates a user-assigned identity with az.
func (e *seedEnv) identity(t *testing.T, name, location string) (id, principal string) {
	t.Helper()
	o := e.az.Must(t, "identity", "create", "-g", "rg", "-n", name, "-l", location).Object(t)
	id, principal = str(o, "id"), str(o, "principalId")
	if id == "" || principal == "" {
		t.Fatalf("az identity create printed %v", o)
	}
	e.ids[name] = [2]string{id, principal}
	return id, principal
}

// vault creates a vault with purge protection (required for data encryption) and grants the
// identities get, wrapKey and unwrapKey, as the seed's prerequisites say.
func (e *seedEnv) vault(t *testing.T, name, location string, identities ...string) {
	t.Helper()
	e.az.Must(t, "keyvault", "create", "-g", "rg", "-n", name, "-l", location, "--enable-purge-protection", "true")
	for _, id := range identities {
		e.az.Must(t, "keyvault", "set-policy", "-n", name, "--object-id", e.ids[id][1], "--key-permissions", "get", "wrapKey", "unwrapKey")
	}
}

// key creates an RSA key and returns its versioned id. Debian's az 2.45 cannot run any
// `az keyvault key` command (its package lacks the module azure.keyvault.v7_0;
// TestAzureCLIServicePrincipal proves it), so the key store is called through az rest.
func (e *seedEnv) key(t *testing.T, vault, name string) string {
	t.Helper()
	url := fmt.Sprintf("https://%s.vault.localhost:%s/keys/%s/create?api-version=7.4", vault, e.port, name)
	kid := str(e.az.Must(t, "rest", "--method", "post", "--url", url, "--resource", "https://vault.localhost",
		"--body", `{"kty":"RSA","key_size":2048}`).Object(t), "key", "kid")
	if kid == "" {
		t.Fatalf("no key id for %s/%s", vault, name)
	}
	return kid
}

// serverURL is a server's ARM URL at an api-version, for az rest.
func (e *seedEnv) serverURL(name, apiVersion string) string {
	return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/%s?api-version=%s",
		e.d.Profile().Endpoint, e.sub, name, apiVersion)
}

// show is az postgres flexible-server show.
func (e *seedEnv) show(t *testing.T, name string) map[string]any {
	t.Helper()
	return e.az.Must(t, "postgres", "flexible-server", "show", "-g", "rg", "-n", name).Object(t)
}

// waitReady polls az's show until the server is Ready (after an az rest PUT, which does not
// follow the long-running operation).
func (e *seedEnv) waitReady(t *testing.T, name string) map[string]any {
	t.Helper()
	var srv map[string]any
	testkit.Eventually(t, 3*time.Minute, "server "+name+" Ready", func() error {
		r := e.az.Run(t, "postgres", "flexible-server", "show", "-g", "rg", "-n", name)
		if r.Code != 0 {
			return fmt.Errorf("show: %s", r.Stderr)
		}
		srv = r.Object(t)
		if s := str(srv, "state"); s != "Ready" {
			return fmt.Errorf("state %s", s)
		}
		return nil
	})
	return srv
}

// psql runs psql with conninfo as given and returns the trimmed output of query; hosts are
// names that resolve to 127.0.0.1 for it alone (an /etc/hosts bind-mounted in a mount namespace
// of its own, never the machine's).
func psql(t *testing.T, hosts []string, conninfo, query string) string {
	t.Helper()
	args := []string{"psql", conninfo, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query}
	if len(hosts) > 0 {
		etc, err := os.ReadFile("/etc/hosts")
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(file, fmt.Appendf(etc, "\n127.0.0.1 %s\n", strings.Join(hosts, " ")), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, file}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=15")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// refusedWith checks that az failed and printed want (az prints a service error as
// "(Code) Message" and client-side errors as "ERROR: message"). Resource ids are compared
// without case, as ARM compares them.
func refusedWith(t *testing.T, r testenv.AZResult, want string) {
	t.Helper()
	if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(want)) {
		t.Fatalf("want az to fail with %q:\n%s", want, r)
	}
}

// encryption reads a server's dataEncryption block as az printed it.
func encryption(srv map[string]any) map[string]any {
	m, _ := srv["dataEncryption"].(map[string]any)
	return m
}

// identityIDs are the user-assigned identities, lower-cased, of a server as az printed it, or
// of its identity block (az postgres flexible-server identity list prints that alone).
func identityIDs(srv map[string]any) []string {
	m, ok := srv["identity"].(map[string]any)
	if !ok {
		m = srv
	}
	ua, _ := m["userAssignedIdentities"].(map[string]any)
	var out []string
	for id := range ua {
		out = append(out, strings.ToLower(id))
	}
	slices.Sort(out)
	return out
}

func lower(ids ...string) []string {
	var out []string
	for _, id := range ids {
		out = append(out, strings.ToLower(id))
	}
	slices.Sort(out)
	return out
}

// TestSeedWithAzureCLI runs the seed document's CLI blocks with Microsoft's az 2.45, verbatim
// where az 2.45 can run them (completed with the parameters the seed leaves to the user:
// version, administrator, no public access), and the everyday commands around them, against
// one daemon with real encrypted servers.
func TestSeedWithAzureCLI(t *testing.T) {
	e := newSeedEnv(t)
	az := e.az
	primaryID, _ := e.identity(t, "id-primary", "eastus")
	otherID, _ := e.identity(t, "id-other", "eastus")
	geoID, _ := e.identity(t, "id-geo", "westus")
	e.vault(t, "kvseedeast", "eastus", "id-primary", "id-other")
	e.vault(t, "kvseedwest", "westus", "id-geo")
	primaryKey := e.key(t, "kvseedeast", "primary")
	secondKey := e.key(t, "kvseedeast", "second")
	geoKey := e.key(t, "kvseedwest", "geo")
	versionless := func(kid string) string { return kid[:strings.LastIndexByte(kid, '/')] }
	// What the seed leaves to the user ("..."): the version pgflex runs, an administrator,
	// and no public access (az would otherwise ask a web service for the client's address).
	rest := []string{"--version", "15", "--admin-user", "seedadmin", "--admin-password", "Tq8#Lorem-Ipsum!", "--public-access", "None", "--yes", "-l", "eastus"}

	t.Run("create with the service-managed key (seed)", func(t *testing.T) {
		out := az.Must(t, append([]string{"postgres", "flexible-server", "create", "--resource-group", "rg", "--name", "seed-smk"}, rest...)...).Object(t)
		if str(out, "databaseName") != "flexibleserverdb" || str(out, "username") != "seedadmin" || str(out, "version") != "15" {
			t.Fatalf("create printed %v", out)
		}
		enc := encryption(e.show(t, "seed-smk"))
		if str(enc, "type") != "SystemManaged" || enc["primaryKeyUri"] != nil {
			t.Fatalf("dataEncryption = %v, want the service-managed key", enc)
		}

		// psql with exactly the connection string az printed: {name}.postgres.localhost, port
		// 5432 (names under .localhost are this machine's, through nss-myhostname).
		cs := str(out, "connectionString")
		if want := "postgresql://seedadmin:Tq8#Lorem-Ipsum!@seed-smk.postgres.localhost/postgres?sslmode=require"; cs != want || str(out, "host") != "seed-smk.postgres.localhost" {
			t.Fatalf("create printed connectionString %q, host %q; want %q", cs, str(out, "host"), want)
		}
		// --public-access None: public access without a rule, so nobody gets in until one
		// admits the client's address (this machine's loopback address here).
		rule := az.Must(t, "postgres", "flexible-server", "firewall-rule", "create", "-g", "rg", "-n", "seed-smk", "-r", "allow-local",
			"--start-ip-address", "127.0.0.1", "--end-ip-address", "127.0.0.1").Object(t)
		if str(rule, "name") != "allow-local" || str(rule, "startIpAddress") != "127.0.0.1" || str(rule, "endIpAddress") != "127.0.0.1" {
			t.Fatalf("firewall-rule create printed %v", rule)
		}
		if got := psql(t, nil, cs, "CREATE TABLE seed_marker AS SELECT 'seed-smk'::text AS v; SELECT current_user || ' ' || v FROM seed_marker"); got != "seedadmin seed-smk" {
			t.Fatalf("psql with create's connection string: %q", got)
		}
		// az's show-connection-string writes Azure's own suffix whatever the cloud; pgflex routes
		// it as an alias. The name resolves through an /etc/hosts line (in a mount namespace of
		// psql's own), as a user would add one or a DNS record.
		strs := az.Must(t, "postgres", "flexible-server", "show-connection-string", "-s", "seed-smk", "-u", "seedadmin", "-p", "Tq8#Lorem-Ipsum!").Object(t)
		psqlCmd := str(strs, "connectionStrings", "psql_cmd")
		if want := "postgresql://seedadmin:Tq8#Lorem-Ipsum!@seed-smk.postgres.database.azure.com/postgres?sslmode=require"; psqlCmd != want {
			t.Fatalf("show-connection-string psql_cmd %q, want %q", psqlCmd, want)
		}
		if got := psql(t, []string{"seed-smk.postgres.database.azure.com"}, psqlCmd, "SELECT v FROM seed_marker"); got != "seed-smk" {
			t.Fatalf("psql with show-connection-string's psql_cmd: %q", got)
		}
	})

	t.Run("create with a customer-managed key, geo-redundant backup disabled (seed)", func(t *testing.T) {
		az.Must(t, append([]string{"postgres", "flexible-server", "create", "--resource-group", "rg", "--name", "seed-cmk",
			"--geo-redundant-backup", "Disabled", "--identity", "id-primary", "--key", primaryKey}, rest...)...)
		srv := e.show(t, "seed-cmk")
		enc := encryption(srv)
		if str(enc, "type") != "AzureKeyVault" || str(enc, "primaryKeyUri") != primaryKey ||
			!strings.EqualFold(str(enc, "primaryUserAssignedIdentityId"), primaryID) {
			t.Fatalf("dataEncryption = %v", enc)
		}
		if got := identityIDs(srv); !slices.Equal(got, lower(primaryID)) {
			t.Fatalf("identities = %v, want the primary identity", got)
		}
	})

	t.Run("create with customer-managed keys and geo-redundant backup (seed)", func(t *testing.T) {
		// The seed's block, verbatim: az 2.45 has no such arguments for PostgreSQL.
		r := az.Run(t, append([]string{"postgres", "flexible-server", "create", "--resource-group", "rg", "--name", "seed-geo",
			"--geo-redundant-backup", "Enabled", "--identity", "id-primary", "--key", primaryKey,
			"--backup-identity", "id-geo", "--backup-key", geoKey}, rest...)...)
		refusedWith(t, r, "unrecognized arguments: --backup-identity id-geo --backup-key "+geoKey)
		// Without them, az 2.45 refuses the combination itself.
		r = az.Run(t, append([]string{"postgres", "flexible-server", "create", "--resource-group", "rg", "--name", "seed-geo",
			"--geo-redundant-backup", "Enabled", "--identity", "id-primary", "--key", primaryKey}, rest...)...)
		refusedWith(t, r, az245GeoCMK)
		// What az 2.50+ sends for the seed's block, through az rest.
		body := map[string]any{"location": "eastus",
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{primaryID: map[string]any{}, geoID: map[string]any{}}},
			"sku":      map[string]any{"name": "Standard_D2s_v3", "tier": "GeneralPurpose"},
			"properties": map[string]any{"version": "15", "administratorLogin": "seedadmin", "administratorLoginPassword": "Tq8#Lorem-Ipsum!",
				"storage": map[string]any{"storageSizeGB": 128}, "backup": map[string]any{"geoRedundantBackup": "Enabled", "backupRetentionDays": 7},
				"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": primaryKey, "primaryUserAssignedIdentityId": primaryID,
					"geoBackupKeyURI": geoKey, "geoBackupUserAssignedIdentityId": geoID}}}
		raw, _ := json.Marshal(body)
		az.Must(t, "rest", "--method", "put", "--url", e.serverURL("seed-geo", newerAPI), "--body", string(raw))
		srv := e.waitReady(t, "seed-geo")
		// az 2.45 reads it at 2022-12-01, which has no geo-backup fields; the newer version does.
		if str(srv, "backup", "geoRedundantBackup") != "Enabled" {
			t.Fatalf("backup = %v", srv["backup"])
		}
		full := az.Must(t, "rest", "--method", "get", "--url", e.serverURL("seed-geo", newerAPI)).Object(t)
		enc := full["properties"].(map[string]any)["dataEncryption"].(map[string]any)
		if str(enc, "geoBackupKeyURI") != geoKey || !strings.EqualFold(str(enc, "geoBackupUserAssignedIdentityId"), geoID) ||
			str(enc, "geoBackupEncryptionKeyStatus") != "Valid" || str(enc, "primaryEncryptionKeyStatus") != "Valid" {
			t.Fatalf("dataEncryption at %s = %v", newerAPI, enc)
		}
	})

	t.Run("update (seed)", func(t *testing.T) {
		upd := []string{"postgres", "flexible-server", "update", "--resource-group", "rg", "--name", "seed-cmk"}
		before := e.show(t, "seed-cmk")
		refusedWith(t, az.Run(t, append(upd, "--identity", "id-other")...), seedPairIdentityKey)
		refusedWith(t, az.Run(t, append(upd, "--key", secondKey)...), seedPairIdentityKey)
		missing := versionless(primaryKey)[:strings.LastIndex(versionless(primaryKey), "/")] + "/absent"
		refusedWith(t, az.Run(t, append(upd, "--identity", "id-primary", "--key", missing)...),
			"(AzureKeyVaultKeyNameNotFound) "+fmt.Sprintf(seedKeyNotFound, missing))
		// An identity without rights on the key: the same error names the key.
		noRights, _ := e.identity(t, "id-norights", "eastus")
		refusedWith(t, az.Run(t, append(upd, "--identity", noRights, "--key", secondKey)...),
			"(AzureKeyVaultKeyNameNotFound) "+fmt.Sprintf(seedKeyNotFound, secondKey))
		if after := e.show(t, "seed-cmk"); fmt.Sprint(encryption(after)) != fmt.Sprint(encryption(before)) {
			t.Fatalf("a refused update changed dataEncryption: %v, was %v", encryption(after), encryption(before))
		}
		// "Identities passed ... are automatically added ... even if the command later fails."
		if got := identityIDs(e.show(t, "seed-cmk")); !slices.Contains(got, strings.ToLower(noRights)) {
			t.Errorf("identities after the failed update: %v, want %s among them", got, noRights)
		}
		// Both at once: another identity and another key, versionless (follows new versions).
		az.Must(t, append(upd, "--identity", "id-other", "--key", versionless(secondKey))...)
		enc := encryption(e.show(t, "seed-cmk"))
		if str(enc, "primaryKeyUri") != versionless(secondKey) || !strings.EqualFold(str(enc, "primaryUserAssignedIdentityId"), otherID) ||
			str(enc, "primaryKeyVersionInUse") != secondKey[strings.LastIndexByte(secondKey, '/')+1:] {
			t.Fatalf("dataEncryption after update = %v", enc)
		}
		// The seed's geo-backup update: az 2.45 lacks the arguments; what az 2.50+ sends is
		// refused on a server without geo-redundant backup with the seed's text.
		refusedWith(t, az.Run(t, append(upd, "--backup-identity", "id-geo", "--backup-key", geoKey)...), "unrecognized arguments: --backup-identity")
		patch, _ := json.Marshal(map[string]any{"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault",
			"primaryKeyURI": versionless(secondKey), "primaryUserAssignedIdentityId": otherID, "geoBackupKeyURI": geoKey, "geoBackupUserAssignedIdentityId": geoID}}})
		refusedWith(t, az.Run(t, "rest", "--method", "patch", "--url", e.serverURL("seed-cmk", newerAPI), "--body", string(patch)), seedGeoNotEnabled)
		// On the geo-redundant server it changes the geo-backup key.
		geo2 := e.key(t, "kvseedwest", "geo2")
		patch, _ = json.Marshal(map[string]any{"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault",
			"primaryKeyURI": primaryKey, "primaryUserAssignedIdentityId": primaryID, "geoBackupKeyURI": geo2, "geoBackupUserAssignedIdentityId": geoID}}})
		az.Must(t, "rest", "--method", "patch", "--url", e.serverURL("seed-geo", newerAPI), "--body", string(patch))
		testkit.Eventually(t, 2*time.Minute, "the geo-backup key to change", func() error {
			full := az.Must(t, "rest", "--method", "get", "--url", e.serverURL("seed-geo", newerAPI)).Object(t)
			enc := full["properties"].(map[string]any)["dataEncryption"].(map[string]any)
			if str(enc, "geoBackupKeyURI") != geo2 || str(full, "properties", "state") != "Ready" {
				return fmt.Errorf("geoBackupKeyURI %s, state %s", str(enc, "geoBackupKeyURI"), str(full, "properties", "state"))
			}
			return nil
		})
	})

	t.Run("identity assign, list, show, remove", func(t *testing.T) {
		id := []string{"postgres", "flexible-server", "identity"}
		at := []string{"--resource-group", "rg", "--server-name", "seed-smk"}
		az.Must(t, append(append(id, "assign"), append(at, "-n", "id-primary", "id-other")...)...)
		list := az.Must(t, append(append(id, "list"), at...)...).Object(t)
		if got := identityIDs(list); !slices.Equal(got, lower(primaryID, otherID)) {
			t.Fatalf("identity list = %v", list)
		}
		shown := az.Must(t, append(append(id, "show"), append(at, "-n", "id-other")...)...).Object(t)
		if str(shown, "principalId") != e.ids["id-other"][1] {
			t.Fatalf("identity show = %v", shown)
		}
		az.Must(t, append(append(id, "remove"), append(at, "-n", "id-primary", "--yes")...)...)
		if got := identityIDs(e.show(t, "seed-smk")); !slices.Equal(got, lower(otherID)) {
			t.Fatalf("identities after removing one: %v", got)
		}
		// Removing the last one: az sends {"identity":{"type":"None"}}.
		az.Must(t, append(append(id, "remove"), append(at, "-n", "id-other", "--yes")...)...)
		if got := identityIDs(e.show(t, "seed-smk")); len(got) != 0 {
			t.Fatalf("identities after removing the last: %v", got)
		}
		// The identity that encrypts a server cannot go: az says so first, and the service
		// refuses what az would send.
		cmk := []string{"--resource-group", "rg", "--server-name", "seed-cmk"}
		refusedWith(t, az.Run(t, append(append(id, "remove"), append(cmk, "-n", "id-other", "--yes")...)...),
			"Cannot remove identity "+otherID+" because it's used for data encryption.")
		refusedWith(t, az.Run(t, "rest", "--method", "patch", "--url", e.serverURL("seed-cmk", "2022-12-01"), "--body", `{"identity":{"type":"None"}}`),
			"because it's used for data encryption.")
		if got := identityIDs(e.show(t, "seed-cmk")); !slices.Contains(got, strings.ToLower(otherID)) {
			t.Fatalf("a refused removal removed the encrypting identity: %v", got)
		}
	})

	t.Run("restore and geo-restore", func(t *testing.T) {
		// Point-in-time restore into a new server, choosing its encryption at restore.
		restored := az.Must(t, "postgres", "flexible-server", "restore", "-g", "rg", "-n", "seed-smk-restored", "--source-server", "seed-smk",
			"--identity", "id-primary", "--key", primaryKey).Object(t)
		if str(restored, "state") != "Ready" || str(encryption(restored), "type") != "AzureKeyVault" || str(encryption(restored), "primaryKeyUri") != primaryKey {
			t.Fatalf("restore printed %v", restored)
		}
		// Geo-restore of the geo-redundant server into the paired region, service-managed there.
		geo := az.Must(t, "postgres", "flexible-server", "geo-restore", "-g", "rg", "-n", "seed-geo-west", "--source-server", "seed-geo", "-l", "westus").Object(t)
		if str(geo, "state") != "Ready" || str(geo, "location") != "westus" || str(encryption(geo), "type") != "SystemManaged" {
			t.Fatalf("geo-restore printed %v", geo)
		}
	})

	t.Run("everyday commands", func(t *testing.T) {
		fs := []string{"postgres", "flexible-server"}
		list, _ := az.Must(t, append(fs, "list", "-g", "rg", "--query", "[].name")...).JSON(t).([]any)
		var names []string
		for _, n := range list {
			names = append(names, n.(string))
		}
		slices.Sort(names)
		if want := []string{"seed-cmk", "seed-geo", "seed-geo-west", "seed-smk", "seed-smk-restored"}; !slices.Equal(names, want) {
			t.Fatalf("list = %v, want %v", names, want)
		}
		db := append(fs, "db")
		az.Must(t, append(db, "create", "-g", "rg", "-s", "seed-smk", "-d", "appdb")...)
		dbs := az.Must(t, append(db, "list", "-g", "rg", "-s", "seed-smk", "--query", "[].name", "-o", "tsv")...).Stdout
		if got := strings.Fields(dbs); !slices.Contains(got, "appdb") || !slices.Contains(got, "flexibleserverdb") {
			t.Fatalf("db list = %q", dbs)
		}
		if c := az.Must(t, append(db, "show", "-g", "rg", "-s", "seed-smk", "-d", "appdb")...).Object(t); str(c, "collation") != "en_US.utf8" || str(c, "charset") != "UTF8" {
			t.Fatalf("db show = %v", c)
		}
		az.Must(t, append(db, "delete", "-g", "rg", "-s", "seed-smk", "-d", "appdb", "--yes")...)
		refusedWith(t, az.Run(t, append(db, "show", "-g", "rg", "-s", "seed-smk", "-d", "appdb")...), "(ResourceNotFound)")

		backups, _ := az.Must(t, append(fs, "backup", "list", "-g", "rg", "-n", "seed-cmk")...).JSON(t).([]any)
		if len(backups) == 0 || str(backups[0], "backupType") != "Full" {
			t.Fatalf("backup list = %v", backups)
		}
		if b := az.Must(t, append(fs, "backup", "show", "-g", "rg", "-n", "seed-cmk", "--backup-name", str(backups[0], "name"))...).Object(t); str(b, "name") != str(backups[0], "name") {
			t.Fatalf("backup show = %v", b)
		}

		az.Must(t, append(fs, "stop", "-g", "rg", "-n", "seed-smk-restored")...)
		if s := str(e.show(t, "seed-smk-restored"), "state"); s != "Stopped" {
			t.Fatalf("after stop: %s", s)
		}
		az.Must(t, append(fs, "start", "-g", "rg", "-n", "seed-smk-restored")...)
		az.Must(t, append(fs, "restart", "-g", "rg", "-n", "seed-smk-restored")...)
		if s := str(e.show(t, "seed-smk-restored"), "state"); s != "Ready" {
			t.Fatalf("after start and restart: %s", s)
		}
		upd := az.Must(t, append(fs, "update", "-g", "rg", "-n", "seed-smk", "--backup-retention", "14", "--tags", "env=seed")...).Object(t)
		if fmt.Sprint(upd["backup"].(map[string]any)["backupRetentionDays"]) != "14" || str(upd, "tags", "env") != "seed" {
			t.Fatalf("update printed %v", upd)
		}
		az.Must(t, append(fs, "delete", "-g", "rg", "-n", "seed-smk-restored", "--yes")...)
		refusedWith(t, az.Run(t, append(fs, "show", "-g", "rg", "-n", "seed-smk-restored")...), "(ResourceNotFound)")

		// A new version of the versionless key: the server follows it, and the activity log
		// says so, as az reads it (it sends timestamps without a zone).
		newVersion := e.key(t, "kvseedeast", "second")
		testkit.Eventually(t, 2*time.Minute, "seed-cmk to follow the new key version", func() error {
			if v := str(encryption(e.show(t, "seed-cmk")), "primaryKeyVersionInUse"); v != newVersion[strings.LastIndexByte(newVersion, '/')+1:] {
				return fmt.Errorf("version in use %s", v)
			}
			return nil
		})
		events, _ := az.Must(t, "monitor", "activity-log", "list", "-g", "rg", "--offset", "1h").JSON(t).([]any)
		var followed bool
		for _, ev := range events {
			if str(ev, "operationName", "value") == "Microsoft.DBforPostgreSQL/flexibleServers/keyVersionUpdated/action" &&
				strings.HasSuffix(str(ev, "resourceId"), "/flexibleServers/seed-cmk") {
				followed = true
			}
		}
		if !followed {
			t.Fatalf("az monitor activity-log list shows no keyVersionUpdated event for seed-cmk: %v", events)
		}
	})
}
