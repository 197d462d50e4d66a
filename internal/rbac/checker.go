package rbac

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

// HasDataAction reports whether the principal may perform a data-plane action at scope: true
// iff some role assignment of the principal at scope or at a scope above it (key → vault →
// resource group → subscription) names a role whose dataActions match the action (Azure's
// wildcards) and whose notDataActions do not. An assignment of a principal that no longer
// exists grants nothing. scope is an ARM id, e.g. a vault's id or {vaultId}/keys/{keyName};
// dataAction is Azure's name, e.g. Microsoft.KeyVault/vaults/keys/wrap/action.
//
// It is the keyvault.RoleChecker the key store calls on every operation of an RBAC vault.
func (s *Service) HasDataAction(ctx context.Context, principalID, scope, dataAction string) (bool, error) {
	target, err := parseScope(scope)
	if err != nil {
		return false, fmt.Errorf("check %s at %q: %w", dataAction, scope, err)
	}
	applies := scopeKeys(target)
	var held []grant
	err = s.st.View(ctx, func(tx store.Tx) error {
		if _, err := auth.GetPrincipal(tx, principalID); err != nil {
			return err
		}
		var err error
		held, err = grantsOf(tx, principalID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check %s for %s: %w", dataAction, principalID, err)
	}
	for _, g := range held {
		if !applies[g.scopeKey] {
			continue
		}
		if role, ok := s.builtin.byID[g.roleID]; ok && role.AllowsDataAction(dataAction) {
			return true, nil
		}
	}
	return false, nil
}
