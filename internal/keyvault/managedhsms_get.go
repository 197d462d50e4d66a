package keyvault

import (
	"net/http"

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
	s.listKeyStores(w, r, listHSMRecords, s.hsmView, true, false)
}

// listHSMsBySubscription serves GET /subscriptions/{sub}/providers/Microsoft.KeyVault/managedHSMs.
func (s *Service) listHSMsBySubscription(w http.ResponseWriter, r *arm.Request) {
	s.listKeyStores(w, r, listHSMRecords, s.hsmView, false, false)
}
