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
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	s.listVaults(w, r, func(v *Vault) bool {
		return strings.EqualFold(v.SubscriptionID, sub) && strings.EqualFold(v.ResourceGroup, rg)
	}, func(tx store.Tx) error {
		// ARM answers 404 for a group that does not exist, not an empty list.
		_, err := activeGroup(tx, sub, rg)
		return err
	})
}

func (s *Service) listVaultsBySubscription(w http.ResponseWriter, r *arm.Request) {
	sub := r.Param("subscriptionId")
	s.listVaults(w, r, func(v *Vault) bool { return strings.EqualFold(v.SubscriptionID, sub) }, nil)
}

func (s *Service) listVaults(w http.ResponseWriter, r *arm.Request, keep func(*Vault) bool, check func(store.Tx) error) {
	var views []map[string]any
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		all, err := listVaultRecords(tx)
		if err != nil {
			return err
		}
		sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) })
		for i := range all {
			if all[i].Deleted == nil && keep(&all[i]) {
				views = append(views, s.vaultView(&all[i]))
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
