package keyvault

import (
	"context"
	"fmt"
	"net/http"
	"strings"
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

// keyOp is one key operation: the access-policy permission and RBAC data action it needs, and
// the name Azure's AuditEvent log gives it.
type keyOp struct {
	Perm   string
	Action string
	Audit  string
}

var (
	opCreate     = keyOp{PermCreate, ActionKeysCreate, "KeyCreate"}
	opImport     = keyOp{PermImport, ActionKeysImport, "KeyImport"}
	opGet        = keyOp{PermGet, ActionKeysRead, "KeyGet"}
	opList       = keyOp{PermList, ActionKeysRead, "KeyList"}
	opVersions   = keyOp{PermList, ActionKeysRead, "KeyListVersions"}
	opUpdate     = keyOp{PermUpdate, ActionKeysUpdate, "KeyUpdate"}
	opDelete     = keyOp{PermDelete, ActionKeysDelete, "KeyDelete"}
	opRotate     = keyOp{PermRotate, ActionKeysRotate, "KeyRotate"}
	opGetPolicy  = keyOp{PermGetRotationPolicy, ActionKeyRotationPoliciesRead, "KeyRotationPolicyGet"}
	opSetPolicy  = keyOp{PermSetRotationPolicy, ActionKeyRotationPoliciesWrite, "KeyRotationPolicySet"}
	opGetDeleted = keyOp{PermGet, ActionKeysRead, "KeyGetDeleted"}
	opListDelete = keyOp{PermList, ActionKeysRead, "KeyListDeleted"}
	opRecover    = keyOp{PermRecover, ActionKeysRecover, "KeyRecover"}
	opPurge      = keyOp{PermPurge, ActionKeysPurge, "KeyPurge"}
	opBackup     = keyOp{PermBackup, ActionKeysBackup, "KeyBackup"}
	opRestore    = keyOp{PermRestore, ActionKeysRestore, "KeyRestore"}
	opRelease    = keyOp{PermRelease, ActionKeysRelease, "KeyRelease"}
	opEncrypt    = keyOp{PermEncrypt, ActionKeysEncrypt, "KeyEncrypt"}
	opDecrypt    = keyOp{PermDecrypt, ActionKeysDecrypt, "KeyDecrypt"}
	opWrap       = keyOp{PermWrapKey, ActionKeysWrap, "KeyWrap"}
	opUnwrap     = keyOp{PermUnwrapKey, ActionKeysUnwrap, "KeyUnwrap"}
	opSign       = keyOp{PermSign, ActionKeysSign, "KeySign"}
	opVerify     = keyOp{PermVerify, ActionKeysVerify, "KeyVerify"}
)

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
