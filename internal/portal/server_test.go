package portal_test

// A server's Overview, Networking, Identity and Data encryption blades, driven in Chromium
// against a real daemon with real PostgreSQL servers; every step is checked through the API
// (and psql where data matters). One daemon and one browser serve the whole flow.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const srvPassword = "Str0ng!Passw0rd"

func serverBody(keyURI, identityID string) map[string]any {
	return geoServerBody(keyURI, identityID, "", "")
}

// geoServerBody is a create request; with a geo-backup key and identity, geo-redundant backup
// is on.
func geoServerBody(keyURI, identityID, geoKeyURI, geoIdentityID string) map[string]any {
	props := map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": srvPassword, "version": "15",
		"storage": map[string]any{"storageSizeGB": 32}, "backup": map[string]any{"geoRedundantBackup": "Disabled"}, "createMode": "Create"}
	body := map[string]any{"location": "eastus", "sku": map[string]any{"name": "Standard_B1ms", "tier": "Burstable"}, "properties": props}
	if keyURI != "" {
		enc := map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyURI, "primaryUserAssignedIdentityId": identityID}
		uai := map[string]any{identityID: map[string]any{}}
		if geoKeyURI != "" {
			enc["geoBackupKeyURI"], enc["geoBackupUserAssignedIdentityId"] = geoKeyURI, geoIdentityID
			uai[geoIdentityID] = map[string]any{}
			props["backup"] = map[string]any{"geoRedundantBackup": "Enabled"}
		}
		props["dataEncryption"] = enc
		body["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": uai}
	}
	return body
}

// startCreate PUTs a server and returns its operation's URL, without waiting.
func (f *fx) startCreate(group, name string, body map[string]any) string {
	f.t.Helper()
	r := f.d.ARM(f.t, http.MethodPut, f.ServerPath(group, name)+"?api-version="+apiPostgres, body)
	if r.Status/100 != 2 {
		f.t.Fatalf("create %s: %d %s", name, r.Status, r.Raw)
	}
	return r.Header.Get("Azure-AsyncOperation")
}

func (f *fx) waitOp(op string) {
	f.t.Helper()
	if op == "" {
		return
	}
	if st := f.d.WaitOperation(f.t, op, 3*time.Minute); st["status"] != "Succeeded" {
		f.t.Fatalf("operation %v", st)
	}
}

func identityIDs(server map[string]any) []string {
	idn, _ := server["identity"].(map[string]any)
	uai, _ := idn["userAssignedIdentities"].(map[string]any)
	var out []string
	for k := range uai {
		out = append(out, k)
	}
	return out
}

func hasIdentity(server map[string]any, id string) bool {
	for _, k := range identityIDs(server) {
		if strings.EqualFold(k, id) {
			return true
		}
	}
	return false
}

// waitEncryption waits until the server's dataEncryption field is want, and returns it.
func waitEncryption(f *fx, group, name, field, want string) map[string]any {
	f.t.Helper()
	var de map[string]any
	testkit.Eventually(f.t, 60*time.Second, name+"'s "+field, func() error {
		if de = DataEncryption(f.Server(group, name)); de[field] != want {
			return fmt.Errorf("it is %v, want %s", de[field], want)
		}
		return nil
	})
	return de
}

// statusText is the overview's live status as the page shows it now.
func statusText(b *Browser) string {
	var s string
	_ = chromedp.Run(b.Ctx(), chromedp.Evaluate(`(document.querySelector('[aria-label="Server status"]') || {}).innerText || ''`, &s))
	return strings.TrimSpace(s)
}

// waitStatus waits until the overview's status starts with want.
func waitStatus(t *testing.T, b *Browser, want string, timeout time.Duration) string {
	t.Helper()
	var s string
	testkit.Eventually(t, timeout, "the overview's status "+want, func() error {
		if s = statusText(b); !strings.HasPrefix(s, want) {
			return fmt.Errorf("it shows %q", s)
		}
		return nil
	})
	b.snap("status " + want)
	return s
}

// markStatus tags the status element; sameStatus says the page still shows that element (no
// reload, no re-render of the blade happened in between).
func markStatus(b *Browser) {
	var ok bool
	b.Eval(`(() => { const e = document.querySelector('[aria-label="Server status"]'); if (!e) return false; e.dataset.marker = 'kept'; return true; })()`, &ok)
	if !ok {
		b.t.Fatal("no status element to mark")
	}
}

func sameStatus(b *Browser) bool {
	var ok bool
	b.Eval(`(document.querySelector('[aria-label="Server status"]') || {dataset: {}}).dataset.marker === 'kept'`, &ok)
	return ok
}

func TestPortalServerBlades(t *testing.T) {
	needServers(t)
	started := time.Now()
	d := testenv.Start(t, testenv.Options{})
	f := newFx(t, d)
	const rg, loc = "rg-blades", "eastus"
	f.Group(rg, loc)
	v := f.Vault(rg, "kv-blades", loc, true)
	kid1 := v.Key("k1")
	encID, encPrincipal := f.Identity(rg, "id-enc", loc)
	v.Allow(encPrincipal)
	extraID, _ := f.Identity(rg, "id-extra", loc)
	// A geo-redundant CMK server: its geo-backup key in the paired region, with its own identity.
	vg := f.Vault(rg, "kv-blades-west", "westus", true)
	geoKid := vg.Key("kg1")
	geoID, geoPrincipal := f.Identity(rg, "id-geo", "westus")
	vg.Allow(geoPrincipal)
	v.Allow(geoPrincipal)
	opCMK := f.startCreate(rg, "srv-cmk", serverBody(kid1, encID))
	opSMK := f.startCreate(rg, "srv-smk", serverBody("", ""))
	geoPrimaryKid := v.Key("kp") // not k1, which the revocation step disables
	opGeo := f.startCreate(rg, "srv-geo", geoServerBody(geoPrimaryKid, encID, geoKid, geoID))
	b := NewBrowser(t, d)
	f.waitOp(opCMK)
	f.waitOp(opSMK)
	f.AllowLoopback(rg, "srv-cmk")
	f.PSQL(rg, "srv-cmk", "pgadmin", srvPassword, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')")
	cmkPath := f.ServerPath(rg, "srv-cmk")
	fqdn := props(f.Server(rg, "srv-cmk"))["fullyQualifiedDomainName"].(string)

	// Overview: Ready, the endpoint and connection strings; Stop and Start, watched live.
	b.Go("/resource" + cmkPath)
	waitStatus(t, b, "Ready", 20*time.Second)
	b.WaitText(fqdn, 5*time.Second)
	port := d.PostgresPort()
	if got := b.Value("textbox", "psql"); !strings.Contains(got, "host="+fqdn) || !strings.Contains(got, "port="+strconv.Itoa(port)) {
		t.Fatalf("psql connection string %q lacks the host %s or port %d", got, fqdn, port)
	}
	if got := b.Value("textbox", "JDBC"); !strings.HasPrefix(got, "jdbc:postgresql://"+fqdn+":"+strconv.Itoa(port)+"/") {
		t.Fatalf("JDBC connection string %q", got)
	}
	markStatus(b)
	// Cancel (or Escape) asks nothing of the API.
	b.Click("button", "Stop server")
	b.Within("alertdialog", "Stop server").Click("button", "Cancel")
	b.WaitGone("alertdialog", "Stop server", 5*time.Second)
	b.Click("button", "Stop server")
	b.WaitFor("alertdialog", "Stop server")
	b.Press("Escape")
	b.WaitGone("alertdialog", "Stop server", 5*time.Second)
	if st := props(f.Server(rg, "srv-cmk"))["state"]; st != "Ready" || statusText(b) != "Ready" {
		t.Fatalf("after a cancelled Stop the API says %v, the overview %q", st, statusText(b))
	}
	b.Click("button", "Stop server")
	b.Within("alertdialog", "Stop server").Click("button", "Yes")
	waitStatus(t, b, "Stopped", 90*time.Second)
	if st := props(f.Server(rg, "srv-cmk"))["state"]; st != "Stopped" {
		t.Fatalf("the overview says Stopped, the API says %v", st)
	}
	b.Click("button", "Start server")
	b.Within("alertdialog", "Start server").Click("button", "Yes")
	waitStatus(t, b, "Ready", 90*time.Second)
	f.WaitState(rg, "srv-cmk", "Ready", 5*time.Second)
	if got := f.PSQL(rg, "srv-cmk", "pgadmin", srvPassword, "SELECT v FROM kept"); got != "before" {
		t.Fatalf("after Stop and Start psql reads %q", got)
	}
	if !sameStatus(b) {
		t.Fatal("the overview was reloaded or re-rendered: its status should change in place")
	}
	t.Logf("overview stop/start done at %s", time.Since(started).Round(time.Second))

	// Key revocation, watched live: the key disabled through the API turns the open overview
	// Inaccessible with the reason; enabled again, Ready.
	v.SetEnabled("k1", false)
	s := waitStatus(t, b, "Inaccessible: ", 45*time.Second)
	b.WaitText("(keyRevoked)", 10*time.Second)
	b.WaitText("Customer-managed key (key status: Invalid)", 10*time.Second)
	api := f.Server(rg, "srv-cmk")
	reason, _ := props(api)["stateReason"].(string)
	if props(api)["state"] != "Inaccessible" || reason == "" || !strings.Contains(s, reason) {
		t.Fatalf("the overview says %q; the API says state %v, reason %q", s, props(api)["state"], reason)
	}
	v.SetEnabled("k1", true)
	waitStatus(t, b, "Ready", 60*time.Second)
	f.WaitState(rg, "srv-cmk", "Ready", 5*time.Second)
	if !sameStatus(b) {
		t.Fatal("the overview was reloaded or re-rendered: its status should change in place")
	}

	// Restart, confirmed: PostgreSQL starts anew.
	before := f.PSQL(rg, "srv-cmk", "pgadmin", srvPassword, "SELECT pg_postmaster_start_time()")
	b.Click("button", "Restart server")
	b.Within("alertdialog", "Restart server").Click("button", "Yes")
	b.WaitText("Restarted server 'srv-cmk'.", 90*time.Second)
	waitStatus(t, b, "Ready", 30*time.Second)
	if after := f.PSQL(rg, "srv-cmk", "pgadmin", srvPassword, "SELECT pg_postmaster_start_time()"); after == before {
		t.Fatalf("PostgreSQL's start time is still %s after Restart", after)
	}
	t.Logf("overview done at %s", time.Since(started).Round(time.Second))

	// Networking: the client's address and a typed rule added, checked through the API; the
	// typed one deleted.
	b.Go("/resource" + cmkPath + "?blade=networking")
	b.WaitText("Public network access: Enabled", 10*time.Second)
	// The overview's polling ended with it: no read of the server in two polls' time.
	b.Eval(`performance.clearResourceTimings(), true`, new(bool))
	time.Sleep(4500 * time.Millisecond) // a window in which a leaked timer would poll twice
	var polls int
	b.Eval(`performance.getEntriesByType('resource').filter((e) => /flexibleServers\/srv-cmk\?/.test(e.name)).length`, &polls)
	if polls != 0 {
		t.Fatalf("the overview still polls the server after it was left (%d reads)", polls)
	}
	b.Click("button", "Add current client IP address")
	if got := b.Value("textbox", "Start IP address"); got != "127.0.0.1" {
		t.Fatalf("Add current client IP address filled in %q", got)
	}
	clientRule := b.Value("textbox", "Firewall rule name")
	b.Click("button", "Save firewall rule")
	b.WaitFor("cell", clientRule)
	fw := f.must(http.MethodGet, cmkPath+"/firewallRules/"+clientRule, apiPostgres, nil)
	if props(fw)["startIpAddress"] != "127.0.0.1" || props(fw)["endIpAddress"] != "127.0.0.1" {
		t.Fatalf("client rule %v", fw)
	}
	// A refused rule: the API's message inline, the form as it was, nothing created.
	b.ExpectAPIErrors()
	b.Fill("Firewall rule name", "bad")
	b.Fill("Start IP address", "300.1.1.1")
	b.Fill("End IP address", "300.1.1.9")
	b.Click("button", "Save firewall rule")
	b.WaitAlert("The IP address '300.1.1.1' is not valid", 20*time.Second)
	if got := b.Value("textbox", "Start IP address"); got != "300.1.1.1" {
		t.Fatalf("a refused rule emptied the form: %q", got)
	}
	if st := d.ARM(t, http.MethodGet, cmkPath+"/firewallRules/bad?api-version="+apiPostgres, nil).Status; st != http.StatusNotFound {
		t.Fatalf("the refused rule answers %d", st)
	}
	b.Fill("Firewall rule name", "office")
	b.Fill("Start IP address", "203.0.113.1")
	b.Fill("End IP address", "203.0.113.9")
	b.Click("button", "Save firewall rule")
	b.WaitFor("cell", "office")
	fw = f.must(http.MethodGet, cmkPath+"/firewallRules/office", apiPostgres, nil)
	if props(fw)["startIpAddress"] != "203.0.113.1" || props(fw)["endIpAddress"] != "203.0.113.9" {
		t.Fatalf("office rule %v", fw)
	}
	b.Click("button", "Delete firewall rule office")
	b.Within("alertdialog", "Delete firewall rule").Click("button", "Delete")
	b.WaitGone("cell", "office", 20*time.Second)
	if st := d.ARM(t, http.MethodGet, cmkPath+"/firewallRules/office?api-version="+apiPostgres, nil).Status; st != http.StatusNotFound {
		t.Fatalf("the deleted rule answers %d", st)
	}

	// Identity: Add one, Remove it; removing the encryption identity is refused inline.
	b.Go("/resource" + cmkPath + "?blade=identity")
	b.WaitFor("cell", "id-enc")
	b.Click("button", "Add user assigned managed identity")
	dlg := b.Within("dialog", "Add user assigned managed identity")
	dlg.Click("checkbox", "id-extra")
	dlg.Click("button", "Add")
	b.WaitFor("cell", "id-extra")
	if !hasIdentity(f.Server(rg, "srv-cmk"), extraID) {
		t.Fatalf("id-extra is not assigned: %v", identityIDs(f.Server(rg, "srv-cmk")))
	}
	b.Click("button", "Remove identity id-extra")
	b.Within("alertdialog", "Remove identity").Click("button", "Remove")
	b.WaitGone("cell", "id-extra", 20*time.Second)
	if hasIdentity(f.Server(rg, "srv-cmk"), extraID) {
		t.Fatal("id-extra is still assigned after Remove")
	}
	b.ExpectAPIErrors()
	b.Click("button", "Remove identity id-enc")
	b.Within("alertdialog", "Remove identity").Click("button", "Remove")
	b.WaitAlert("Cannot remove identity "+encID+" because it's used for data encryption.", 20*time.Second)
	if !hasIdentity(f.Server(rg, "srv-cmk"), encID) {
		t.Fatal("the encryption identity was removed")
	}
	t.Logf("networking and identity done at %s", time.Since(started).Round(time.Second))

	// Data encryption: a new key by Key identifier, pinned to its version.
	b.Go("/resource" + cmkPath + "?blade=dataencryption")
	b.WaitText("Key version in use", 10*time.Second)
	if got := b.Value("combobox", "User assigned managed identity"); !strings.EqualFold(got, encID) {
		t.Fatalf("the identity drop-down shows %q, want %s", got, encID)
	}
	if b.Checked("checkbox", "Use automatic key version update") {
		t.Fatal("a server pinned to a version shows automatic key version update")
	}
	// A key of a vault without purge protection: the API's refusal inline, nothing changes.
	weak := f.Vault(rg, "kv-weak", loc, false)
	weakKid := weak.Key("kw")
	b.Click("radio", "Key identifier")
	b.Fill("Key identifier", weakKid)
	b.Click("button", "Save")
	b.WaitAlert("must have soft delete and purge protection enabled to hold a data encryption key", 30*time.Second)
	if de := DataEncryption(f.Server(rg, "srv-cmk")); de["primaryKeyURI"] != kid1 {
		t.Fatalf("a refused Save changed the key to %v", de["primaryKeyURI"])
	}
	kid2 := v.Key("k2")
	b.Fill("Key identifier", kid2)
	b.Click("button", "Save")
	b.WaitText("Saved data encryption settings.", 60*time.Second)
	de := DataEncryption(f.Server(rg, "srv-cmk"))
	if de["primaryKeyURI"] != kid2 {
		t.Fatalf("primaryKeyURI %v, want %s", de["primaryKeyURI"], kid2)
	}
	b.WaitText(kid2, 5*time.Second)

	// Select a key, with automatic key version update: the versionless key.
	v.Key("k3")
	b.Click("checkbox", "Use automatic key version update")
	b.Click("radio", "Select a key")
	b.Click("button", "Select key")
	pick := b.Within("dialog", "Select a key")
	pick.Choose("Key vault", "kv-blades")
	pick.Choose("Key", "k3")
	pick.Click("button", "Select")
	b.WaitText("Selected key: "+v.URI+"/keys/k3", 10*time.Second)
	b.Click("button", "Save")
	// The text of the previous Save may still be there: the API decides.
	de = waitEncryption(f, rg, "srv-cmk", "primaryKeyURI", v.URI+"/keys/k3")
	b.WaitText("Saved data encryption settings.", 60*time.Second)
	if de["primaryKeyURI"] != v.URI+"/keys/k3" {
		t.Fatalf("primaryKeyURI %v, want the versionless %s/keys/k3", de["primaryKeyURI"], v.URI)
	}
	iu, _ := de["primaryKeyVersionInUse"].(string)
	if iu == "" {
		t.Fatalf("no version in use: %v", de)
	}
	b.WaitText(iu, 5*time.Second) // the blade shows the version in use

	// Create: a new identity from the panel, assigned and selected; Save is refused until the
	// identity may use the key, then succeeds.
	b.Click("button", "Create")
	cp := b.Within("dialog", "Create User Assigned Managed Identity")
	cp.Fill("Name", "id-new")
	cp.Click("button", "Create")
	b.WaitText("Assigned identity 'id-new'", 30*time.Second)
	newID := f.groupPath(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-new"
	if got := b.Value("combobox", "User assigned managed identity"); !strings.EqualFold(got, newID) {
		t.Fatalf("the identity drop-down shows %q after Create, want %s", got, newID)
	}
	if !hasIdentity(f.Server(rg, "srv-cmk"), newID) {
		t.Fatal("the created identity is not assigned to the server")
	}
	b.Click("button", "Save")
	b.WaitAlert("does not exist or User Assigned Identity does not have Get access to the Key", 30*time.Second)
	if de := DataEncryption(f.Server(rg, "srv-cmk")); !strings.EqualFold(de["primaryUserAssignedIdentityId"].(string), encID) {
		t.Fatalf("a refused Save changed the identity to %v", de["primaryUserAssignedIdentityId"])
	}
	idn := f.must(http.MethodGet, newID, apiIdentity, nil)
	v.Allow(props(idn)["principalId"].(string))
	b.Click("button", "Save")
	b.WaitText("Saved data encryption settings.", 60*time.Second)
	de = DataEncryption(f.Server(rg, "srv-cmk"))
	if !strings.EqualFold(de["primaryUserAssignedIdentityId"].(string), newID) || de["primaryKeyURI"] != v.URI+"/keys/k3" {
		t.Fatalf("after Save: %v", de)
	}
	f.WaitState(rg, "srv-cmk", "Ready", 60*time.Second)
	if got := f.PSQL(rg, "srv-cmk", "pgadmin", srvPassword, "SELECT v FROM kept"); got != "before" {
		t.Fatalf("after the key and identity changes psql reads %q", got)
	}
	// Select: an existing identity assigned to the server and selected (not saved).
	b.Click("button", "Select")
	sp := b.Within("dialog", "Select user assigned managed identity")
	sp.Click("radio", "id-extra")
	sp.Click("button", "Add")
	b.WaitText("Assigned identity 'id-extra'", 30*time.Second)
	if got := b.Value("combobox", "User assigned managed identity"); !strings.EqualFold(got, extraID) {
		t.Fatalf("the identity drop-down shows %q after Select, want %s", got, extraID)
	}
	if !hasIdentity(f.Server(rg, "srv-cmk"), extraID) {
		t.Fatal("the selected identity is not assigned to the server")
	}
	t.Logf("data encryption done at %s", time.Since(started).Round(time.Second))

	// The geo-backup key of a geo-redundant server: its own identity and key, changed alone.
	f.waitOp(opGeo)
	geoPath := f.ServerPath(rg, "srv-geo")
	b.Go("/resource" + geoPath + "?blade=dataencryption")
	b.WaitText("Geo-backup key version in use", 10*time.Second)
	if got := b.Value("combobox", "Geo-backup user assigned managed identity"); !strings.EqualFold(got, geoID) {
		t.Fatalf("the geo-backup identity drop-down shows %q, want %s", got, geoID)
	}
	if got := b.Value("textbox", "Geo-backup key identifier"); got != geoKid {
		t.Fatalf("the geo-backup key identifier shows %q, want %s", got, geoKid)
	}
	geoKid2 := vg.Key("kg2")
	b.Fill("Geo-backup key identifier", geoKid2)
	b.Click("button", "Save")
	b.WaitText("Saved data encryption settings.", 60*time.Second)
	de = DataEncryption(f.Server(rg, "srv-geo"))
	if de["geoBackupKeyURI"] != geoKid2 || !strings.EqualFold(de["geoBackupUserAssignedIdentityId"].(string), geoID) || de["primaryKeyURI"] != geoPrimaryKid {
		t.Fatalf("after the geo-backup key change: %v", de)
	}
	b.WaitText(geoKid2, 5*time.Second)
	// Select a geo-backup key lists the paired region's key stores; automatic update: versionless.
	b.Click("checkbox", "Use automatic key version update for the geo-backup key")
	b.Click("radio", "Select a geo-backup key")
	b.Click("button", "Select geo-backup key")
	gp := b.Within("dialog", "Select a geo-backup key")
	gp.Choose("Key vault", "kv-blades-west")
	gp.Choose("Key", "kg2")
	gp.Click("button", "Select")
	b.Click("button", "Save")
	waitEncryption(f, rg, "srv-geo", "geoBackupKeyURI", vg.URI+"/keys/kg2")
	b.WaitText("Saved data encryption settings.", 60*time.Second)
	if de := DataEncryption(f.Server(rg, "srv-geo")); de["geoBackupKeyURI"] != vg.URI+"/keys/kg2" || de["primaryKeyURI"] != geoPrimaryKid {
		t.Fatalf("after Select a geo-backup key: %v", de)
	}
	// Opened afresh, the blade shows the versionless key with automatic update; unchecking it
	// pins the key to the version in use.
	b.Reload()
	b.WaitText("Geo-backup key version in use", 10*time.Second)
	if !b.Checked("checkbox", "Use automatic key version update for the geo-backup key") || b.Value("textbox", "Geo-backup key identifier") != vg.URI+"/keys/kg2" {
		t.Fatal("a versionless geo-backup key is not shown with automatic key version update")
	}
	b.Click("checkbox", "Use automatic key version update for the geo-backup key")
	geoInUse, _ := DataEncryption(f.Server(rg, "srv-geo"))["geoBackupKeyVersionInUse"].(string)
	if got := b.Value("textbox", "Geo-backup key identifier"); geoInUse == "" || got != vg.URI+"/keys/kg2/"+geoInUse {
		t.Fatalf("unchecking automatic update left the geo-backup key identifier %q (version in use %q)", got, geoInUse)
	}

	// A service-managed-key server: its key type cannot change here.
	smkPath := f.ServerPath(rg, "srv-smk")
	b.Go("/resource" + smkPath + "?blade=dataencryption")
	b.WaitText("The key type can't be changed", 10*time.Second)
	if b.Has("button", "Save") {
		t.Fatal("an SMK server's Data encryption blade offers Save")
	}

	// Delete, confirmed: back to the servers list, and the server is gone.
	b.Go("/resource" + smkPath)
	waitStatus(t, b, "Ready", 20*time.Second)
	// A narrow window: nothing wider than the page.
	b.SetViewport(390, 844)
	for _, c := range []struct{ blade, heading string }{{"?blade=networking", "Firewall rules"},
		{"?blade=identity", "User assigned managed identities"}, {"?blade=dataencryption", "Data encryption key"}, {"", "Essentials"}} {
		b.Go("/resource" + smkPath + c.blade)
		b.WaitFor("heading", c.heading)
		var fits bool
		b.Eval(`document.documentElement.scrollWidth <= window.innerWidth`, &fits)
		if !fits {
			t.Fatalf("the %q blade is wider than a narrow window", c.blade)
		}
	}
	waitStatus(t, b, "Ready", 20*time.Second)
	b.Click("button", "Delete server")
	b.Within("alertdialog", "Delete server").Click("button", "Delete")
	b.WaitForLong("heading", "Azure Database for PostgreSQL flexible servers", 90*time.Second)
	if st := f.ServerStatus(rg, "srv-smk"); st != http.StatusNotFound {
		t.Fatalf("the deleted server answers %d", st)
	}
	t.Logf("all done in %s", time.Since(started).Round(time.Second))
}
