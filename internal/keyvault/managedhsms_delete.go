package keyvault

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// deleteHSM soft-deletes a Managed HSM: its name stays reserved, its keys and role assignments
// become unreachable, and it can be recovered until its retention ends. 200 when it existed,
// 204 when there was nothing to delete (Azure's long-running DELETE, done at once).
func (s *Service) deleteHSM(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("name")
	deleted := false
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		v, err := activeHSMInGroup(tx, sub, rg, name)
		if arm.AsError(err) != nil {
			_, gerr := activeGroup(tx, sub, rg)
			return gerr
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
	r.Log.Info("managed HSM soft-deleted", "hsm", name)
	arm.WriteJSON(w, http.StatusOK, nil)
}

// deletedHSMIn reads a soft-deleted Managed HSM by subscription, location and name.
func deletedHSMIn(tx store.Tx, sub, location, name string) (*Vault, error) {
	v, err := getRecord(tx, KindManagedHSM, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, deletedHSMNotFound(name, location)
	}
	if err != nil {
		return nil, err
	}
	reg, ok := regions.Lookup(location)
	if v.Deleted == nil || !strings.EqualFold(v.SubscriptionID, sub) || !ok || reg.Name != v.Location {
		return nil, deletedHSMNotFound(name, location)
	}
	return v, nil
}

// listDeletedHSMs serves GET /subscriptions/{sub}/providers/Microsoft.KeyVault/deletedManagedHSMs.
func (s *Service) listDeletedHSMs(w http.ResponseWriter, r *arm.Request) {
	s.listKeyStores(w, r, listHSMRecords, s.deletedHSMView, false, true)
}

// getDeletedHSM serves GET .../locations/{location}/deletedManagedHSMs/{name}.
func (s *Service) getDeletedHSM(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = deletedHSMIn(tx, r.Param("subscriptionId"), r.Param("location"), r.Param("name"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, s.deletedHSMView(v))
}

// purgeDeletedHSM serves POST .../deletedManagedHSMs/{name}/purge: the HSM, its keys and role
// assignments are destroyed, unless purge protection holds them until the scheduled purge date.
// Azure answers 202 and clients poll; the refusal is immediate.
func (s *Service) purgeDeletedHSM(w http.ResponseWriter, r *arm.Request) {
	sub, location, name := r.Param("subscriptionId"), r.Param("location"), r.Param("name")
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = deletedHSMIn(tx, sub, location, name); err != nil {
			return err
		}
		if v.PurgeProtected() && s.now().Before(v.Deleted.ScheduledPurgeDate) {
			return arm.Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed",
				"Operation 'DeletedManagedHsmPurge' is not allowed: purge protection is enabled for managed HSM '%s', which will be purged automatically at %s.",
				v.Name, v.Deleted.ScheduledPurgeDate.Format("2006-01-02T15:04:05Z"))
		}
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	purge := func(ctx context.Context) error { return s.purgeHSM(ctx, sub, location, name) }
	if s.ops == nil {
		if err := purge(r.Context()); err != nil {
			arm.WriteError(w, r, err)
			return
		}
		arm.WriteJSON(w, http.StatusOK, nil)
		return
	}
	op := &arm.Operation{Kind: kindPurgeHSM, ResourceID: v.ResourceID().String(), SubscriptionID: v.SubscriptionID,
		Namespace: "Microsoft.KeyVault", Location: v.Location}
	if err := s.ops.Start(r.Context(), op, func(ctx context.Context, _ *arm.Operation) error { return purge(ctx) }); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("managed HSM purge started", "hsm", v.Name, "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

// kindPurgeHSM is the operation kind of a Managed HSM purge, for resuming it after a restart.
const kindPurgeHSM = "keyvault/purgeManagedHsm"

// purgeHSM destroys a soft-deleted Managed HSM (gone already counts as done).
func (s *Service) purgeHSM(ctx context.Context, sub, location, name string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		cur, err := deletedHSMIn(tx, sub, location, name)
		if arm.AsError(err) != nil {
			return nil
		}
		if err != nil {
			return err
		}
		return s.purgeVaultTx(tx, cur)
	})
}

// resumePurgeHSM finishes a purge a restart interrupted.
func (s *Service) resumePurgeHSM(ctx context.Context, op *arm.Operation) error {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return err
	}
	return s.purgeHSM(ctx, id.SubscriptionID, op.Location, id.Name())
}
