package keyvault

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/rbac"
)

// RoleChecker decides, for vaults with enableRbacAuthorization, whether a principal holds a
// data action at a scope through a role assignment (at that scope or above it). scope is the
// vault's ARM id, or {vaultId}/keys/{keyName} for an operation on one key. internal/rbac
// implements it.
type RoleChecker interface {
	HasDataAction(ctx context.Context, principalID, scope, dataAction string) (bool, error)
}

// Key data actions, as Azure's RBAC names them.
const (
	ActionKeysRead                 = "Microsoft.KeyVault/vaults/keys/read"
	ActionKeysCreate               = "Microsoft.KeyVault/vaults/keys/create/action"
	ActionKeysUpdate               = "Microsoft.KeyVault/vaults/keys/update/action"
	ActionKeysImport               = "Microsoft.KeyVault/vaults/keys/import/action"
	ActionKeysDelete               = "Microsoft.KeyVault/vaults/keys/delete"
	ActionKeysBackup               = "Microsoft.KeyVault/vaults/keys/backup/action"
	ActionKeysRestore              = "Microsoft.KeyVault/vaults/keys/restore/action"
	ActionKeysRecover              = "Microsoft.KeyVault/vaults/keys/recover/action"
	ActionKeysPurge                = "Microsoft.KeyVault/vaults/keys/purge/action"
	ActionKeysRelease              = "Microsoft.KeyVault/vaults/keys/release/action"
	ActionKeysRotate               = "Microsoft.KeyVault/vaults/keys/rotate/action"
	ActionKeysEncrypt              = "Microsoft.KeyVault/vaults/keys/encrypt/action"
	ActionKeysDecrypt              = "Microsoft.KeyVault/vaults/keys/decrypt/action"
	ActionKeysWrap                 = "Microsoft.KeyVault/vaults/keys/wrap/action"
	ActionKeysUnwrap               = "Microsoft.KeyVault/vaults/keys/unwrap/action"
	ActionKeysSign                 = "Microsoft.KeyVault/vaults/keys/sign/action"
	ActionKeysVerify               = "Microsoft.KeyVault/vaults/keys/verify/action"
	ActionKeyRotationPoliciesRead  = "Microsoft.KeyVault/vaults/keyrotationpolicies/read"
	ActionKeyRotationPoliciesWrite = "Microsoft.KeyVault/vaults/keyrotationpolicies/write"
)

// Managed HSM local-RBAC data actions, as a Managed HSM's role definitions name them.
const (
	hsmKeys                   = "Microsoft.KeyVault/managedHsm/keys/"
	HSMActionKeysRead         = hsmKeys + "read/action"
	HSMActionKeysWrite        = hsmKeys + "write/action"
	HSMActionKeysCreate       = hsmKeys + "create"
	HSMActionKeysDelete       = hsmKeys + "delete"
	HSMActionKeysWrap         = hsmKeys + "wrap/action"
	HSMActionKeysUnwrap       = hsmKeys + "unwrap/action"
	HSMActionRoleAssignRead   = "Microsoft.KeyVault/managedHsm/roleAssignments/read/action"
	HSMActionRoleAssignWrite  = "Microsoft.KeyVault/managedHsm/roleAssignments/write/action"
	HSMActionRoleAssignDelete = "Microsoft.KeyVault/managedHsm/roleAssignments/delete/action"
	HSMActionRoleDefsRead     = "Microsoft.KeyVault/managedHsm/roleDefinitions/read/action"
)

// keyOp is one key operation: the access-policy permission, the RBAC data action and the
// Managed HSM local-RBAC data action it needs, and the name Azure's AuditEvent log gives it.
type keyOp struct {
	Perm      string
	Action    string
	Audit     string
	HSMAction string
}

var (
	opCreate     = keyOp{PermCreate, ActionKeysCreate, "KeyCreate", HSMActionKeysCreate}
	opImport     = keyOp{PermImport, ActionKeysImport, "KeyImport", hsmKeys + "import/action"}
	opGet        = keyOp{PermGet, ActionKeysRead, "KeyGet", HSMActionKeysRead}
	opList       = keyOp{PermList, ActionKeysRead, "KeyList", HSMActionKeysRead}
	opVersions   = keyOp{PermList, ActionKeysRead, "KeyListVersions", HSMActionKeysRead}
	opUpdate     = keyOp{PermUpdate, ActionKeysUpdate, "KeyUpdate", HSMActionKeysWrite}
	opDelete     = keyOp{PermDelete, ActionKeysDelete, "KeyDelete", HSMActionKeysDelete}
	opRotate     = keyOp{PermRotate, ActionKeysRotate, "KeyRotate", hsmKeys + "rotate/action"}
	opGetPolicy  = keyOp{PermGetRotationPolicy, ActionKeyRotationPoliciesRead, "KeyRotationPolicyGet", HSMActionKeysRead}
	opSetPolicy  = keyOp{PermSetRotationPolicy, ActionKeyRotationPoliciesWrite, "KeyRotationPolicySet", HSMActionKeysWrite}
	opGetDeleted = keyOp{PermGet, ActionKeysRead, "KeyGetDeleted", hsmKeys + "deletedKeys/read/action"}
	opListDelete = keyOp{PermList, ActionKeysRead, "KeyListDeleted", hsmKeys + "deletedKeys/read/action"}
	opRecover    = keyOp{PermRecover, ActionKeysRecover, "KeyRecover", hsmKeys + "deletedKeys/recover/action"}
	opPurge      = keyOp{PermPurge, ActionKeysPurge, "KeyPurge", hsmKeys + "deletedKeys/delete"}
	opBackup     = keyOp{PermBackup, ActionKeysBackup, "KeyBackup", hsmKeys + "backup/action"}
	opRestore    = keyOp{PermRestore, ActionKeysRestore, "KeyRestore", hsmKeys + "restore/action"}
	opRelease    = keyOp{PermRelease, ActionKeysRelease, "KeyRelease", hsmKeys + "release/action"}
	opEncrypt    = keyOp{PermEncrypt, ActionKeysEncrypt, "KeyEncrypt", hsmKeys + "encrypt/action"}
	opDecrypt    = keyOp{PermDecrypt, ActionKeysDecrypt, "KeyDecrypt", hsmKeys + "decrypt/action"}
	opWrap       = keyOp{PermWrapKey, ActionKeysWrap, "KeyWrap", HSMActionKeysWrap}
	opUnwrap     = keyOp{PermUnwrapKey, ActionKeysUnwrap, "KeyUnwrap", HSMActionKeysUnwrap}
	opSign       = keyOp{PermSign, ActionKeysSign, "KeySign", hsmKeys + "sign/action"}
	opVerify     = keyOp{PermVerify, ActionKeysVerify, "KeyVerify", hsmKeys + "verify/action"}

	// Managed HSM role management (no access-policy permission or ARM action: local RBAC only).
	opRoleAssignCreate = keyOp{Audit: "RoleAssignmentCreate", HSMAction: HSMActionRoleAssignWrite}
	opRoleAssignGet    = keyOp{Audit: "RoleAssignmentGet", HSMAction: HSMActionRoleAssignRead}
	opRoleAssignList   = keyOp{Audit: "RoleAssignmentList", HSMAction: HSMActionRoleAssignRead}
	opRoleAssignDelete = keyOp{Audit: "RoleAssignmentDelete", HSMAction: HSMActionRoleAssignDelete}
	opRoleDefGet       = keyOp{Audit: "RoleDefinitionGet", HSMAction: HSMActionRoleDefsRead}
	opRoleDefList      = keyOp{Audit: "RoleDefinitionList", HSMAction: HSMActionRoleDefsRead}
)

// HSMRoleCatalog provides the Managed HSM built-in roles; *rbac.Service is one.
type HSMRoleCatalog interface {
	ManagedHSMRoleDefinitions() []rbac.RoleDefinition
}

// caller is who presented the token.
type caller struct {
	ObjectID string
	TenantID string
	AppID    string
	Issuer   string
}

func (c caller) describe() string {
	return fmt.Sprintf("appid=%s;oid=%s;iss=%s", c.AppID, c.ObjectID, c.Issuer)
}

// authorize decides whether the caller may perform op on the vault (keyName empty for
// vault-wide operations such as list).
func (s *Service) authorize(ctx context.Context, v *Vault, c caller, op keyOp, keyName string) error {
	if v.IsManagedHSM() {
		scope := "/keys"
		if keyName != "" {
			scope += "/" + keyName
		}
		return s.authorizeHSM(ctx, v, c, op, scope)
	}
	if !v.Props.EnableRbacAuthorization {
		if policyGrants(v.Props.AccessPolicies, c.ObjectID, c.TenantID, c.AppID, op.Perm) {
			return nil
		}
		return &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "AccessDenied",
			Message: fmt.Sprintf("The user, group or application '%s' does not have keys %s permission on key vault '%s;location=%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
				c.describe(), op.Perm, v.Name, v.Location)}
	}
	scope := v.ResourceID().String()
	if keyName != "" {
		scope += "/keys/" + keyName
	}
	ok := false
	reason := "'Not Authorized'"
	if s.roles != nil {
		var err error
		ok, err = s.roles.HasDataAction(ctx, c.ObjectID, scope, op.Action)
		if err != nil {
			return fmt.Errorf("check role assignments: %w", err)
		}
	} else {
		// No role service is wired (internal/rbac not present): fail closed.
		reason = "'Role assignments are not available'"
	}
	if ok {
		return nil
	}
	lines := []string{
		"Caller is not authorized to perform action on resource.",
		"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.",
		"Caller: " + c.describe(),
		"Action: '" + op.Action + "'",
		"Resource: '" + strings.ToLower(scope) + "'",
		"Assignment: (not found)",
		"DenyAssignmentId: null",
		"DecisionReason: " + reason,
		"Vault: " + v.Name + ";location=" + v.Location,
		"",
	}
	return &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "ForbiddenByRbac", Message: strings.Join(lines, "\n")}
}
