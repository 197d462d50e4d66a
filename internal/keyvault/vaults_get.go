package keyvault

import (
	"net/http"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

func (s *Service) getVault(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = activeVaultInGroup(tx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, s.vaultView(v))
}

func (s *Service) listVaultsByGroup(w http.ResponseWriter, r *arm.Request) {
	s.listKeyStores(w, r, listVaultRecords, s.vaultView, true, false)
}

func (s *Service) listVaultsBySubscription(w http.ResponseWriter, r *arm.Request) {
	s.listKeyStores(w, r, listVaultRecords, s.vaultView, false, false)
}

// listKeyStores answers a list of vaults or Managed HSMs (records and view say which) of the
// request's subscription, or of its resource group when inGroup: the live ones, or the
// soft-deleted ones when deleted.
func (s *Service) listKeyStores(w http.ResponseWriter, r *arm.Request, records func(store.Tx) ([]Vault, error),
	view func(*Vault) map[string]any, inGroup, deleted bool) {
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	var views []map[string]any
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		if inGroup {
			// ARM answers 404 for a group that does not exist, not an empty list.
			if _, err := activeGroup(tx, sub, rg); err != nil {
				return err
			}
		}
		all, err := records(tx)
		if err != nil {
			return err
		}
		sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) })
		for i := range all {
			v := &all[i]
			if (v.Deleted != nil) == deleted && strings.EqualFold(v.SubscriptionID, sub) && (!inGroup || strings.EqualFold(v.ResourceGroup, rg)) {
				views = append(views, view(v))
			}
		}
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}
