package portal_test

// The Create server wizard, driven through Chromium by the names a user sees, on a real daemon
// with real PostgreSQL servers; the API (and psql) then shows that what the wizard did is real.

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const (
	createTitle = "Create Azure Database for PostgreSQL flexible server"
	adminUser   = "pgadmin"
	adminPass   = "Portal-Pass-2026!"
	deployWait  = 90 * time.Second
)

// startCreate opens the wizard and fills its Basics and Networking tabs (a firewall rule for this
// browser's address), leaving it on the Security tab.
func startCreate(b *Browser, group, name string, geo bool) {
	b.t.Helper()
	b.Go("/create/postgres")
	b.WaitFor("heading", createTitle)
	b.Choose("Resource group", group)
	b.Fill("Server name", name)
	b.Choose("Region", "East US")
	b.Choose("Compute tier", "Burstable")
	if geo {
		b.Click("checkbox", "Geo-redundant backup")
	}
	b.Fill("Administrator login", adminUser)
	b.Fill("Password", adminPass)
	b.Fill("Confirm password", adminPass)
	b.Click("button", "Next")
	b.WaitFor("checkbox", "Public access")
	if !b.Checked("checkbox", "Public access") {
		b.t.Fatal("Public access is not on by default")
	}
	b.Click("button", "Add current client IP address")
	b.WaitFor("table", "Firewall rules")
	b.WaitText("127.0.0.1", stepTimeout)
	b.Click("tab", "Security")
	b.WaitFor("radio", "Customer-managed key")
}

// chooseIdentity picks an identity with Change identity (or Change geo-backup identity).
func chooseIdentity(b *Browser, button, dialog, identity string) {
	b.t.Helper()
	b.Click("button", button)
	d := b.Within("dialog", dialog)
	d.Click("radio", identity)
	d.Click("button", "Add")
	b.WaitGone("dialog", dialog, stepTimeout)
}

// deploy selects Review + create and Create, waits for the deployment to complete, and goes to
// the new server's page.
func deploy(b *Browser, name string) {
	b.t.Helper()
	b.Click("tab", "Review + create")
	b.WaitFor("table", "Summary")
	b.Click("button", "Create")
	b.WaitFor("heading", "Deployment is in progress")
	b.WaitForLong("heading", "Your deployment is complete", deployWait)
	b.Click("link", "Go to resource")
	b.WaitFor("heading", name+" | Overview")
}

func TestPortalCreateServer(t *testing.T) {
	needServers(t)
	d := testenv.Start(t, testenv.Options{})
	f := newFx(t, d)
	f.Group("rg-create", "eastus")
	// The servers are deleted through the API before the daemon stops: their processes end
	// cleanly instead of being killed under the test's cleanup.
	t.Cleanup(func() {
		for _, s := range []struct{ group, name string }{{"rg-smk", "smk-srv"}, {"rg-create", "cmk-auto"}, {"rg-create", "cmk-pin"}, {"rg-create", "cmk-geo"}} {
			if f.ServerStatus(s.group, s.name) == http.StatusOK {
				f.must(http.MethodDelete, f.ServerPath(s.group, s.name), apiPostgres, nil)
			}
		}
	})
	b := NewBrowser(t, d)

	t.Run("ServiceManagedKey", func(t *testing.T) {
		b := b.on(t)
		f := newFx(t, d)
		// The resource group is made from the wizard (Create new), and is then the one chosen.
		b.Go("/create/postgres")
		b.Click("button", "Create new resource group")
		b.Within("dialog", "Create a resource group").Fill("Resource group name", "rg-smk")
		b.Choose("Region", "East US")
		b.Click("button", "Create")
		b.WaitGone("dialog", "Create a resource group", stepTimeout)
		if got := b.Value("combobox", "Resource group"); got != "rg-smk" {
			t.Fatalf("after Create new the resource group is %q", got)
		}
		f.must(http.MethodGet, f.groupPath("rg-smk"), apiGroups, nil)
		startCreate(b, "rg-smk", "smk-srv", false)
		if !b.Checked("radio", "Service-managed key") {
			t.Fatal("Service-managed key is not the default")
		}
		deploy(b, "smk-srv")
		s := f.WaitState("rg-smk", "smk-srv", "Ready", time.Minute)
		if de := DataEncryption(s); de["type"] != "SystemManaged" {
			t.Fatalf("dataEncryption = %v, want SystemManaged", de)
		}
		if n := props(s)["network"].(map[string]any); n["publicNetworkAccess"] != "Enabled" {
			t.Fatalf("network = %v", n)
		}
		if got := f.PSQL("rg-smk", "smk-srv", adminUser, adminPass, "select current_user"); got != adminUser {
			t.Fatalf("psql as %s: %q", adminUser, got)
		}
		// The name is taken now: the wizard says so before it sends anything.
		startCreate(b, "rg-smk", "smk-srv", false)
		b.Click("tab", "Review + create")
		b.WaitAlert("Validation failed", stepTimeout)
		b.Click("tab", "Basics")
		b.WaitAlert("Specified server name is already used.", stepTimeout)
	})

	t.Run("SelectKeyAutomaticVersion", func(t *testing.T) {
		b := b.on(t)
		f := newFx(t, d)
		idID, principal := f.Identity("rg-create", "id-auto", "eastus")
		v := f.Vault("rg-create", "kv-auto", "eastus", true)
		v.Key("key-auto")
		v.Allow(principal)
		startCreate(b, "rg-create", "cmk-auto", false)
		b.Click("radio", "Customer-managed key")
		chooseIdentity(b, "Change identity", "Select user assigned managed identity", "id-auto")
		if got := b.Value("textbox", "User assigned managed identity"); got != "id-auto" {
			t.Fatalf("identity shown: %q", got)
		}
		b.Click("checkbox", "Use automatic key version update")
		b.Click("button", "Select a key")
		k := b.Within("dialog", "Select a key")
		if !k.Checked("radio", "Key vault") {
			t.Fatal("Key store type is not Key vault by default")
		}
		k.Choose("Key vault", "kv-auto")
		k.Choose("Key", "key-auto")
		if k.Has("combobox", "Version") {
			t.Fatal("a Version drop-down with automatic key version update")
		}
		k.Click("button", "Select")
		b.WaitGone("dialog", "Select a key", stepTimeout)
		want := v.URI + "/keys/key-auto"
		if got := b.Value("textbox", "Key"); got != want {
			t.Fatalf("key shown: %q, want %q", got, want)
		}
		deploy(b, "cmk-auto")
		s := f.WaitState("rg-create", "cmk-auto", "Ready", time.Minute)
		de := DataEncryption(s)
		if de["type"] != "AzureKeyVault" || de["primaryKeyURI"] != want || !strings.EqualFold(de["primaryUserAssignedIdentityId"].(string), idID) {
			t.Fatalf("dataEncryption = %v, want the versionless %s with %s", de, want, idID)
		}
		if got := f.PSQL("rg-create", "cmk-auto", adminUser, adminPass, "select 1"); got != "1" {
			t.Fatalf("psql: %q", got)
		}
		// Automatic key version update: the server follows a rotation.
		newVersion := v.Rotate("key-auto")
		newVersion = newVersion[strings.LastIndex(newVersion, "/")+1:]
		deadline := time.Now().Add(30 * time.Second)
		for DataEncryption(f.Server("rg-create", "cmk-auto"))["primaryKeyVersionInUse"] != newVersion {
			if time.Now().After(deadline) {
				t.Fatalf("the server does not use the rotated version %s: %v", newVersion, DataEncryption(f.Server("rg-create", "cmk-auto")))
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	t.Run("KeyIdentifierPinnedVersion", func(t *testing.T) {
		b := b.on(t)
		f := newFx(t, d)
		_, principal := f.Identity("rg-create", "id-pin", "eastus")
		v := f.Vault("rg-create", "kv-pin", "eastus", true)
		kid := v.Key("key-pin")
		v.Allow(principal)
		startCreate(b, "rg-create", "cmk-pin", false)
		// A second firewall rule, typed in; a backwards range is refused inline first.
		b.Click("tab", "Networking")
		b.Fill("Firewall rule name", "office")
		b.Fill("Start IP address", "10.1.0.9")
		b.Fill("End IP address", "10.1.0.1")
		b.Click("button", "Add firewall rule")
		b.WaitAlert("The end IP address is smaller than the start IP address.", stepTimeout)
		b.Fill("Start IP address", "10.1.0.1")
		b.Fill("End IP address", "10.1.0.9")
		b.Click("button", "Add firewall rule")
		b.WaitFor("cell", "office")
		b.Click("tab", "Security")
		b.Click("radio", "Customer-managed key")
		chooseIdentity(b, "Change identity", "Select user assigned managed identity", "id-pin")
		b.Click("radio", "Key identifier")
		// A versionless identifier without automatic key version update is refused inline.
		b.Fill("Key identifier", v.URI+"/keys/key-pin")
		b.Click("tab", "Review + create")
		b.WaitAlert("Validation failed", stepTimeout)
		b.Click("tab", "Security")
		b.WaitAlert("Without automatic key version update", stepTimeout)
		b.Fill("Key identifier", kid)
		deploy(b, "cmk-pin")
		s := f.WaitState("rg-create", "cmk-pin", "Ready", time.Minute)
		if de := DataEncryption(s); de["primaryKeyURI"] != kid {
			t.Fatalf("primaryKeyURI = %v, want %s", de["primaryKeyURI"], kid)
		}
		if got := f.PSQL("rg-create", "cmk-pin", adminUser, adminPass, "select 2"); got != "2" {
			t.Fatalf("psql: %q", got)
		}
		rules := map[string]string{}
		for _, r := range f.must(http.MethodGet, f.ServerPath("rg-create", "cmk-pin")+"/firewallRules", apiPostgres, nil)["value"].([]any) {
			r := r.(map[string]any)
			p := props(r)
			rules[r["name"].(string)] = p["startIpAddress"].(string) + "-" + p["endIpAddress"].(string)
		}
		if len(rules) != 2 || rules["office"] != "10.1.0.1-10.1.0.9" {
			t.Fatalf("firewall rules: %v", rules)
		}
	})

	t.Run("GeoRedundantTwoKeys", func(t *testing.T) {
		b := b.on(t)
		f := newFx(t, d)
		id1, p1 := f.Identity("rg-create", "id-geo-east", "eastus")
		id2, p2 := f.Identity("rg-create", "id-geo-west", "westus")
		v1 := f.Vault("rg-create", "kv-geo-east", "eastus", true)
		v2 := f.Vault("rg-create", "kv-geo-west", "westus", true)
		kid1 := v1.Key("key-east")
		kid2 := v2.Key("key-west")
		v1.Allow(p1)
		v2.Allow(p2)
		startCreate(b, "rg-create", "cmk-geo", true)
		b.Click("radio", "Customer-managed key")
		chooseIdentity(b, "Change identity", "Select user assigned managed identity", "id-geo-east")
		chooseIdentity(b, "Change geo-backup identity", "Select user assigned managed identity for geo-redundant backup", "id-geo-west")
		// Pinned versions, chosen in the pickers.
		b.Click("button", "Select a key")
		k := b.Within("dialog", "Select a key")
		k.Choose("Key vault", "kv-geo-east")
		if opts := k.Options("Key vault"); slices.Contains(opts, "kv-geo-west") {
			t.Fatalf("the primary key's stores list a vault of another region: %q", opts)
		}
		k.Choose("Key", "key-east")
		k.Choose("Version", kid1[strings.LastIndex(kid1, "/")+1:]+" (current)")
		k.Click("button", "Select")
		b.WaitGone("dialog", "Select a key", stepTimeout)
		b.Click("button", "Select a geo-backup key")
		g := b.Within("dialog", "Select a geo-backup key")
		g.Choose("Key vault", "kv-geo-west")
		if opts := g.Options("Key vault"); slices.Contains(opts, "kv-geo-east") {
			t.Fatalf("the geo-backup key's stores list a vault outside the paired region: %q", opts)
		}
		g.Choose("Key", "key-west")
		g.Choose("Version", kid2[strings.LastIndex(kid2, "/")+1:]+" (current)")
		g.Click("button", "Select")
		b.WaitGone("dialog", "Select a geo-backup key", stepTimeout)
		if path := os.Getenv("PGFLEX_PORTAL_README_SHOT"); path != "" {
			// The README's picture of the Security tab: the whole tab, at the desktop width.
			b.SetViewport(1280, 1040)
			var ok bool
			b.Eval(`(() => { const s = document.querySelector('.security-section'); s.scrollIntoView(); window.scrollBy(0, -90); return true; })()`, &ok)
			b.Screenshot(path)
			b.SetViewport(1280, 800)
		}
		deploy(b, "cmk-geo")
		s := f.WaitState("rg-create", "cmk-geo", "Ready", time.Minute)
		de := DataEncryption(s)
		if de["primaryKeyURI"] != kid1 || de["geoBackupKeyURI"] != kid2 ||
			!strings.EqualFold(de["primaryUserAssignedIdentityId"].(string), id1) || !strings.EqualFold(de["geoBackupUserAssignedIdentityId"].(string), id2) {
			t.Fatalf("dataEncryption = %v", de)
		}
		if b := props(s)["backup"].(map[string]any); b["geoRedundantBackup"] != "Enabled" {
			t.Fatalf("backup = %v", b)
		}
		if got := f.PSQL("rg-create", "cmk-geo", adminUser, adminPass, "select 3"); got != "3" {
			t.Fatalf("psql: %q", got)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		b := b.on(t)
		b.ExpectAPIErrors()
		f := newFx(t, d)
		f.Identity("rg-create", "id-noperm", "eastus")
		f.Identity("rg-create", "id-other", "eastus")
		good := f.Vault("rg-create", "kv-noperm", "eastus", true)
		goodKey := good.Key("key-np")
		soft := f.Vault("rg-create", "kv-nopurge", "eastus", false)
		softKey := soft.Key("key-soft")
		west := f.Vault("rg-create", "kv-west", "westus", true)
		westKey := west.Key("key-west")
		// At a phone's width: nothing runs off the side of the page.
		b.SetViewport(390, 844)
		defer b.SetViewport(1280, 800)
		vaultWithPolicy(f, "rg-create", "kv-nolist", "eastus", "get")
		startCreate(b, "rg-create", "cmk-refused", false)
		b.Click("radio", "Customer-managed key")
		fitsWidth(b, "Security")

		// Validation that needs no API: a CMK without identity or key.
		b.Click("tab", "Review + create")
		b.WaitAlert("Validation failed", stepTimeout)
		b.Click("tab", "Security")
		b.WaitAlert("Select the identity with which the service reaches the key.", stepTimeout)
		b.WaitAlert("Select a key.", stepTimeout)

		// The identity pane's filter narrows the list by name.
		b.Click("button", "Change identity")
		p := b.Within("dialog", "Select user assigned managed identity")
		p.WaitFor("radio", "id-other")
		p.Fill("Filter by identity name", "noperm")
		p.WaitGone("radio", "id-other", stepTimeout)
		p.Click("radio", "id-noperm")
		p.Click("button", "Add")
		b.WaitGone("dialog", "Select user assigned managed identity", stepTimeout)
		if got := b.Value("textbox", "User assigned managed identity"); got != "id-noperm" {
			t.Fatalf("identity shown: %q", got)
		}

		// Select a key lists only the key stores of the server's region.
		b.Click("button", "Select a key")
		k := b.Within("dialog", "Select a key")
		k.Choose("Key vault", "kv-noperm")
		if opts := k.Options("Key vault"); slices.Contains(opts, "kv-west") {
			t.Fatalf("Select a key lists a vault of another region: %q", opts)
		}
		// A store whose keys the user may not list: the data plane's refusal, inline.
		k.Choose("Key vault", "kv-nolist")
		k.WaitAlert("does not have keys list permission on key vault 'kv-nolist;location=eastus'", stepTimeout)
		k.Click("button", "Cancel")
		b.WaitGone("dialog", "Select a key", stepTimeout)

		b.Click("radio", "Key identifier")
		fitsWidth(b, "Security with a key identifier")
		refusals := []struct{ key, text string }{
			{goodKey, "AzureKeyVaultKeyNameNotFound: The operation could not be completed because the Azure Key Vault Key name '" + goodKey + "' does not exist or User Assigned Identity does not have Get access to the Key"},
			{softKey, "The Key Vault 'kv-nopurge' must have soft delete and purge protection enabled to hold a data encryption key."},
			{westKey, "The Key Vault 'kv-west' holding the primary key is in region 'westus'; it must be in the server's region, 'eastus'."},
		}
		for _, r := range refusals {
			b.Click("tab", "Security")
			b.Fill("Key identifier", r.key)
			b.Click("tab", "Review + create")
			b.WaitFor("table", "Summary")
			b.Click("button", "Create")
			b.WaitAlert(r.text, 30*time.Second)
			fitsWidth(b, "Review + create with the refusal")
			// The form is as it was, and nothing was created.
			b.Click("tab", "Security")
			if got := b.Value("textbox", "Key identifier"); got != r.key {
				t.Fatalf("after the refusal the key identifier is %q", got)
			}
			if st := f.ServerStatus("rg-create", "cmk-refused"); st != 404 {
				t.Fatalf("after the refusal %q the server's GET answers %d, want 404", r.text, st)
			}
		}
	})
}

// vaultWithPolicy creates a vault with purge protection whose only access policy gives the
// administrator perms on its keys.
func vaultWithPolicy(f *fx, group, name, location string, perms ...string) {
	f.t.Helper()
	v := &Vault{f: f}
	admin := testkit.TokenOID(f.t, f.d.Token(f.t, "https://management.azure.com/.default"))
	f.must(http.MethodPut, f.groupPath(group)+"/providers/Microsoft.KeyVault/vaults/"+name, apiVault, map[string]any{"location": location, "properties": map[string]any{
		"tenantId": f.d.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
		"softDeleteRetentionInDays": 7, "enablePurgeProtection": true, "accessPolicies": []any{v.policy(admin, perms...)}}})
}

// fitsWidth fails the test if the page is wider than the window (a horizontal scroll bar).
func fitsWidth(b *Browser, where string) {
	b.t.Helper()
	var w []int
	b.Eval(`[document.documentElement.scrollWidth, window.innerWidth]`, &w)
	if len(w) != 2 || w[0] > w[1] {
		b.t.Fatalf("%s: the page is %v px wide in a window of %v px", where, w[0], w[1])
	}
}

// on is b for a subtest: its failures are the subtest's.
func (b *Browser) on(t *testing.T) *Browser {
	c := *b
	c.t = t
	return &c
}
