package identity

import (
	"errors"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
)

// get serves GET of one identity.
func (s *Service) get(w http.ResponseWriter, r *arm.Request) {
	id := requestID(r)
	if err := s.checkGroup(r.Context(), id.SubscriptionID, id.ResourceGroup); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	ident, err := s.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		err = arm.ResourceNotFound(id)
	}
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, ident.view(r.APIVersion))
}
