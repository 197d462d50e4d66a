package keyvault

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// softDelete puts a vault into the deleted state: its name stays reserved, its keys become
// unreachable, and it can be recovered until the retention period ends.
func (s *Service) softDelete(v *Vault) {
	now := s.now().UTC()
	v.Deleted = &VaultDeletion{DeletionDate: now,
		ScheduledPurgeDate: now.Add(time.Duration(v.Props.SoftDeleteRetentionInDays) * 24 * time.Hour)}
	v.Updated = now
}

// deleteVault soft-deletes a vault: 200 when it existed, 204 when there was nothing to delete.
func (s *Service) deleteVault(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName")
	deleted := false
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		v, err := activeVaultInGroup(tx, sub, rg, name)
		if arm.AsError(err) != nil {
			if _, gerr := activeGroup(tx, sub, rg); gerr != nil {
				return gerr
			}
			return nil
		}
		if err != nil {
			return err
		}
		s.softDelete(v)
		deleted = true
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if !deleted {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.Log.Info("vault soft-deleted", "vault", name)
	arm.WriteJSON(w, http.StatusOK, nil)
}

// deleteAllInGroup soft-deletes every live vault of a group being deleted, as Azure does.
func (s *Service) deleteAllInGroup(ctx context.Context, sub, group string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		all, err := listKeyStoreRecords(tx)
		if err != nil {
			return err
		}
		for i := range all {
			v := &all[i]
			if v.Deleted == nil && strings.EqualFold(v.SubscriptionID, sub) && strings.EqualFold(v.ResourceGroup, group) {
				s.softDelete(v)
				if err := putVaultRecord(tx, v); err != nil {
					return err
				}
				s.log.Info("key store soft-deleted with its resource group", "name", v.Name, "kind", v.KindName(), "group", group)
			}
		}
		return nil
	})
}

// activeGroup checks that a resource group exists (for ARM's 404 on lists and deletes in a
// group that does not exist).
func activeGroup(tx store.Tx, sub, rg string) (*resources.Group, error) {
	g, err := resources.CheckGroupInTx(tx, sub, rg)
	if ae := arm.AsError(err); ae != nil && ae.Code == "ResourceGroupBeingDeleted" {
		return g, nil
	}
	return g, err
}
