package keyvault

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

func (s *Service) listDeletedVaults(w http.ResponseWriter, r *arm.Request) {
	s.listKeyStores(w, r, listVaultRecords, s.deletedVaultView, false, true)
}

// deletedVaultIn reads a soft-deleted vault by subscription, location and name.
func deletedVaultIn(tx store.Tx, sub, location, name string) (*Vault, error) {
	v, err := getVaultRecord(tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, deletedVaultNotFound(name, location)
	}
	if err != nil {
		return nil, err
	}
	reg, ok := regions.Lookup(location)
	if v.Deleted == nil || !strings.EqualFold(v.SubscriptionID, sub) || !ok || reg.Name != v.Location {
		return nil, deletedVaultNotFound(name, location)
	}
	return v, nil
}

func (s *Service) getDeletedVault(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = deletedVaultIn(tx, r.Param("subscriptionId"), r.Param("location"), r.Param("vaultName"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, s.deletedVaultView(v))
}

// purgeDeletedVault destroys a soft-deleted vault and every key in it, unless purge
// protection holds it until its scheduled purge date.
func (s *Service) purgeDeletedVault(w http.ResponseWriter, r *arm.Request) {
	var name string
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		v, err := deletedVaultIn(tx, r.Param("subscriptionId"), r.Param("location"), r.Param("vaultName"))
		if err != nil {
			return err
		}
		if v.PurgeProtected() && s.now().Before(v.Deleted.ScheduledPurgeDate) {
			return arm.Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "Operation 'DeletedVaultPurge' is not allowed.")
		}
		name = v.Name
		return s.purgeVaultTx(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("vault purged", "vault", name)
	arm.WriteJSON(w, http.StatusOK, nil)
}

// purgeVaultTx deletes a vault record and all its keys and versions (the sealed private keys
// with them). The audit trail stays: it is keyed by the vault's internal id, which a new vault
// of the same name does not share.
func (s *Service) purgeVaultTx(tx store.Tx, v *Vault) error {
	for _, prefix := range []string{keyPrefix(v.ID), versionPrefix(v.ID)} {
		kvs, err := tx.List(prefix)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := tx.Delete(kv.Key); err != nil {
				return err
			}
			s.keys.forget(kv.Key)
		}
	}
	if v.IsManagedHSM() {
		if err := deleteHSMAssignmentsTx(tx, v.ID); err != nil {
			return err
		}
	}
	return tx.Delete(recordKey(v.Kind, v.Name))
}
