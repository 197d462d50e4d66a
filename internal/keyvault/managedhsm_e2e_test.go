package keyvault_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/arm"
)

// Managed HSM built-in roles.
const (
	hsmRoleServiceEncryption = "33413926-3206-4cdd-b39a-83574fe37a17"
	hsmRoleCryptoUser        = "21dbd100-6940-42c2-9190-5d6cb909625b"
)

func (e *kvEnv) hsms() *armkeyvault.ManagedHsmsClient {
	e.t.Helper()
	c, err := armkeyvault.NewManagedHsmsClient(e.sub, e.cred, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// hsmParams is a create request with the administrator as the initial administrator.
func (e *kvEnv) hsmParams(purgeProtection bool) armkeyvault.ManagedHsm {
	return armkeyvault.ManagedHsm{Location: to.Ptr("eastus"),
		SKU: &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
		Properties: &armkeyvault.ManagedHsmProperties{TenantID: to.Ptr(e.tenant), InitialAdminObjectIDs: []*string{to.Ptr(e.adminOID)},
			SoftDeleteRetentionInDays: to.Ptr[int32](7), EnablePurgeProtection: to.Ptr(purgeProtection)}}
}

func (e *kvEnv) createHSM(rg, name string, p armkeyvault.ManagedHsm) armkeyvault.ManagedHsm {
	e.t.Helper()
	poller, err := e.hsms().BeginCreateOrUpdate(context.Background(), rg, name, p, nil)
	if err != nil {
		e.t.Fatalf("create managed HSM %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(context.Background(), nil)
	if err != nil {
		e.t.Fatalf("create managed HSM %s: %v", name, err)
	}
	return res.ManagedHsm
}

// hsmURL is the data-plane URL of a Managed HSM (no trailing slash).
func (e *kvEnv) hsmURL(name string) string {
	port := e.prof.Endpoint[strings.LastIndex(e.prof.Endpoint, ":")+1:]
	return "https://" + strings.ToLower(name) + "." + e.prof.ManagedHSMDNSSuffix + ":" + port
}

// hsmAssign assigns a local-RBAC role on a Managed HSM through its own host, as
// `az keyvault role assignment create --hsm-name` does, and returns the raw answer.
func (e *kvEnv) hsmAssign(hsm, scope, roleID, principal, token string) answer {
	e.t.Helper()
	body := fmt.Sprintf(`{"properties":{"roleDefinitionId":"Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/%s","principalId":"%s"}}`, roleID, principal)
	return e.do(http.MethodPut, e.hsmURL(hsm)+"/"+scope+"/providers/Microsoft.Authorization/roleAssignments/"+arm.NewGUID()+"?api-version=7.4", token, body)
}

// TestManagedHSM: the Microsoft.KeyVault/managedHSMs resource through armkeyvault, its keys
// through azkeys (RSA-HSM), and its local RBAC: only role assignments made on the HSM itself
// grant anything, at the scope they name.
func TestManagedHSM(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	hsms := e.hsms()

	// Bad requests change nothing.
	bad := []struct {
		name string
		edit func(*armkeyvault.ManagedHsm)
		code string
	}{
		{"no initial administrator", func(p *armkeyvault.ManagedHsm) { p.Properties.InitialAdminObjectIDs = nil }, "InvalidParameterValue"},
		{"unknown sku", func(p *armkeyvault.ManagedHsm) { p.SKU.Name = to.Ptr(armkeyvault.ManagedHsmSKUName("Premium_X")) }, "InvalidParameterValue"},
		{"retention out of range", func(p *armkeyvault.ManagedHsm) { p.Properties.SoftDeleteRetentionInDays = to.Ptr[int32](3) }, "InvalidParameterValue"},
		{"soft delete off", func(p *armkeyvault.ManagedHsm) { p.Properties.EnableSoftDelete = to.Ptr(false) }, "BadRequest"},
	}
	for _, b := range bad {
		p := e.hsmParams(true)
		b.edit(&p)
		_, err := hsms.BeginCreateOrUpdate(ctx, "rg", "hsm1", p, nil)
		respErr(t, b.name, err, 400, b.code)
	}
	_, err := hsms.Get(ctx, "rg", "hsm1", nil)
	respErr(t, "get after refused creates", err, 404, "ResourceNotFound")

	h := e.createHSM("rg", "hsm1", e.hsmParams(true))
	p := h.Properties
	if *h.Type != "Microsoft.KeyVault/managedHSMs" || *h.SKU.Name != armkeyvault.ManagedHsmSKUNameStandardB1 || *h.SKU.Family != "B" ||
		*p.HsmURI != e.hsmURL("hsm1")+"/" || !*p.EnablePurgeProtection || !*p.EnableSoftDelete || *p.SoftDeleteRetentionInDays != 7 ||
		*p.ProvisioningState != armkeyvault.ProvisioningStateSucceeded || *p.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusActive ||
		len(p.InitialAdminObjectIDs) != 1 || *p.InitialAdminObjectIDs[0] != e.adminOID {
		t.Fatalf("created HSM = %+v %+v", h, *p)
	}
	if got, err := hsms.Get(ctx, "rg", "hsm1", nil); err != nil || *got.ID != *h.ID {
		t.Fatalf("get: %v", err)
	}
	var listed []string
	for pager := hsms.NewListByResourceGroupPager("rg", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Value {
			listed = append(listed, *m.Name)
		}
	}
	if len(listed) != 1 || listed[0] != "hsm1" {
		t.Fatalf("list by group = %v", listed)
	}
	// A vault may share the HSM's name: their hosts differ.
	e.createVault("rg", "hsm1", nil)

	// The initial administrator uses keys at once; an RSA key is reported as RSA-HSM.
	admin, err := azkeys.NewClient(e.hsmURL("hsm1"), e.cred, &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](3072)}, nil)
	if err != nil {
		t.Fatalf("create key on the HSM: %v", err)
	}
	if *k.Key.Kty != azkeys.KeyTypeRSAHSM || !strings.HasPrefix(string(*k.Key.KID), e.hsmURL("hsm1")+"/keys/cmk/") {
		t.Fatalf("HSM key = %s %s", *k.Key.Kty, *k.Key.KID)
	}
	if _, err := admin.CreateKey(ctx, "other", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil); err != nil {
		t.Fatalf("create RSA-HSM key: %v", err)
	}
	_, err = admin.CreateKey(ctx, "ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	respErr(t, "EC-HSM key", err, 400, "BadParameter")
	// The vault of the same name does not see the HSM's keys.
	_, err = e.keys("hsm1", nil).GetKey(ctx, "cmk", "", nil)
	respErr(t, "HSM key through the vault host", err, 404, "KeyNotFound")

	// An identity holds nothing until the HSM's own RBAC grants it: neither access policies
	// nor ARM role assignments reach a Managed HSM.
	oid, appID := e.identity("rg", "uami")
	id, err := azkeys.NewClient(e.hsmURL("hsm1"), e.d.IdentityCredential(oid, appID), &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	_, err = id.GetKey(ctx, "cmk", "", nil)
	if re := respErr(t, "get before any assignment", err, 403, "Forbidden"); !strings.Contains(re.Error(), "ForbiddenByRbac") ||
		!strings.Contains(re.Error(), "Microsoft.KeyVault/managedHsm/keys/read/action") {
		t.Fatalf("refusal = %v", re)
	}
	e.assign(*h.ID, oid, roleCryptoServiceEncryption) // an ARM role on the HSM resource grants no data action
	_, err = id.GetKey(ctx, "cmk", "", nil)
	respErr(t, "get with an ARM role only", err, 403, "Forbidden")

	hsmTok := e.token("https://" + e.prof.ManagedHSMDNSSuffix + "/.default")
	if a := e.hsmAssign("hsm1", "/keys/cmk", hsmRoleServiceEncryption, oid, ""); a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("assignment without a token = %d %s", a.status, a.raw)
	} else if !strings.Contains(a.header.Get("WWW-Authenticate"), `resource="https://`+e.prof.ManagedHSMDNSSuffix+":") {
		t.Fatalf("challenge = %s", a.header.Get("WWW-Authenticate"))
	}
	if a := e.hsmAssign("hsm1", "/keys/cmk", hsmRoleServiceEncryption, oid, e.kvToken()); a.status != 401 {
		t.Fatalf("assignment with a vault token = %d %s", a.status, a.raw)
	}
	if a := e.hsmAssign("hsm1", "/secrets", hsmRoleServiceEncryption, oid, hsmTok); a.status != 400 || a.errCode() != "BadParameter" {
		t.Fatalf("assignment at a bad scope = %d %s", a.status, a.raw)
	}
	if a := e.hsmAssign("hsm1", "/keys/cmk", "00000000-0000-0000-0000-000000000000", oid, hsmTok); a.status != 400 {
		t.Fatalf("assignment of an unknown role = %d %s", a.status, a.raw)
	}
	a := e.hsmAssign("hsm1", "/keys/cmk", hsmRoleServiceEncryption, oid, hsmTok)
	if a.status != 201 {
		t.Fatalf("assign Crypto Service Encryption User: %d %s", a.status, a.raw)
	}
	ap, _ := a.body["properties"].(map[string]any)
	if ap["scope"] != "/keys/cmk" || ap["principalId"] != oid ||
		ap["roleDefinitionId"] != "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"+hsmRoleServiceEncryption {
		t.Fatalf("assignment = %s", a.raw)
	}
	if again := e.hsmAssign("hsm1", "/keys/cmk", hsmRoleServiceEncryption, oid, hsmTok); again.status != 409 {
		t.Fatalf("duplicate assignment = %d %s", again.status, again.raw)
	}
	// get, wrapKey and unwrapKey on that key; nothing else, and nothing on another key.
	serviceEncryptionChecks(t, id, "cmk", "ForbiddenByRbac")
	_, err = id.GetKey(ctx, "other", "", nil)
	respErr(t, "get another key", err, 403, "Forbidden")
	// The identity cannot grant itself more.
	idTok, err := e.d.IdentityCredential(oid, appID).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://" + e.prof.ManagedHSMDNSSuffix + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if a := e.hsmAssign("hsm1", "/", hsmRoleCryptoUser, oid, idTok.Token); a.status != 403 {
		t.Fatalf("self-assignment by the identity = %d %s", a.status, a.raw)
	}

	// Listing: the assignments at and below a scope, and the built-in role definitions. The
	// first at 7.2-preview, the version az 2.45's azure-keyvault-administration sends.
	list := e.do(http.MethodGet, e.hsmURL("hsm1")+"//providers/Microsoft.Authorization/roleAssignments?api-version=7.2-preview", hsmTok, "")
	if n := len(list.body["value"].([]any)); list.status != 200 || n != 3 { // admin x2 at "/", identity at /keys/cmk
		t.Fatalf("assignments at / = %d %s", list.status, list.raw)
	}
	list = e.do(http.MethodGet, e.hsmURL("hsm1")+"//keys/cmk/providers/Microsoft.Authorization/roleAssignments?api-version=7.4&$filter=atScope()", hsmTok, "")
	if n := len(list.body["value"].([]any)); list.status != 200 || n != 1 {
		t.Fatalf("assignments at /keys/cmk = %d %s", list.status, list.raw)
	}
	defs := e.do(http.MethodGet, e.hsmURL("hsm1")+"///providers/Microsoft.Authorization/roleDefinitions?api-version=7.4", hsmTok, "")
	if defs.status != 200 || !strings.Contains(defs.raw, `"roleName":"Managed HSM Crypto Service Encryption User"`) {
		t.Fatalf("role definitions = %d %s", defs.status, defs.raw)
	}

	// The audit trail names the identity for its wrap and unwrap.
	audit := e.do(http.MethodGet, e.prof.Endpoint+*h.ID+"/auditEvents?api-version=2024-11-01&keyName=cmk", e.token("https://management.azure.com/.default"), "")
	var wraps int
	for _, ev := range audit.body["value"].([]any) {
		m := ev.(map[string]any)
		if (m["operationName"] == "KeyWrap" || m["operationName"] == "KeyUnwrap") && m["httpStatusCode"] == 200.0 {
			if m["callerObjectId"] != oid {
				t.Fatalf("wrap by %v, want the identity %s", m["callerObjectId"], oid)
			}
			wraps++
		}
	}
	if wraps != 2 {
		t.Fatalf("audit: %d successful wraps/unwraps, want 2: %s", wraps, audit.raw)
	}

	// Delete: soft-deleted, the host answers no more, purge protection holds it.
	del, err := hsms.BeginDelete(ctx, "rg", "hsm1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = hsms.Get(ctx, "rg", "hsm1", nil)
	respErr(t, "get deleted HSM", err, 404, "ResourceNotFound")
	if d, err := hsms.GetDeleted(ctx, "hsm1", "eastus", nil); err != nil || !*d.Properties.PurgeProtectionEnabled {
		t.Fatalf("get deleted: %v", err)
	}
	_, err = admin.GetKey(ctx, "cmk", "", nil)
	respErr(t, "key of a deleted HSM", err, 404, "VaultNotFound")
	_, err = hsms.BeginPurgeDeleted(ctx, "hsm1", "eastus", nil)
	respErr(t, "purge under purge protection", err, 405, "MethodNotAllowed")
	_, err = hsms.BeginCreateOrUpdate(ctx, "rg", "hsm1", e.hsmParams(true), nil)
	respErr(t, "re-create over a deleted HSM", err, 409, "ConflictError")

	// Without purge protection a deleted HSM purges (Azure's long-running POST), freeing the name.
	e.createHSM("rg", "hsm2", e.hsmParams(false))
	if del, err = hsms.BeginDelete(ctx, "rg", "hsm2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	purge, err := hsms.BeginPurgeDeleted(ctx, "hsm2", "eastus", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := purge.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	_, err = hsms.GetDeleted(ctx, "hsm2", "eastus", nil)
	respErr(t, "get purged HSM", err, 404, "ResourceNotFound")
	e.createHSM("rg", "hsm2", e.hsmParams(false))
}
