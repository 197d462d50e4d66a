package portal_test

// The seed's preparation steps through the portal: a user-assigned managed identity, a key
// vault (purge protection, soft-delete retention, access policies or Azure RBAC) or a Managed
// HSM (local RBAC), and a key, each made with the UI and checked through the API.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

const (
	armScope   = "https://management.azure.com/.default"
	vaultScope = "https://vault.localhost/.default"
	hsmScope   = "https://managedhsm.localhost/.default"
)

func ksPath(d *testenv.Daemon, group, typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", d.Profile().SubscriptionID, group, typ, name)
}

// ksIdentity makes a managed identity in eastus through the API and returns its principal id.
func ksIdentity(t *testing.T, d *testenv.Daemon, group, name string) string {
	t.Helper()
	_, principal := newFx(t, d).Identity(group, name, "eastus")
	return principal
}

// adminOID is the signed-in administrator's object id, from its token's oid claim.
func adminOID(t *testing.T, d *testenv.Daemon) string {
	t.Helper()
	return testkit.TokenOID(t, d.Token(t, armScope))
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// tableRows counts the body rows of the table with caption.
func tableRows(b *Browser, caption string) int {
	var n int
	b.Eval(fmt.Sprintf(`(() => { const t = [...document.querySelectorAll('table')].find((t) => t.caption && t.caption.textContent === %q); return t ? t.tBodies[0].rows.length : -1; })()`, caption), &n)
	return n
}

func waitRows(t *testing.T, b *Browser, caption string, want int) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		n := tableRows(b, caption)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("table %q has %d rows, want %d", caption, n, want)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func TestPortalIdentities(t *testing.T) {
	t.Parallel()
	d := testenv.Start(t, testenv.Options{})
	newFx(t, d).Group("rg-old", "eastus")
	b := NewBrowser(t, d)
	b.Go("/browse/identities")
	b.WaitFor("heading", "Managed Identities")
	b.WaitText("No managed identities yet", stepTimeout)

	// Create, in a resource group made from the pane (the pane's Create new), whose region the
	// pane then proposes.
	b.Click("button", "Create")
	p := b.Within("dialog", "Create User Assigned Managed Identity")
	// Escape in the pane over the pane closes that one only; focus goes back to the button
	// that opened it, and the pane under it is usable again.
	p.Click("button", "Create new resource group")
	b.WaitFor("dialog", "Create a resource group")
	b.Press("Escape")
	b.WaitGone("dialog", "Create a resource group", stepTimeout)
	b.WaitFor("dialog", "Create User Assigned Managed Identity")
	if role, name := b.Focused(); role != "button" || name != "Create new resource group" {
		t.Fatalf("after Escape the focus is on %s %q, want the button that opened the pane", role, name)
	}
	p.Click("button", "Create new resource group")
	g := b.Within("dialog", "Create a resource group")
	g.Fill("Resource group name", "rg-ids")
	g.Choose("Region", "West Europe")
	g.Click("button", "Create")
	b.WaitGone("dialog", "Create a resource group", stepTimeout)
	deadline := time.Now().Add(stepTimeout)
	for p.Value("combobox", "Resource group") != "rg-ids" || p.Value("combobox", "Region") != "westeurope" {
		if time.Now().After(deadline) {
			t.Fatalf("the pane did not select the new group and its region: %q %q", p.Value("combobox", "Resource group"), p.Value("combobox", "Region"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Fill("Name", "pg-cmk-id")
	p.Click("button", "Create")
	b.WaitFor("link", "pg-cmk-id")

	path := ksPath(d, "rg-ids", "Microsoft.ManagedIdentity/userAssignedIdentities", "pg-cmk-id") + "?api-version=2023-01-31"
	r := d.ARM(t, http.MethodGet, path, nil)
	principal, _ := props(r.Body)["principalId"].(string)
	if r.Status != 200 || len(principal) != 36 || r.Body["location"] != "westeurope" {
		t.Fatalf("the identity through the API: %d %s", r.Status, r.Raw)
	}

	// Its page shows what the key store's permissions need: the object (principal) id.
	b.Click("link", "pg-cmk-id")
	b.WaitFor("heading", "pg-cmk-id")
	b.WaitText("Object (principal) ID", stepTimeout)
	b.WaitText(principal, stepTimeout)
	b.WaitText(fmt.Sprint(props(r.Body)["clientId"]), stepTimeout)

	// Delete from the list, after confirming.
	b.Go("/browse/identities")
	b.Click("button", "Delete identity pg-cmk-id")
	b.Within("alertdialog", "Delete managed identity").Click("button", "Delete")
	b.WaitText("Deleted managed identity pg-cmk-id", stepTimeout)
	b.WaitGone("link", "pg-cmk-id", stepTimeout)
	if r := d.ARM(t, http.MethodGet, path, nil); r.Status != 404 {
		t.Fatalf("the deleted identity: %d %s", r.Status, r.Raw)
	}

	// And from an identity's own page.
	ksIdentity(t, d, "rg-old", "other-id")
	b.Click("button", "Refresh")
	b.Click("link", "other-id")
	b.Click("button", "Delete identity other-id")
	b.Within("alertdialog", "Delete managed identity").Click("button", "Delete")
	b.WaitFor("heading", "Managed Identities")
	if r := d.ARM(t, http.MethodGet, ksPath(d, "rg-old", "Microsoft.ManagedIdentity/userAssignedIdentities", "other-id")+"?api-version=2023-01-31", nil); r.Status != 404 {
		t.Fatalf("the identity deleted from its page: %d %s", r.Status, r.Raw)
	}
}

func TestPortalKeyVault(t *testing.T) {
	t.Parallel()
	d := testenv.Start(t, testenv.Options{})
	newFx(t, d).Group("rg", "eastus")
	oid := ksIdentity(t, d, "rg", "cmk-id")
	admin := adminOID(t, d)
	b := NewBrowser(t, d)
	b.ExpectAPIErrors() // the invalid name below
	b.Go("/browse/vaults")
	b.WaitFor("heading", "Key vaults")
	b.Click("button", "Create")
	p := b.Within("dialog", "Create a key vault")
	p.Choose("Resource group", "rg")

	// A name Azure refuses: the API's code and message inline, the pane as it was, no vault.
	p.Fill("Key vault name", "a")
	p.Fill("Days to retain deleted vaults", "14")
	p.Click("radio", "Enable purge protection")
	p.Click("button", "Create")
	b.WaitAlert("VaultNameNotValid", stepTimeout)
	if !p.Checked("radio", "Enable purge protection") || p.Value("textbox", "Key vault name") != "a" {
		t.Fatal("the failed create changed the form")
	}
	list := d.ARM(t, http.MethodGet, fmt.Sprintf("/subscriptions/%s/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01", d.Profile().SubscriptionID), nil)
	if v, _ := list.Body["value"].([]any); list.Status != 200 || len(v) != 0 {
		t.Fatalf("vaults after the refused create: %d %s", list.Status, list.Raw)
	}

	p.Fill("Key vault name", "kvportal1")
	p.Click("button", "Create")
	b.WaitFor("link", "kvportal1")
	vaultPath := ksPath(d, "rg", "Microsoft.KeyVault/vaults", "kvportal1") + "?api-version=2023-07-01"
	v := props(d.ARM(t, http.MethodGet, vaultPath, nil).Body)
	if v["enablePurgeProtection"] != true || v["softDeleteRetentionInDays"] != float64(14) || v["enableRbacAuthorization"] != false {
		t.Fatalf("the vault's properties: %v", v)
	}
	policies := v["accessPolicies"].([]any)
	if len(policies) != 1 || !strings.EqualFold(fmt.Sprint(policies[0].(map[string]any)["objectId"]), admin) ||
		!slices.Contains(strs(policies[0].(map[string]any)["permissions"].(map[string]any)["keys"]), "wrapKey") {
		t.Fatalf("the creator's access policy: %v", policies)
	}
	vaultURI := strings.TrimRight(fmt.Sprint(v["vaultUri"]), "/")

	// A key: create, rotate (two versions), disable, enable.
	b.Click("link", "kvportal1")
	b.WaitFor("heading", "kvportal1")
	if got := b.Value("textbox", "Vault URI"); strings.TrimRight(got, "/") != vaultURI {
		t.Fatalf("the page's Vault URI is %q, want %s", got, vaultURI)
	}
	b.Click("tab", "Keys")
	b.Click("button", "Generate/Import")
	k := b.Within("dialog", "Create a key")
	k.Fill("Name", "pgkey")
	k.Choose("RSA key size", "3072")
	k.Click("button", "Create")
	b.Click("button", "Rotate key pgkey")
	waitRows(t, b, "Versions of key pgkey", 2)
	kvTok := d.Token(t, vaultScope)
	vs := d.Do(t, http.MethodGet, vaultURI+"/keys/pgkey/versions?api-version=7.4", kvTok, nil)
	if items, _ := vs.Body["value"].([]any); vs.Status != 200 || len(items) != 2 {
		t.Fatalf("the key's versions through the API: %d %s", vs.Status, vs.Raw)
	}
	keyEnabled := func() bool {
		r := d.Do(t, http.MethodGet, vaultURI+"/keys/pgkey?api-version=7.4", kvTok, nil)
		if r.Status != 200 {
			t.Fatalf("get key: %d %s", r.Status, r.Raw)
		}
		if n := r.Body["key"].(map[string]any)["n"].(string); len(n) < 500 {
			t.Fatalf("not a 3072-bit key: %d", len(n))
		}
		return r.Body["attributes"].(map[string]any)["enabled"] == true
	}
	b.Click("button", "Disable key pgkey")
	b.WaitFor("button", "Enable key pgkey")
	if keyEnabled() {
		t.Fatal("the key is still enabled after Disable")
	}
	b.Click("button", "Enable key pgkey")
	b.WaitFor("button", "Disable key pgkey")
	if !keyEnabled() {
		t.Fatal("the key is still disabled after Enable")
	}

	// One version, the older: disabled alone.
	var older string
	for _, x := range vs.Body["value"].([]any) {
		kid := fmt.Sprint(x.(map[string]any)["kid"])
		if v := kid[strings.LastIndex(kid, "/")+1:]; !strings.HasSuffix(fmt.Sprint(d.Do(t, http.MethodGet, vaultURI+"/keys/pgkey?api-version=7.4", kvTok, nil).Body["key"].(map[string]any)["kid"]), v) {
			older = v
		}
	}
	b.Click("button", "Disable version "+older)
	b.WaitFor("button", "Enable version "+older)
	if r := d.Do(t, http.MethodGet, vaultURI+"/keys/pgkey/"+older+"?api-version=7.4", kvTok, nil); r.Body["attributes"].(map[string]any)["enabled"] != false || !keyEnabled() {
		t.Fatalf("after disabling the older version: %s", r.Raw)
	}

	// Delete the key (soft delete), after confirming.
	b.Click("button", "Delete key pgkey")
	b.Within("alertdialog", "Delete key").Click("button", "Delete")
	b.WaitGone("button", "Delete key pgkey", stepTimeout)
	if r := d.Do(t, http.MethodGet, vaultURI+"/keys/pgkey?api-version=7.4", kvTok, nil); r.Status != 404 {
		t.Fatalf("the deleted key: %d %s", r.Status, r.Raw)
	}

	// The identity's access policy: Get, Wrap Key, Unwrap Key.
	b.Click("tab", "Access policies")
	b.Click("button", "Add access policy")
	ap := b.Within("dialog", "Add access policy")
	for _, perm := range []string{"Get", "Wrap Key", "Unwrap Key"} {
		ap.Click("checkbox", perm)
	}
	ap.Choose("Select principal", fmt.Sprintf("cmk-id (%s)", oid))
	ap.Click("button", "Add")
	b.WaitFor("button", "Remove access policy of cmk-id")
	var got []string
	for _, p := range props(d.ARM(t, http.MethodGet, vaultPath, nil).Body)["accessPolicies"].([]any) {
		if m := p.(map[string]any); strings.EqualFold(fmt.Sprint(m["objectId"]), oid) {
			got = strs(m["permissions"].(map[string]any)["keys"])
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"get", "unwrapKey", "wrapKey"}) {
		t.Fatalf("the identity's key permissions: %v", got)
	}

	// Remove it again.
	b.Click("button", "Remove access policy of cmk-id")
	b.Within("alertdialog", "Remove access policy").Click("button", "Remove")
	b.WaitGone("button", "Remove access policy of cmk-id", stepTimeout)
	for _, p := range props(d.ARM(t, http.MethodGet, vaultPath, nil).Body)["accessPolicies"].([]any) {
		if strings.EqualFold(fmt.Sprint(p.(map[string]any)["objectId"]), oid) {
			t.Fatalf("the removed access policy is still there: %v", p)
		}
	}
}

func TestPortalKeyVaultRBAC(t *testing.T) {
	t.Parallel()
	d := testenv.Start(t, testenv.Options{})
	newFx(t, d).Group("rg", "eastus")
	oid := ksIdentity(t, d, "rg", "cmk-id")
	b := NewBrowser(t, d)
	b.Go("/browse/vaults")
	b.Click("button", "Create")
	p := b.Within("dialog", "Create a key vault")
	p.Choose("Resource group", "rg")
	p.Fill("Key vault name", "kvrbac1")
	p.Click("radio", "Azure role-based access control")
	p.Click("button", "Create")
	b.WaitFor("link", "kvrbac1")
	vaultID := ksPath(d, "rg", "Microsoft.KeyVault/vaults", "kvrbac1")
	v := props(d.ARM(t, http.MethodGet, vaultID+"?api-version=2023-07-01", nil).Body)
	if v["enableRbacAuthorization"] != true || len(v["accessPolicies"].([]any)) != 0 || v["softDeleteRetentionInDays"] != float64(90) || v["enablePurgeProtection"] == true {
		t.Fatalf("the RBAC vault: %v", v)
	}

	b.Click("link", "kvrbac1")
	b.WaitFor("heading", "kvrbac1")
	if b.Has("tab", "Access policies") {
		t.Fatal("an RBAC vault shows access policies")
	}

	// Purge protection, which the seed requires, turned on from the overview.
	b.Click("button", "Enable purge protection")
	b.Within("alertdialog", "Enable purge protection").Click("button", "Enable")
	b.WaitGone("button", "Enable purge protection", stepTimeout)
	if v := props(d.ARM(t, http.MethodGet, vaultID+"?api-version=2023-07-01", nil).Body); v["enablePurgeProtection"] != true {
		t.Fatalf("purge protection after Enable: %v", v)
	}

	// The creator of an RBAC vault has no key access until a role gives it: the refusal shows,
	// with what to do; the role, given by pasting one's object id, lets the keys show.
	b.ExpectAPIErrors()
	b.Click("tab", "Keys")
	b.WaitAlert("Forbidden", stepTimeout)
	b.WaitText("assign yourself Key Vault Crypto Officer", stepTimeout)
	b.Click("tab", "Access control (IAM)")
	b.Click("button", "Add role assignment")
	a := b.Within("dialog", "Add role assignment")
	a.Choose("Role", "Key Vault Crypto Officer")
	a.Fill("Object ID", adminOID(t, d))
	a.Click("button", "Review + assign")
	b.WaitFor("button", "Remove role assignment Key Vault Crypto Officer of pgflex-admin (you)")
	b.Click("tab", "Keys")
	b.Click("button", "Refresh keys")
	b.WaitText("has no keys yet", stepTimeout)
	b.Click("button", "Generate/Import")
	b.Within("dialog", "Create a key").Fill("Name", "rbackey")
	b.Within("dialog", "Create a key").Click("button", "Create")
	b.WaitFor("button", "Rotate key rbackey")
	b.Click("tab", "Access control (IAM)")
	b.Click("button", "Add role assignment")
	a = b.Within("dialog", "Add role assignment")
	a.Choose("Role", "Key Vault Crypto Service Encryption User")
	a.Choose("Member", fmt.Sprintf("cmk-id (%s)", oid))
	a.Click("button", "Review + assign")
	remove := "Remove role assignment Key Vault Crypto Service Encryption User of cmk-id"
	b.WaitFor("button", remove)
	assigned := func() bool {
		r := d.ARM(t, http.MethodGet, vaultID+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()", nil)
		if r.Status != 200 {
			t.Fatalf("list role assignments: %d %s", r.Status, r.Raw)
		}
		for _, x := range r.Body["value"].([]any) {
			p := x.(map[string]any)["properties"].(map[string]any)
			if strings.EqualFold(fmt.Sprint(p["principalId"]), oid) && strings.EqualFold(fmt.Sprint(p["scope"]), vaultID) &&
				strings.HasSuffix(fmt.Sprint(p["roleDefinitionId"]), "/"+rbac.RoleKeyVaultCryptoServiceEncryptionUser) {
				return true
			}
		}
		return false
	}
	if !assigned() {
		t.Fatal("no role assignment for the identity at the vault")
	}
	b.Click("button", remove)
	b.Within("alertdialog", "Remove role assignment").Click("button", "Remove")
	b.WaitGone("button", remove, stepTimeout)
	if assigned() {
		t.Fatal("the removed role assignment is still there")
	}

	// Delete the vault from its page: soft-deleted, listed as deleted.
	b.Click("button", "Delete key vault kvrbac1")
	b.Within("alertdialog", "Delete key vault").Click("button", "Delete")
	b.WaitFor("heading", "Key vaults")
	b.WaitText("No key vaults yet", stepTimeout)
	if r := d.ARM(t, http.MethodGet, vaultID+"?api-version=2023-07-01", nil); r.Status != 404 {
		t.Fatalf("the deleted vault: %d %s", r.Status, r.Raw)
	}
	deleted := d.ARM(t, http.MethodGet, fmt.Sprintf("/subscriptions/%s/providers/Microsoft.KeyVault/deletedVaults?api-version=2023-07-01", d.Profile().SubscriptionID), nil)
	if !strings.Contains(string(deleted.Raw), `"kvrbac1"`) {
		t.Fatalf("the vault is not soft-deleted: %s", deleted.Raw)
	}
}

func TestPortalManagedHSM(t *testing.T) {
	t.Parallel()
	d := testenv.Start(t, testenv.Options{})
	newFx(t, d).Group("rg", "eastus")
	oid := ksIdentity(t, d, "rg", "cmk-id")
	admin := adminOID(t, d)
	b := NewBrowser(t, d)
	b.Go("/browse/hsms")
	b.WaitFor("heading", "Managed HSMs")
	b.Click("button", "Create")
	p := b.Within("dialog", "Create a managed HSM")
	p.Choose("Resource group", "rg")
	p.Fill("Managed HSM name", "hsmportal1")
	p.Fill("Days to retain deleted managed HSMs", "7")
	if got := p.Value("textbox", "Administrator object IDs"); !strings.EqualFold(got, admin) {
		t.Fatalf("the proposed administrator is %q, want the signed-in %s", got, admin)
	}
	p.Click("button", "Create")
	b.WaitForLong("link", "hsmportal1", time.Minute)
	h := props(d.ARM(t, http.MethodGet, ksPath(d, "rg", "Microsoft.KeyVault/managedHSMs", "hsmportal1")+"?api-version=2023-07-01", nil).Body)
	if h["softDeleteRetentionInDays"] != float64(7) || h["enablePurgeProtection"] != false ||
		!slices.ContainsFunc(strs(h["initialAdminObjectIds"]), func(s string) bool { return strings.EqualFold(s, admin) }) {
		t.Fatalf("the HSM's properties: %v", h)
	}
	hsmURI := strings.TrimRight(fmt.Sprint(h["hsmUri"]), "/")

	b.Click("link", "hsmportal1")
	b.WaitFor("heading", "hsmportal1")
	b.Click("button", "Enable purge protection")
	b.Within("alertdialog", "Enable purge protection").Click("button", "Enable")
	b.WaitGone("button", "Enable purge protection", stepTimeout)
	if h := props(d.ARM(t, http.MethodGet, ksPath(d, "rg", "Microsoft.KeyVault/managedHSMs", "hsmportal1")+"?api-version=2023-07-01", nil).Body); h["enablePurgeProtection"] != true || h["softDeleteRetentionInDays"] != float64(7) {
		t.Fatalf("the HSM after Enable purge protection: %v", h)
	}
	b.Click("tab", "Keys")
	b.Click("button", "Generate/Import")
	k := b.Within("dialog", "Create a key")
	k.Fill("Name", "hsmkey")
	if !k.Checked("radio", "RSA-HSM") {
		t.Fatal("an HSM's key is not RSA-HSM by default")
	}
	k.Choose("RSA key size", "4096")
	k.Click("button", "Create")
	b.WaitFor("button", "Rotate key hsmkey")
	tok := d.Token(t, hsmScope)
	if r := d.Do(t, http.MethodGet, hsmURI+"/keys/hsmkey?api-version=7.4", tok, nil); r.Status != 200 || r.Body["key"].(map[string]any)["kty"] != "RSA-HSM" {
		t.Fatalf("the HSM's key through the API: %d %s", r.Status, r.Raw)
	}

	// The identity's local role on the key.
	b.Click("tab", "Local RBAC")
	b.Click("button", "Add role assignment")
	a := b.Within("dialog", "Add role assignment")
	a.Choose("Role", "Managed HSM Crypto Service Encryption User")
	a.Choose("Scope", "Key hsmkey (/keys/hsmkey)")
	a.Choose("Member", fmt.Sprintf("cmk-id (%s)", oid))
	a.Click("button", "Review + assign")
	b.WaitFor("button", "Remove role assignment Managed HSM Crypto Service Encryption User of cmk-id at /keys/hsmkey")
	r := d.Do(t, http.MethodGet, hsmURI+"/keys/hsmkey/providers/Microsoft.Authorization/roleAssignments?api-version=7.4&$filter=atScope()", tok, nil)
	found := false
	for _, x := range r.Body["value"].([]any) {
		p := x.(map[string]any)["properties"].(map[string]any)
		if strings.EqualFold(fmt.Sprint(p["principalId"]), oid) && strings.HasSuffix(fmt.Sprint(p["roleDefinitionId"]), "/"+rbac.RoleManagedHSMCryptoServiceEncryptionUser) {
			found = true
		}
	}
	if r.Status != 200 || !found {
		t.Fatalf("the identity's role assignment on the key: %d %s", r.Status, r.Raw)
	}

	remove := "Remove role assignment Managed HSM Crypto Service Encryption User of cmk-id at /keys/hsmkey"
	b.Click("button", remove)
	b.Within("alertdialog", "Remove role assignment").Click("button", "Remove")
	b.WaitGone("button", remove, stepTimeout)
	r = d.Do(t, http.MethodGet, hsmURI+"/keys/hsmkey/providers/Microsoft.Authorization/roleAssignments?api-version=7.4&$filter=atScope()", tok, nil)
	if v, _ := r.Body["value"].([]any); r.Status != 200 || len(v) != 0 {
		t.Fatalf("role assignments on the key after Remove: %d %s", r.Status, r.Raw)
	}
}
