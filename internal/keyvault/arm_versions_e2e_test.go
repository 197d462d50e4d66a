package keyvault_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// TestARMShapesPerAPIVersion reads what a CMK setup is made of — a vault, a Managed HSM, a
// user-assigned identity, its role assignment and role definition, the resource group — at every
// api-version pgflex accepts for each, with Azure's SDK for Go pinned to that version, and checks
// the fields a client of that version relies on (and that isolationScope, new in 2024-11-30, is
// only in the identity versions that have it). These resources have no other differences between
// the versions accepted (see NOTES-i12-shapes.md).
func TestARMShapesPerAPIVersion(t *testing.T) {
	t.Parallel()
	e := newKVEnv(t)
	ctx := context.Background()
	e.group("rg")
	e.createVault("rg", "shapes-vault", nil)
	e.createHSM("rg", "shapes-hsm", e.hsmParams(false))
	principal, client := e.identity("rg", "shapes-id")
	at := func(v string) *arm.ClientOptions {
		o := *e.opts
		o.APIVersion = v
		return &o
	}

	for _, v := range []string{"2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"} {
		c, _ := armkeyvault.NewVaultsClient(e.sub, e.cred, at(v))
		got, err := c.Get(ctx, "rg", "shapes-vault", nil)
		if err != nil {
			t.Fatalf("vault at %s: %v", v, err)
		}
		p := got.Properties
		if *p.TenantID != e.tenant || *p.VaultURI != e.vaultURL("shapes-vault")+"/" || !*p.EnableSoftDelete || len(p.AccessPolicies) != 1 ||
			*p.SKU.Name != armkeyvault.SKUNameStandard || *p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded {
			t.Errorf("vault at %s: %+v", v, p)
		}
	}
	for _, v := range []string{"2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"} {
		c, _ := armkeyvault.NewManagedHsmsClient(e.sub, e.cred, at(v))
		got, err := c.Get(ctx, "rg", "shapes-hsm", nil)
		if err != nil {
			t.Fatalf("managed HSM at %s: %v", v, err)
		}
		if p := got.Properties; *p.HsmURI != e.hsmURL("shapes-hsm")+"/" || *p.TenantID != e.tenant || len(p.InitialAdminObjectIDs) != 1 ||
			*p.ProvisioningState != armkeyvault.ProvisioningStateSucceeded {
			t.Errorf("managed HSM at %s: %+v", v, p)
		}
	}
	for _, v := range []string{"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30"} {
		c, _ := armmsi.NewUserAssignedIdentitiesClient(e.sub, e.cred, at(v))
		got, err := c.Get(ctx, "rg", "shapes-id", nil)
		if err != nil {
			t.Fatalf("identity at %s: %v", v, err)
		}
		p := got.Properties
		if *p.PrincipalID != principal || *p.ClientID != client || *p.TenantID != e.tenant {
			t.Errorf("identity at %s: %+v", v, p)
		}
		if (p.IsolationScope != nil) != (v == "2024-11-30") {
			t.Errorf("identity at %s: isolationScope %v (only 2024-11-30 has it)", v, p.IsolationScope)
		}
	}
	vaultScope := "/subscriptions/" + e.sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/shapes-vault"
	const cryptoServiceEncryptionUser = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	ras, _ := armauthorization.NewRoleAssignmentsClient(e.sub, e.cred, e.opts)
	name := "3c9c6a3e-5f4f-4a5b-9d43-0d7f6c2b1a01"
	if _, err := ras.Create(ctx, vaultScope, name, armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		PrincipalID: to.Ptr(principal), PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
		RoleDefinitionID: to.Ptr("/subscriptions/" + e.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + cryptoServiceEncryptionUser)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"2020-04-01-preview", "2020-10-01-preview", "2022-01-01-preview", "2022-04-01"} {
		c, _ := armauthorization.NewRoleAssignmentsClient(e.sub, e.cred, at(v))
		got, err := c.Get(ctx, vaultScope, name, nil)
		if err != nil {
			t.Fatalf("role assignment at %s: %v", v, err)
		}
		if p := got.Properties; *p.PrincipalID != principal || *p.Scope != vaultScope || *p.PrincipalType != armauthorization.PrincipalTypeServicePrincipal {
			t.Errorf("role assignment at %s: %+v", v, p)
		}
	}
	for _, v := range []string{"2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"} {
		c, _ := armauthorization.NewRoleDefinitionsClient(e.cred, at(v))
		got, err := c.Get(ctx, vaultScope, cryptoServiceEncryptionUser, nil)
		if err != nil {
			t.Fatalf("role definition at %s: %v", v, err)
		}
		if p := got.Properties; *p.RoleName != "Key Vault Crypto Service Encryption User" || len(p.Permissions) != 1 || len(p.Permissions[0].DataActions) == 0 {
			t.Errorf("role definition at %s: %+v", v, p)
		}
	}
	for _, v := range []string{"2019-05-01", "2019-10-01", "2020-06-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01",
		"2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"} {
		c, _ := armresources.NewResourceGroupsClient(e.sub, e.cred, at(v))
		got, err := c.Get(ctx, "rg", nil)
		if err != nil {
			t.Fatalf("resource group at %s: %v", v, err)
		}
		if *got.Name != "rg" || *got.Location != "eastus" || *got.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("resource group at %s: %+v", v, got.ResourceGroup)
		}
	}
}
