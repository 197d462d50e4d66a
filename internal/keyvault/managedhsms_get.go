package keyvault

import (
	"net/http"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// getHSM serves GET .../managedHSMs/{name}.
func (s *Service) getHSM(w http.ResponseWriter, r *arm.Request) {
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = activeHSMInGroup(tx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("name"))
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, s.hsmView(v))
}

// listHSMsByGroup serves GET .../resourceGroups/{rg}/providers/Microsoft.KeyVault/managedHSMs.
func (s *Service) listHSMsByGroup(w http.ResponseWriter, r *arm.Request) {
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	s.listHSMs(w, r, func(v *Vault) bool {
		return strings.EqualFold(v.SubscriptionID, sub) && strings.EqualFold(v.ResourceGroup, rg)
	}, func(tx store.Tx) error {
		_, err := activeGroup(tx, sub, rg)
		return err
	})
}

// listHSMsBySubscription serves GET /subscriptions/{sub}/providers/Microsoft.KeyVault/managedHSMs.
func (s *Service) listHSMsBySubscription(w http.ResponseWriter, r *arm.Request) {
	sub := r.Param("subscriptionId")
	s.listHSMs(w, r, func(v *Vault) bool { return strings.EqualFold(v.SubscriptionID, sub) }, nil)
}

func (s *Service) listHSMs(w http.ResponseWriter, r *arm.Request, keep func(*Vault) bool, check func(store.Tx) error) {
	views := []map[string]any{}
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		all, err := listHSMRecords(tx)
		if err != nil {
			return err
		}
		sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name) })
		for i := range all {
			if all[i].Deleted == nil && keep(&all[i]) {
				views = append(views, s.hsmView(&all[i]))
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
