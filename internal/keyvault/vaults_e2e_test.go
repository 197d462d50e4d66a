package keyvault_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
)

func (e *kvEnv) deletedNames() map[string]bool {
	e.t.Helper()
	out := map[string]bool{}
	for p := e.vaults.NewListDeletedPager(nil); p.More(); {
		page, err := p.NextPage(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, v := range page.Value {
			out[*v.Name] = true
		}
	}
	return out
}

// TestVaultLifecycleWithARMSDK drives Microsoft.KeyVault/vaults with armkeyvault: create, read,
// list, update, access policies, Azure's validation and naming rules, soft delete, recover,
// purge (refused under purge protection) and the resource-group cascade.
func TestVaultLifecycleWithARMSDK(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg-kv")
	e.group("rg-other")

	v := e.createVault("rg-kv", "Vault-One", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
		p.Tags = map[string]*string{"env": to.Ptr("test")}
	})
	p := v.Properties
	if *v.Name != "Vault-One" || *v.Type != "Microsoft.KeyVault/vaults" || *v.Location != "eastus" || *v.Tags["env"] != "test" {
		t.Fatalf("created vault = %s %s %s", *v.Name, *v.Type, *v.Location)
	}
	if *p.VaultURI != e.vaultURL("vault-one")+"/" || *p.SoftDeleteRetentionInDays != 90 || !*p.EnableSoftDelete ||
		p.EnablePurgeProtection != nil || *p.EnableRbacAuthorization || *p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded ||
		*p.TenantID != e.tenant || len(p.AccessPolicies) != 1 || *p.PublicNetworkAccess != "Enabled" {
		t.Fatalf("created vault properties: uri %s retention %d purge %v rbac %v state %s policies %d",
			*p.VaultURI, *p.SoftDeleteRetentionInDays, p.EnablePurgeProtection, *p.EnableRbacAuthorization, *p.ProvisioningState, len(p.AccessPolicies))
	}
	// Names match case-insensitively and echo the casing of creation.
	got, err := e.vaults.Get(ctx, "RG-KV", "vault-one", nil)
	if err != nil || *got.Name != "Vault-One" {
		t.Fatalf("get = %v, %v", got.Name, err)
	}
	count := func(pager interface {
		More() bool
	}, next func() (int, error)) int {
		n := 0
		for pager.More() {
			c, err := next()
			if err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	byGroup := e.vaults.NewListByResourceGroupPager("rg-kv", nil)
	if n := count(byGroup, func() (int, error) { p, err := byGroup.NextPage(ctx); return len(p.Value), err }); n != 1 {
		t.Fatalf("list by group: %d vaults", n)
	}
	bySub := e.vaults.NewListBySubscriptionPager(nil)
	if n := count(bySub, func() (int, error) { p, err := bySub.NextPage(ctx); return len(p.Value), err }); n != 1 {
		t.Fatalf("list by subscription: %d vaults", n)
	}

	// Refusals change nothing.
	for _, c := range []struct {
		name, rg, vault string
		edit            func(*armkeyvault.VaultCreateOrUpdateParameters)
		status          int
		code            string
	}{
		{"starts with digit", "rg-kv", "1vault", nil, 400, "VaultNameNotValid"},
		{"consecutive hyphens", "rg-kv", "va--ult", nil, 400, "VaultNameNotValid"},
		{"too short", "rg-kv", "ab", nil, 400, "VaultNameNotValid"},
		{"too long", "rg-kv", "abcdefghijklmnopqrstuvwxy", nil, 400, "VaultNameNotValid"},
		{"retention too short", "rg-kv", "retention", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Properties.SoftDeleteRetentionInDays = to.Ptr[int32](6)
		}, 400, "InvalidParameterValue"},
		{"purge protection false", "rg-kv", "nopurge", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Properties.EnablePurgeProtection = to.Ptr(false)
		}, 400, "BadRequest"},
		{"soft delete off", "rg-kv", "nosoftdelete", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Properties.EnableSoftDelete = to.Ptr(false)
		}, 400, "BadRequest"},
		{"bad permission", "rg-kv", "badperm", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Properties.AccessPolicies = []*armkeyvault.AccessPolicyEntry{e.policy(e.adminOID, "fly")}
		}, 400, "InvalidParameterValue"},
		{"unknown location", "rg-kv", "nowhere", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Location = to.Ptr("atlantis")
		}, 400, "LocationNotAvailableForResourceType"},
		{"no group", "rg-none", "nogroup", nil, 404, "ResourceGroupNotFound"},
		{"name taken elsewhere", "rg-other", "VAULT-ONE", nil, 409, "VaultAlreadyExists"},
	} {
		params := e.vaultParams()
		if c.edit != nil {
			c.edit(&params)
		}
		_, err := e.vaults.BeginCreateOrUpdate(ctx, c.rg, c.vault, params, nil)
		respErr(t, c.name, err, c.status, c.code)
	}
	if a := e.do("GET", e.prof.Endpoint+"/subscriptions/"+e.sub+"/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/retention?api-version=2023-07-01", e.token("https://management.azure.com/.default"), ""); a.status != 404 {
		t.Fatalf("refused create left a vault behind: %d", a.status)
	}

	// Updates: purge protection on, then never off; retention fixed.
	up, err := e.vaults.Update(ctx, "rg-kv", "Vault-One", armkeyvault.VaultPatchParameters{Properties: &armkeyvault.VaultPatchProperties{
		EnablePurgeProtection: to.Ptr(true)}}, nil)
	if err != nil || !*up.Properties.EnablePurgeProtection || len(up.Properties.AccessPolicies) != 1 {
		t.Fatalf("enable purge protection: %v", err)
	}
	_, err = e.vaults.Update(ctx, "rg-kv", "Vault-One", armkeyvault.VaultPatchParameters{Properties: &armkeyvault.VaultPatchProperties{
		EnablePurgeProtection: to.Ptr(false)}}, nil)
	respErr(t, "disable purge protection", err, 400, "BadRequest")
	_, err = e.vaults.Update(ctx, "rg-kv", "Vault-One", armkeyvault.VaultPatchParameters{Properties: &armkeyvault.VaultPatchProperties{
		SoftDeleteRetentionInDays: to.Ptr[int32](30)}}, nil)
	respErr(t, "change retention", err, 400, "BadRequest")

	// The accessPolicies/{kind} operation az keyvault set-policy and delete-policy use.
	const other = "11111111-2222-3333-4444-555555555555"
	params := armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{e.policy(other, "get", "WrapKey")}}}
	if _, err := e.vaults.UpdateAccessPolicy(ctx, "rg-kv", "Vault-One", armkeyvault.AccessPolicyUpdateKindAdd, params, nil); err != nil {
		t.Fatal(err)
	}
	params.Properties.AccessPolicies = []*armkeyvault.AccessPolicyEntry{e.policy(other, "unwrapKey")}
	if _, err := e.vaults.UpdateAccessPolicy(ctx, "rg-kv", "Vault-One", armkeyvault.AccessPolicyUpdateKindAdd, params, nil); err != nil {
		t.Fatal(err)
	}
	got, _ = e.vaults.Get(ctx, "rg-kv", "Vault-One", nil)
	if n := len(got.Properties.AccessPolicies); n != 2 {
		t.Fatalf("after add: %d policies", n)
	}
	var perms []string
	for _, k := range got.Properties.AccessPolicies[1].Permissions.Keys {
		perms = append(perms, string(*k))
	}
	if len(perms) != 3 || perms[0] != "get" || perms[1] != "wrapKey" || perms[2] != "unwrapKey" {
		t.Fatalf("merged permissions = %v, want canonical [get wrapKey unwrapKey]", perms)
	}
	params.Properties.AccessPolicies = []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(e.tenant), ObjectID: to.Ptr(other), Permissions: &armkeyvault.Permissions{}}}
	if _, err := e.vaults.UpdateAccessPolicy(ctx, "rg-kv", "Vault-One", armkeyvault.AccessPolicyUpdateKindRemove, params, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ = e.vaults.Get(ctx, "rg-kv", "Vault-One", nil); len(got.Properties.AccessPolicies) != 1 {
		t.Fatalf("after remove: %d policies", len(got.Properties.AccessPolicies))
	}

	// Soft delete: the name stays reserved until purged; purge protection refuses the purge.
	if _, err := e.vaults.Delete(ctx, "rg-kv", "Vault-One", nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.vaults.Get(ctx, "rg-kv", "Vault-One", nil)
	respErr(t, "get deleted vault", err, 404, "ResourceNotFound")
	if !e.deletedNames()["Vault-One"] {
		t.Fatal("deleted vault not listed")
	}
	dv, err := e.vaults.GetDeleted(ctx, "vault-one", "eastus", nil)
	if err != nil || !*dv.Properties.PurgeProtectionEnabled || *dv.Properties.VaultID != *v.ID ||
		dv.Properties.ScheduledPurgeDate.Sub(*dv.Properties.DeletionDate).Hours() != 90*24 {
		t.Fatalf("get deleted = %+v, %v", dv.Properties, err)
	}
	_, err = e.vaults.BeginCreateOrUpdate(ctx, "rg-kv", "Vault-One", e.vaultParams(), nil)
	respErr(t, "reuse a soft-deleted name", err, 409, "ConflictError")
	_, err = e.vaults.BeginPurgeDeleted(ctx, "Vault-One", "eastus", nil)
	respErr(t, "purge under purge protection", err, http.StatusMethodNotAllowed, "MethodNotAllowed")

	recover := e.vaultParams()
	recover.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
	rv := e.createVault("rg-kv", "Vault-One", func(p *armkeyvault.VaultCreateOrUpdateParameters) { *p = recover })
	if !*rv.Properties.EnablePurgeProtection || len(rv.Properties.AccessPolicies) != 1 || e.deletedNames()["Vault-One"] {
		t.Fatal("recovered vault lost its settings or is still listed as deleted")
	}

	// Without purge protection a deleted vault can be purged, and its name is free again.
	short := e.createVault("rg-other", "vault-two", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
		p.Properties.SoftDeleteRetentionInDays = to.Ptr[int32](7)
	})
	if *short.Properties.SoftDeleteRetentionInDays != 7 {
		t.Fatalf("retention = %d", *short.Properties.SoftDeleteRetentionInDays)
	}
	if _, err := e.vaults.Delete(ctx, "rg-other", "vault-two", nil); err != nil {
		t.Fatal(err)
	}
	poller, err := e.vaults.BeginPurgeDeleted(ctx, "vault-two", "eastus", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.vaults.GetDeleted(ctx, "vault-two", "eastus", nil)
	respErr(t, "get purged vault", err, 404, "DeletedVaultNotFound")
	e.createVault("rg-kv", "vault-two", nil)

	// Deleting a resource group soft-deletes its vaults.
	e.group("rg-cascade")
	e.createVault("rg-cascade", "vault-cascade", nil)
	gp, err := e.groups.BeginDelete(ctx, "rg-cascade", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if !e.deletedNames()["vault-cascade"] {
		t.Fatal("a deleted group's vault is not soft-deleted")
	}
}
