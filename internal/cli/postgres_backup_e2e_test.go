package cli_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testkit"
)

// End-to-end tests of issue 7's CLI: backups, point-in-time restore, geo-restore and the
// switch between service- and customer-managed keys by restoring, on real servers with real
// pgBackRest repositories behind them.

// pgE2E is a pgCLI with the flexible-server prefix and a group made for the test.
type pgE2E struct {
	*pgCLI
	group string
}

func newBackupE2E(t *testing.T) *pgE2E {
	c := newPgCLI(t)
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
	return &pgE2E{pgCLI: c, group: "rg"}
}

func (e *pgE2E) pg(args ...string) []string {
	return append([]string{"postgres", "flexible-server"}, args...)
}

// smallServer are the create arguments of a small server administered by pgadmin.
var smallServer = []string{"--tier", "Burstable", "--sku-name", "Standard_B1ms", "--storage-size", "32", "-u", "pgadmin"}

// create makes a server and returns its generated password.
func (e *pgE2E) create(name string, extra ...string) string {
	e.t.Helper()
	var out map[string]any
	e.json(&out, e.pg(append(append([]string{"create", "-g", e.group, "-n", name}, smallServer...), extra...)...)...)
	password, _ := out["password"].(string)
	if password == "" {
		e.t.Fatalf("create %s printed no password: %v", name, out)
	}
	return password
}

// query runs sql on the server and returns the rows.
func (e *pgE2E) query(server, password, sql string) []map[string]any {
	e.t.Helper()
	var rows []map[string]any
	e.json(&rows, e.pg("execute", "-n", server, "-u", "pgadmin", "-p", password, "-q", sql)...)
	return rows
}

// exec runs statements that return no rows.
func (e *pgE2E) exec(server, password, sql string) {
	e.t.Helper()
	e.ok(e.pg("execute", "-n", server, "-u", "pgadmin", "-p", password, "-q", sql)...)
}

// values is one text column of a query's rows.
func (e *pgE2E) values(server, password, sql string) []string {
	e.t.Helper()
	var out []string
	for _, row := range e.query(server, password, sql) {
		v, _ := row["v"].(string)
		out = append(out, v)
	}
	return out
}

// serverClock is the server's clock now: the clock its commit timestamps, which a
// point-in-time restore compares with the restore time, are read from.
func (e *pgE2E) serverClock(server, password string) time.Time {
	e.t.Helper()
	v := e.values(server, password, `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as v`)
	if len(v) != 1 {
		e.t.Fatalf("clock of %s: %v", server, v)
	}
	t, err := time.Parse(time.RFC3339Nano, v[0])
	if err != nil {
		e.t.Fatalf("clock of %s: %v", server, err)
	}
	return t
}

// serverClockPast waits until the server's clock is past t: what the server commits from then
// on has a later commit timestamp.
func (e *pgE2E) serverClockPast(server, password string, t time.Time) {
	e.t.Helper()
	testkit.Eventually(e.t, time.Minute, "the clock of "+server+" to pass "+t.Format(time.RFC3339Nano), func() error {
		if now := e.serverClock(server, password); !now.After(t) {
			return fmt.Errorf("it is %s there", now.Format(time.RFC3339Nano))
		}
		return nil
	})
}

// wholeSecondPast waits until the current whole second (what the CLI takes as a default restore
// time) is after t.
func (e *pgE2E) wholeSecondPast(t time.Time) {
	e.t.Helper()
	testkit.Eventually(e.t, time.Minute, "a whole second after "+t.Format(time.RFC3339Nano), func() error {
		if now := time.Now().UTC().Truncate(time.Second); !now.After(t) {
			return fmt.Errorf("it is %s", now.Format(time.RFC3339))
		}
		return nil
	})
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// gone checks that the server does not exist.
func (e *pgE2E) gone(name string) {
	e.t.Helper()
	e.fails(3, "ResourceNotFound", e.pg("show", "-g", e.group, "-n", name)...)
}

// TestPostgresBackupsAndRestoreThroughCLI: on-demand backups (create, show, list, delete),
// then a point-in-time restore to a moment between two writes: the rows written before it are
// there, the rows written after it are not. And the restores the issue says are refused, refused
// without creating anything.
func TestPostgresBackupsAndRestoreThroughCLI(t *testing.T) {
	e := newBackupE2E(t)
	password := e.create("bk-src")
	e.exec("bk-src", password, "create table t (v text)")

	// backup create prints the backup; show and list find it.
	var created map[string]any
	e.json(&created, e.pg("backup", "create", "-g", "rg", "-n", "bk-src", "--backup-name", "ondemand-1")...)
	completed, err := time.Parse(time.RFC3339, asString(created["completedTime"]))
	if created["name"] != "ondemand-1" || created["backupType"] != "Customer On-Demand" || created["source"] != "Customer" ||
		created["resourceGroup"] != "rg" || created["type"] != "Microsoft.DBforPostgreSQL/flexibleServers/backups" ||
		!strings.HasSuffix(asString(created["id"]), "/flexibleServers/bk-src/backups/ondemand-1") || err != nil ||
		time.Since(completed) > 10*time.Minute || time.Until(completed) > time.Minute {
		t.Fatalf("backup create printed %v (completedTime: %v)", created, err)
	}
	var shown map[string]any
	e.json(&shown, e.pg("backup", "show", "-g", "rg", "-n", "bk-src", "-b", "ondemand-1")...)
	if shown["name"] != "ondemand-1" || shown["backupType"] != "Customer On-Demand" || shown["completedTime"] != created["completedTime"] {
		t.Fatalf("backup show: %v", shown)
	}
	if _, ok := shown["systemData"]; ok {
		t.Errorf("backup show kept systemData: %v", shown)
	}
	if n := e.tsv(e.pg("backup", "list", "-g", "rg", "-n", "bk-src", "--query", "[?name=='ondemand-1'] | length(@)")...); n != "1" {
		t.Fatalf("backup list has ondemand-1 %s times", n)
	}
	table := e.ok(e.pg("backup", "list", "-g", "rg", "-n", "bk-src", "-o", "table")...).Stdout
	if !strings.HasPrefix(table, "BackupType ") || !strings.Contains(table, "Customer On-Demand") || !strings.Contains(table, "ondemand-1") {
		t.Errorf("backup list -o table:\n%s", table)
	}

	// Rows A, the time T, rows B.
	e.exec("bk-src", password, "insert into t values ('A1'), ('A2')")
	// T is read from the server's clock after A's commit; B is written once that clock is past T.
	restoreTime := e.serverClock("bk-src", password)
	e.serverClockPast("bk-src", password, restoreTime)
	e.exec("bk-src", password, "insert into t values ('B1')")

	var restored map[string]any
	e.json(&restored, e.pg("restore", "-g", "rg", "-n", "bk-restored", "--source-server", "bk-src",
		"--restore-time", restoreTime.Format("2006-01-02T15:04:05.000000")+"+00:00")...)
	de, _ := restored["dataEncryption"].(map[string]any)
	if restored["name"] != "bk-restored" || restored["state"] != "Ready" || restored["location"] != "eastus" ||
		restored["resourceGroup"] != "rg" || de["type"] != "SystemManaged" {
		t.Fatalf("restore printed %v", restored)
	}
	if got := e.values("bk-restored", password, "select v from t order by v"); strings.Join(got, ",") != "A1,A2" {
		t.Fatalf("restored rows = %v, want A1,A2 (written before the restore time) and not B1", got)
	}
	if got := e.values("bk-src", password, "select v from t order by v"); strings.Join(got, ",") != "A1,A2,B1" {
		t.Fatalf("the source's rows changed: %v", got)
	}
	// The restored server is a server like any other: show prints what restore printed.
	e.json(&shown, e.pg("show", "-g", "rg", "-n", "bk-restored")...)
	if shown["id"] != restored["id"] || shown["state"] != "Ready" {
		t.Errorf("show of the restored server: %v", shown)
	}

	// Refusals, each creating nothing.
	e.fails(1, "Specified server name is already used.",
		e.pg("restore", "-g", "rg", "-n", "bk-restored", "--source-server", "bk-src")...)
	e.fails(3, "ResourceNotFound", e.pg("restore", "-g", "rg", "-n", "bk-none-1", "--source-server", "no-such-source")...)
	e.gone("bk-none-1")
	future := time.Now().UTC().Add(24 * time.Hour).Format(time.RFC3339)
	r := e.run(e.pg("restore", "-g", "rg", "-n", "bk-none-2", "--source-server", "bk-src", "--restore-time", future)...)
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "ERROR: (") {
		t.Errorf("restore to a time in the future: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	e.gone("bk-none-2")
	r = e.run(e.pg("restore", "-g", "rg", "-n", "bk-none-3", "--source-server", "bk-src", "--restore-time", "2020-01-01T00:00:00Z")...)
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "ERROR: (") {
		t.Errorf("restore to a time before earliestRestoreDate: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	e.gone("bk-none-3")
	e.fails(1, "The restore point in time value has incorrect date format. Please use ISO format e.g., 2021-10-22T00:08:23+00:00.",
		e.pg("restore", "-g", "rg", "-n", "bk-none-4", "--source-server", "bk-src", "--restore-time", "yesterday")...)
	e.gone("bk-none-4")

	// backup delete: asks, then deletes.
	e.fails(1, "Use --yes", e.pg("backup", "delete", "-g", "rg", "-n", "bk-src", "-b", "ondemand-1")...)
	if r := e.ok(e.pg("backup", "delete", "-g", "rg", "-n", "bk-src", "-b", "ondemand-1", "--yes")...); r.Stdout != "" {
		t.Errorf("backup delete printed %q", r.Stdout)
	}
	e.fails(3, "ResourceNotFound", e.pg("backup", "show", "-g", "rg", "-n", "bk-src", "-b", "ondemand-1")...)
	if n := e.tsv(e.pg("backup", "list", "-g", "rg", "-n", "bk-src", "--query", "[?name=='ondemand-1'] | length(@)")...); n != "0" {
		t.Fatalf("backup list still has ondemand-1 (%s)", n)
	}
}

// TestPostgresRestoreSwitchesKeysThroughCLI: restoring is how a server changes its kind of
// key. A customer-managed-key server restored without key flags becomes a service-managed one, a
// service-managed one restored with --identity and --key becomes customer-managed, and a
// customer-managed one can be restored under a different customer key; each new server's show
// reports its own dataEncryption, and the data is there.
func TestPostgresRestoreSwitchesKeysThroughCLI(t *testing.T) {
	e := newBackupE2E(t)
	// The seed's prerequisites: a key store with purge protection, keys, an identity with get,
	// list, wrapKey and unwrapKey.
	e.ok("keyvault", "create", "-g", "rg", "-n", "pgrestorevault", "-l", "eastus", "--enable-purge-protection", "true", "-o", "none")
	kid := e.tsv("keyvault", "key", "create", "--vault-name", "pgrestorevault", "-n", "key", "--query", "key.kid")
	otherKid := e.tsv("keyvault", "key", "create", "--vault-name", "pgrestorevault", "-n", "other", "--query", "key.kid")
	principal := e.tsv("identity", "create", "-g", "rg", "-n", "pgrestoreid", "-l", "eastus", "--query", "principalId")
	e.ok("keyvault", "set-policy", "-g", "rg", "-n", "pgrestorevault", "--object-id", principal,
		"--key-permissions", "wrapKey", "unwrapKey", "get", "list", "-o", "none")
	identityID := e.tsv("identity", "show", "-g", "rg", "-n", "pgrestoreid", "--query", "id")

	cmkPassword := e.create("cmk-src", "--identity", "pgrestoreid", "--key", kid)
	smkPassword := e.create("smk-src")
	e.exec("cmk-src", cmkPassword, "create table t (v text); insert into t values ('from-cmk')")
	e.exec("smk-src", smkPassword, "create table t (v text); insert into t values ('from-smk')")
	// The default restore time (the CLI's now, in whole seconds) must be after the writes.
	e.wholeSecondPast(later(e.serverClock("cmk-src", cmkPassword), e.serverClock("smk-src", smkPassword)))

	dataEncryption := func(name string) map[string]any {
		var de map[string]any
		e.json(&de, e.pg("show", "-g", "rg", "-n", name, "--query", "dataEncryption")...)
		return de
	}
	if de := dataEncryption("cmk-src"); de["type"] != "AzureKeyVault" || de["primaryKeyUri"] != kid {
		t.Fatalf("the CMK source: %v", de)
	}

	// CMK → SMK: no key flags.
	var out map[string]any
	e.json(&out, e.pg("restore", "-g", "rg", "-n", "cmk-to-smk", "--source-server", "cmk-src")...)
	if de, _ := out["dataEncryption"].(map[string]any); de["type"] != "SystemManaged" {
		t.Errorf("restore of the CMK source printed dataEncryption %v", out["dataEncryption"])
	}
	if de := dataEncryption("cmk-to-smk"); de["type"] != "SystemManaged" || de["primaryKeyUri"] != nil || de["primaryUserAssignedIdentityId"] != nil {
		t.Errorf("CMK → SMK: dataEncryption %v", de)
	}
	if got := e.values("cmk-to-smk", cmkPassword, "select v from t"); strings.Join(got, ",") != "from-cmk" {
		t.Errorf("CMK → SMK rows: %v", got)
	}

	// SMK → CMK: --identity by name, --key.
	e.json(&out, e.pg("restore", "-g", "rg", "-n", "smk-to-cmk", "--source-server", "smk-src", "--identity", "pgrestoreid", "--key", kid)...)
	de := dataEncryption("smk-to-cmk")
	if de["type"] != "AzureKeyVault" || de["primaryKeyUri"] != kid || !strings.EqualFold(asString(de["primaryUserAssignedIdentityId"]), identityID) {
		t.Errorf("SMK → CMK: dataEncryption %v", de)
	}
	if ids := e.tsv(e.pg("identity", "list", "-g", "rg", "-s", "smk-to-cmk", "--query", "keys(userAssignedIdentities)")...); !strings.EqualFold(ids, identityID) {
		t.Errorf("SMK → CMK: identities %q, want %s", ids, identityID)
	}
	if got := e.values("smk-to-cmk", smkPassword, "select v from t"); strings.Join(got, ",") != "from-smk" {
		t.Errorf("SMK → CMK rows: %v", got)
	}
	// The sources keep their own encryption.
	if de := dataEncryption("smk-src"); de["type"] != "SystemManaged" {
		t.Errorf("the SMK source changed: %v", de)
	}

	// CMK → another customer key, by the source's id.
	srcID := e.tsv(e.pg("show", "-g", "rg", "-n", "cmk-src", "--query", "id")...)
	e.ok(e.pg("restore", "-g", "rg", "-n", "cmk-rekeyed", "--source-server", srcID, "--identity", identityID, "--key", otherKid, "-o", "none")...)
	if de := dataEncryption("cmk-rekeyed"); de["type"] != "AzureKeyVault" || de["primaryKeyUri"] != otherKid {
		t.Errorf("CMK → other key: dataEncryption %v", de)
	}
	if got := e.values("cmk-rekeyed", cmkPassword, "select v from t"); strings.Join(got, ",") != "from-cmk" {
		t.Errorf("CMK → other key rows: %v", got)
	}
	if de := dataEncryption("cmk-src"); de["primaryKeyUri"] != kid {
		t.Errorf("the CMK source's key changed: %v", de)
	}

	// The validator's refusals, before anything is created.
	e.fails(1, "ERROR: User assigned identity and keyvault key need to be provided together. Please provide --identity and --key together.",
		e.pg("restore", "-g", "rg", "-n", "refused-1", "--source-server", "smk-src", "--identity", "pgrestoreid")...)
	e.fails(1, "ERROR: Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.",
		e.pg("restore", "-g", "rg", "-n", "refused-1", "--source-server", "smk-src", "--identity", "pgrestoreid", "--key", kid,
			"--backup-identity", "pgrestoreid2", "--backup-key", otherKid)...)
	e.fails(1, "ERROR: Please provide both primary as well as geo-back user assigned identity and keyvault key to enable Data encryption for geo-redundant backup.",
		e.pg("restore", "-g", "rg", "-n", "refused-1", "--source-server", "smk-src", "--geo-redundant-backup", "Enabled",
			"--identity", "pgrestoreid", "--key", kid)...)
	e.gone("refused-1")
}

// TestPostgresGeoRestoreThroughCLI: a server with geo-redundant backup restored into its
// paired region from the copies there; a region that is not the pair is refused, creating
// nothing.
func TestPostgresGeoRestoreThroughCLI(t *testing.T) {
	e := newBackupE2E(t)
	password := e.create("geo-src", "--geo-redundant-backup", "Enabled")
	e.exec("geo-src", password, "create table t (v text); insert into t values ('before-backup')")
	e.ok(e.pg("backup", "create", "-g", "rg", "-n", "geo-src", "-b", "geo-full", "-o", "none")...)

	var out map[string]any
	e.json(&out, e.pg("geo-restore", "-g", "rg", "-n", "geo-copy", "--source-server", "geo-src", "-l", "westus")...)
	if out["location"] != "westus" || out["state"] != "Ready" {
		t.Fatalf("geo-restore printed %v", out)
	}
	if got := e.values("geo-copy", password, "select v from t"); strings.Join(got, ",") != "before-backup" {
		t.Errorf("geo-restored rows: %v", got)
	}

	r := e.run(e.pg("geo-restore", "-g", "rg", "-n", "geo-wrong", "--source-server", "geo-src", "-l", "northeurope")...)
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "ERROR: ") {
		t.Errorf("geo-restore to a region that is not the pair: exit %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	e.gone("geo-wrong")
	e.fails(1, "ERROR: The provided source-server rg/geo-src is invalid.",
		e.pg("geo-restore", "-g", "rg", "-n", "geo-wrong", "--source-server", "rg/geo-src", "-l", "westus")...)
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}
