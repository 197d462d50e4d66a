package portal_test

// The Backup and restore blade and the Activity log blade, driven through a real daemon, real
// Chromium and real PostgreSQL servers; every effect is then checked through the API (and psql).

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// startBackupDaemon starts a daemon whose servers can be created and cleaned up, with the key
// monitor checking every second.
func startBackupDaemon(t *testing.T) (*testenv.Daemon, *fx) {
	t.Helper()
	needServers(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", testenv.RuntimeDir(t), "--key-check-interval", "1s"}})
	f := newFx(t, d)
	f.Group("rg", "eastus")
	return d, f
}

// newServerAPI creates a server through the API from serverBody (as pgflex postgres
// flexible-server create does) and waits until it is Ready; extra adds identity,
// properties.dataEncryption, ...
func (f *fx) newServerAPI(group, name string, extra map[string]any) map[string]any {
	f.t.Helper()
	body := serverBody("", "")
	for k, v := range extra {
		if k == "properties" {
			for pk, pv := range v.(map[string]any) {
				body["properties"].(map[string]any)[pk] = pv
			}
			continue
		}
		body[k] = v
	}
	f.must(http.MethodPut, f.ServerPath(group, name), apiPostgres, body)
	return f.WaitState(group, name, "Ready", 3*time.Minute)
}

// cmkServer makes a vault with purge protection, a key, an identity allowed on it, and a
// server encrypted under that key.
func (f *fx) newCMKServerAPI(group, name string) (*Vault, string) {
	f.t.Helper()
	idID, principal := f.Identity(group, name+"-id", "eastus")
	v := f.Vault(group, "kv"+strings.ReplaceAll(name, "-", ""), "eastus", true)
	v.Allow(principal)
	key := v.Key("cmk")
	f.newServerAPI(group, name, map[string]any{
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{idID: map[string]any{}}},
		"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault", "primaryKeyURI": key,
			"primaryUserAssignedIdentityId": idID}},
	})
	return v, key
}

func bladeRoute(f *fx, group, name, blade string) string {
	return "/resource" + f.ServerPath(group, name) + "?blade=" + blade
}

func (f *fx) listBackupsAPI(group, name string) []map[string]any {
	f.t.Helper()
	var out []map[string]any
	for _, b := range f.must(http.MethodGet, f.ServerPath(group, name)+"/backups", apiPostgres, nil)["value"].([]any) {
		out = append(out, b.(map[string]any))
	}
	return out
}

func TestPortalBackups(t *testing.T) {
	t.Parallel()
	d, f := startBackupDaemon(t)
	f.newServerAPI("rg", "bk-smk", nil)
	initial := f.listBackupsAPI("rg", "bk-smk")
	if len(initial) != 1 {
		t.Fatalf("backups after creation: %v", initial)
	}
	b := NewBrowser(t, d)
	b.Go(bladeRoute(f, "rg", "bk-smk", "backup"))
	b.WaitFor("heading", "bk-smk | Backup and restore")
	list := b.Within("table", "Available backups")
	list.WaitFor("cell", initial[0]["name"].(string))
	list.WaitFor("cell", "Automatic")

	b.Click("button", "Backup now")
	pane := b.Within("dialog", "Backup now")
	pane.Fill("Backup name", "before-upgrade")
	pane.Click("button", "Backup")
	b.WaitGone("dialog", "Backup now", 2*time.Minute)
	b.WaitFor("cell", "before-upgrade")
	b.WaitFor("cell", "Customer On-Demand")

	got := f.must(http.MethodGet, f.ServerPath("rg", "bk-smk")+"/backups/before-upgrade", apiPostgres, nil)
	if p := props(got); p["source"] != "Customer" || p["backupType"] != "Customer On-Demand" {
		t.Fatalf("the on-demand backup in the API: %v", got)
	}
	if n := len(f.listBackupsAPI("rg", "bk-smk")); n != 2 {
		t.Fatalf("%d backups in the API, want 2", n)
	}

	// A refused name is reported inline with the API's code, and the pane stays.
	b.ExpectAPIErrors()
	b.Click("button", "Backup now")
	pane = b.Within("dialog", "Backup now")
	pane.Fill("Backup name", "before-upgrade")
	pane.Click("button", "Backup")
	b.WaitAlert("BackupAlreadyExists", 20*time.Second)
	if v := pane.Value("textbox", "Backup name"); v != "before-upgrade" {
		t.Errorf("the pane's name after the refusal: %q", v)
	}
	pane.Click("button", "Cancel")
	if n := len(f.listBackupsAPI("rg", "bk-smk")); n != 2 {
		t.Fatalf("%d backups after a refused one, want 2", n)
	}
}

// chartCounts reads the Activity log blade's chart summary: key checks succeeded and failed.
var chartSummary = regexp.MustCompile(`(\d+) key checks succeeded, (\d+) failed; the server was Inaccessible in (\d+) of the minutes; current state: (\w+)`)

func waitChart(t *testing.T, b *Browser, what string, ok func(succeeded, failed, inaccessible int, latest string) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var s string
		b.Eval(`(document.querySelector('.chart-summary') || {}).textContent || ''`, &s)
		last = s
		if m := chartSummary.FindStringSubmatch(s); m != nil {
			a, _ := strconv.Atoi(m[1])
			c, _ := strconv.Atoi(m[2])
			i, _ := strconv.Atoi(m[3])
			if ok(a, c, i, m[4]) {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.snap("chart " + what)
	t.Fatalf("chart: %s not shown within 30s; summary %q", what, last)
}

func TestPortalActivityLog(t *testing.T) {
	t.Parallel()
	d, f := startBackupDaemon(t)
	v, _ := f.newCMKServerAPI("rg", "act-cmk")
	b := NewBrowser(t, d)
	b.Go(bladeRoute(f, "rg", "act-cmk", "activity"))
	b.WaitFor("heading", "act-cmk | Activity log")
	var ignored any
	b.Eval(`performance.setResourceTimingBufferSize(100000)`, &ignored)
	b.WaitFor("heading", "Key checks and state")
	waitChart(t, b, "successful checks", func(ok, failed, _ int, latest string) bool { return ok > 0 && failed == 0 && latest == "Ready" })

	// The key is disabled: the monitor makes the server Inaccessible and logs it; the blade
	// refreshes on its own.
	v.SetEnabled("cmk", false)
	f.WaitState("rg", "act-cmk", "Inaccessible", 30*time.Second)
	// (The table is redrawn when events arrive: lookups are not scoped to one drawing of it.)
	b.WaitFor("cell", "Microsoft.DBforPostgreSQL/flexibleServers/keyRevoked/action")
	b.WaitFor("cell", "Key revoked: server Inaccessible")
	waitChart(t, b, "failed checks", func(ok, failed, inacc int, latest string) bool {
		return failed > 0 && inacc > 0 && latest == "Inaccessible"
	})

	v.SetEnabled("cmk", true)
	f.WaitState("rg", "act-cmk", "Ready", time.Minute)
	b.WaitFor("cell", "Microsoft.DBforPostgreSQL/flexibleServers/accessRestored/action")
	b.WaitFor("cell", "Key access restored")
	waitChart(t, b, "recovery", func(ok, failed, _ int, latest string) bool { return ok > 0 && failed > 0 && latest == "Ready" })

	// Newest first: the restore above the revocation, as the API lists them.
	var ops []string
	b.Eval(`Array.from([...document.querySelectorAll('table.grid')].find((t) => t.caption && t.caption.textContent === 'Activity log')
		.querySelectorAll('tbody tr td:nth-child(3)'), (td) => td.textContent)`, &ops)
	iRestored, iRevoked := -1, -1
	for i, op := range ops {
		if strings.HasSuffix(op, "/accessRestored/action") && iRestored < 0 {
			iRestored = i
		}
		if strings.HasSuffix(op, "/keyRevoked/action") && iRevoked < 0 {
			iRevoked = i
		}
	}
	if iRestored < 0 || iRevoked < 0 || iRestored > iRevoked {
		t.Fatalf("events on the blade, newest first: %v", ops)
	}

	// The chart's numbers are the API's: the metrics of the server agree.
	r := d.ARM(t, http.MethodGet, f.ServerPath("rg", "act-cmk")+"/providers/Microsoft.Insights/metrics?api-version=2023-10-01&metricnames=key_checks_failed&interval=PT1M", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("metrics: %d %s", r.Status, r.Raw)
	}
	total := 0.0
	for _, p := range r.Body["value"].([]any)[0].(map[string]any)["timeseries"].([]any)[0].(map[string]any)["data"].([]any) {
		total += p.(map[string]any)["total"].(float64)
	}
	if total < 1 {
		t.Fatalf("the metrics API counts %v failed key checks", total)
	}

	// Leaving the blade stops its refresh timer: no activity-log request afterwards.
	b.Click("link", "Overview")
	b.WaitFor("heading", "act-cmk | Overview")
	count := `performance.getEntriesByType('resource').filter((e) => e.name.includes('/eventtypes/management/values')).length`
	var before, after int
	b.Eval(count, &before)
	time.Sleep(4 * time.Second) // longer than the blade's refresh interval: nothing may happen in it
	b.Eval(count, &after)
	if before == 0 || after != before {
		t.Fatalf("activity-log requests: %d on the blade, %d after leaving it", before, after)
	}
}

// restoreThroughUI fills the open restore form: the new server's name and, when keyID is set,
// a customer-managed key reached through the identity named identity; then Review + create and
// the restore button (label), and waits for the deployment.
func restoreThroughUI(b *Browser, newName, identity, keyID, label string) {
	b.t.Helper()
	b.WaitFor("tab", "Basics")
	b.Fill("Server name", newName)
	if keyID != "" {
		b.Click("tab", "Security")
		b.Click("radio", "Customer-managed key")
		b.Click("radio", "Key identifier")
		b.Fill("Key identifier", keyID)
		b.Click("button", "Change identity")
		dlg := b.Within("dialog", "Select user assigned managed identity")
		dlg.Click("radio", identity)
		dlg.Click("button", "Add")
		b.WaitGone("dialog", "Select user assigned managed identity", 10*time.Second)
		if v := b.Value("textbox", "User assigned managed identity"); v != identity {
			b.t.Fatalf("the identity field shows %q", v)
		}
	}
	b.Click("button", "Review + create")
	b.WaitFor("tab", "Review + create")
	b.Click("button", label)
	b.WaitForLong("button", "Go to resource", 3*time.Minute)
}

func TestPortalRestoreSMKToCMK(t *testing.T) {
	t.Parallel()
	d, f := startBackupDaemon(t)
	f.newServerAPI("rg", "rs-src", nil)
	f.AllowLoopback("rg", "rs-src")
	f.PSQL("rg", "rs-src", "pgadmin", srvPassword, "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('written before the restore')")
	// A restore point between two rows, for the custom point-in-time restore below.
	time.Sleep(1200 * time.Millisecond)
	point := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1200 * time.Millisecond)
	f.PSQL("rg", "rs-src", "pgadmin", srvPassword, "INSERT INTO notes VALUES ('written after the restore point')")
	// The seed's preparation: an identity with rights on a key in a vault with purge protection.
	idID, principal := f.Identity("rg", "rs-id", "eastus")
	v := f.Vault("rg", "kvrestore", "eastus", true)
	v.Allow(principal)
	key := v.Key("cmk")

	b := NewBrowser(t, d)
	b.Go(bladeRoute(f, "rg", "rs-src", "backup"))
	b.WaitFor("heading", "rs-src | Backup and restore")
	if b.Has("button", "Geo-restore") {
		t.Fatal("Geo-restore is offered for a server without geo-redundant backup")
	}
	b.Click("button", "Restore")
	b.WaitFor("heading", "Restore")

	// A name the API refuses is shown inline, and nothing is created.
	b.ExpectAPIErrors()
	b.Fill("Server name", "rs-src")
	b.Click("button", "Review + create")
	b.Click("button", "Restore")
	b.WaitAlert("ServerNameAlreadyExists", 20*time.Second)
	if !b.Has("button", "Restore") || b.Has("button", "Go to resource") {
		t.Fatal("after a refusal the form must stay, ready to send again")
	}
	b.Click("tab", "Basics")
	if !b.Checked("radio", "Latest restore point (Now)") {
		t.Fatal("the restore point is not the latest by default")
	}
	restoreThroughUI(b, "rs-cmk", "rs-id", key, "Restore")
	b.Click("button", "Go to resource")
	b.WaitFor("heading", "rs-cmk | Overview")

	restored := f.Server("rg", "rs-cmk")
	de := DataEncryption(restored)
	if de["type"] != "AzureKeyVault" || de["primaryKeyURI"] != key || !strings.EqualFold(fmt.Sprint(de["primaryUserAssignedIdentityId"]), idID) {
		t.Fatalf("the restored server's dataEncryption: %v", de)
	}
	if p := props(restored); !strings.EqualFold(fmt.Sprint(p["sourceServerResourceId"]), f.ServerPath("rg", "rs-src")) || p["state"] != "Ready" {
		t.Fatalf("the restored server: %v", p)
	}
	if de := DataEncryption(f.Server("rg", "rs-src")); de["type"] != "SystemManaged" {
		t.Fatalf("the source's dataEncryption changed: %v", de)
	}
	f.AllowLoopback("rg", "rs-cmk")
	if got := f.PSQL("rg", "rs-cmk", "pgadmin", srvPassword, "SELECT v FROM notes ORDER BY v"); got != "written after the restore point\nwritten before the restore" {
		t.Fatalf("the restored server's rows: %q", got)
	}

	// A custom restore point, typed in UTC: the new server has the rows committed before it only.
	b.Go(bladeRoute(f, "rg", "rs-src", "backup"))
	b.Click("button", "Restore")
	b.WaitFor("tab", "Basics")
	b.Click("radio", "Select a custom restore point")
	b.Fill("Custom restore point (UTC)", point.Format("2006-01-02 15:04:05"))
	restoreThroughUI(b, "rs-pitr", "", "", "Restore")
	pitr := f.Server("rg", "rs-pitr")
	if de := DataEncryption(pitr); de["type"] != "SystemManaged" {
		t.Fatalf("the point-in-time restored server's dataEncryption: %v", de)
	}
	f.AllowLoopback("rg", "rs-pitr")
	if got := f.PSQL("rg", "rs-pitr", "pgadmin", srvPassword, "SELECT v FROM notes"); got != "written before the restore" {
		t.Fatalf("the rows restored to %s: %q", point.Format(time.RFC3339), got)
	}
}

func TestPortalGeoRestore(t *testing.T) {
	t.Parallel()
	d, f := startBackupDaemon(t)
	f.newServerAPI("rg", "geo-src", map[string]any{"properties": map[string]any{"backup": map[string]any{"geoRedundantBackup": "Enabled"}}})
	f.AllowLoopback("rg", "geo-src")
	f.PSQL("rg", "geo-src", "pgadmin", srvPassword, "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('copied to the paired region')")

	b := NewBrowser(t, d)
	b.Go(bladeRoute(f, "rg", "geo-src", "backup"))
	b.WaitFor("heading", "geo-src | Backup and restore")
	b.Click("button", "Geo-restore")
	b.WaitFor("heading", "Geo-restore")
	b.WaitText("westus", 10*time.Second)
	if !b.Checked("radio", "Latest restore point available in the paired region") || b.Has("radio", "Select a custom restore point") {
		t.Fatal("a geo-restore restores the latest point of the paired region only")
	}
	restoreThroughUI(b, "geo-copy", "", "", "Geo-restore")
	b.Click("button", "Go to resource")
	b.WaitFor("heading", "geo-copy | Overview")

	restored := f.Server("rg", "geo-copy")
	if restored["location"] != "westus" || DataEncryption(restored)["type"] != "SystemManaged" {
		t.Fatalf("the geo-restored server: location %v, dataEncryption %v", restored["location"], DataEncryption(restored))
	}
	f.AllowLoopback("rg", "geo-copy")
	if got := f.PSQL("rg", "geo-copy", "pgadmin", srvPassword, "SELECT v FROM notes"); got != "copied to the paired region" {
		t.Fatalf("the geo-restored server's row: %q", got)
	}
}
