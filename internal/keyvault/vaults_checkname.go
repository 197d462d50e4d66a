package keyvault

import (
	"errors"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// checkNameAvailability answers whether a vault name can be used: valid and neither taken nor
// held by a soft-deleted vault.
func (s *Service) checkNameAvailability(w http.ResponseWriter, r *arm.Request) {
	var body struct {
		Name *string `json:"name"`
		Type *string `json:"type"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Name == nil || *body.Name == "" {
		arm.WriteError(w, r, arm.InvalidParameter("name", "The name to check is required."))
		return
	}
	name := *body.Name
	if err := ValidateVaultName(name); err != nil {
		arm.WriteJSON(w, http.StatusOK, map[string]any{"nameAvailable": false, "reason": "AccountNameInvalid", "message": err.(*arm.Error).Message})
		return
	}
	var v *Vault
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = getVaultRecord(tx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if v == nil {
		arm.WriteJSON(w, http.StatusOK, map[string]any{"nameAvailable": true})
		return
	}
	msg := vaultAlreadyExists(name).Message
	if v.Deleted != nil {
		msg = vaultInDeletedState().Message
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"nameAvailable": false, "reason": "AlreadyExists", "message": msg})
}
