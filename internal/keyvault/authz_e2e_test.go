package keyvault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/arm"
)

// Built-in role definition ids.
const (
	roleCryptoOfficer           = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	roleCryptoServiceEncryption = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
)

// assign gives a principal a built-in role at scope.
func (e *kvEnv) assign(scope, principalID, roleID string) {
	e.t.Helper()
	roles, err := armauthorization.NewRoleAssignmentsClient(e.sub, e.cred, e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = roles.Create(context.Background(), scope, arm.NewGUID(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(principalID),
			PrincipalType:    to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			RoleDefinitionID: to.Ptr("/subscriptions/" + e.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + roleID)}}, nil)
	if err != nil {
		e.t.Fatalf("assign role %s to %s at %s: %v", roleID, principalID, scope, err)
	}
}

// serviceEncryptionChecks is what the data plane needs of a key, and what it must not be able
// to do: get, wrap and unwrap with RSA-OAEP-256 succeed; create, delete and rotate are refused
// with the given inner error code.
func serviceEncryptionChecks(t *testing.T, c *azkeys.Client, key, inner string) {
	t.Helper()
	ctx := context.Background()
	got, err := c.GetKey(ctx, key, "", nil)
	if err != nil {
		t.Fatalf("get as the identity: %v", err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	w, err := c.WrapKey(ctx, key, got.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
	if err != nil {
		t.Fatalf("wrap as the identity: %v", err)
	}
	u, err := c.UnwrapKey(ctx, key, got.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
	if err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap as the identity: %v", err)
	}
	_, err = c.CreateKey(ctx, "sneaky", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if re := respErr(t, "create as the identity", err, 403, "Forbidden"); !strings.Contains(re.Error(), inner) {
		t.Fatalf("create refusal lacks %s: %v", inner, re)
	}
	_, err = c.RotateKey(ctx, key, nil)
	respErr(t, "rotate as the identity", err, 403, "Forbidden")
	_, err = c.DeleteKey(ctx, key, nil)
	respErr(t, "delete as the identity", err, 403, "Forbidden")
	_, err = c.Encrypt(ctx, key, "", azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
	respErr(t, "encrypt as the identity", err, 403, "Forbidden")
}

// TestManagedIdentityKeyAccess is the data plane's view of a customer key: a user-assigned
// managed identity reaches it with get, wrapKey and unwrapKey granted by an access policy, or
// by the Key Vault Crypto Service Encryption User role on an RBAC vault, and can do nothing
// else with it.
func TestManagedIdentityKeyAccess(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	principal, client := e.identity("rg", "pg-identity")
	asIdentity := e.d.IdentityCredential(principal, client)

	t.Run("access policy", func(t *testing.T) {
		e.createVault("rg", "policy-vault", nil)
		if _, err := e.keys("policy-vault", nil).CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Fatal(err)
		}
		c := e.keys("policy-vault", asIdentity)
		_, err := c.GetKey(ctx, "cmk", "", nil)
		re := respErr(t, "get without a policy", err, 403, "Forbidden")
		if !strings.Contains(re.Error(), "oid="+principal) || !strings.Contains(re.Error(), "does not have keys get permission on key vault 'policy-vault;location=eastus'") ||
			!strings.Contains(re.Error(), "AccessDenied") {
			t.Fatalf("refusal message: %v", re)
		}
		params := armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{e.policy(principal, "get", "wrapKey", "unwrapKey", "list")}}}
		if _, err := e.vaults.UpdateAccessPolicy(ctx, "rg", "policy-vault", armkeyvault.AccessPolicyUpdateKindAdd, params, nil); err != nil {
			t.Fatal(err)
		}
		serviceEncryptionChecks(t, c, "cmk", "AccessDenied")
		// Revoking the policy revokes the access.
		if _, err := e.vaults.UpdateAccessPolicy(ctx, "rg", "policy-vault", armkeyvault.AccessPolicyUpdateKindRemove, params, nil); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetKey(ctx, "cmk", "", nil)
		respErr(t, "get after the policy was removed", err, 403, "Forbidden")
	})

	t.Run("rbac", func(t *testing.T) {
		v := e.createVault("rg", "rbac-vault", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
			p.Properties.EnableRbacAuthorization = to.Ptr(true)
			p.Properties.AccessPolicies = nil
		})
		admin := e.keys("rbac-vault", nil)
		// The creator's access policy means nothing on an RBAC vault: it needs a role.
		_, err := admin.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
		if re := respErr(t, "create without a role", err, 403, "Forbidden"); !strings.Contains(re.Error(), "ForbiddenByRbac") ||
			!strings.Contains(re.Error(), "Action: 'Microsoft.KeyVault/vaults/keys/create/action'") {
			t.Fatalf("RBAC refusal: %v", re)
		}
		e.assign(*v.ID, e.adminOID, roleCryptoOfficer)
		for _, k := range []string{"cmk", "other"} {
			if _, err := admin.CreateKey(ctx, k, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
				t.Fatalf("create %s as Crypto Officer: %v", k, err)
			}
		}
		c := e.keys("rbac-vault", asIdentity)
		_, err = c.GetKey(ctx, "cmk", "", nil)
		respErr(t, "get without a role", err, 403, "Forbidden")
		// At key scope the role reaches that key only.
		e.assign(*v.ID+"/keys/cmk", principal, roleCryptoServiceEncryption)
		serviceEncryptionChecks(t, c, "cmk", "ForbiddenByRbac")
		_, err = c.GetKey(ctx, "other", "", nil)
		respErr(t, "get another key with a key-scoped role", err, 403, "Forbidden")
	})
}
