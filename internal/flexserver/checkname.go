package flexserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// checkNameAvailability answers whether a server name can be used (names are global).
func (s *Service) checkNameAvailability(w http.ResponseWriter, r *arm.Request) {
	var body struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Type != "" && !strings.EqualFold(body.Type, ResourceType) {
		arm.WriteError(w, r, arm.InvalidParameter("type", "The type '%s' is not supported; use %s.", body.Type, ResourceType))
		return
	}
	out := map[string]any{"name": body.Name, "type": ResourceType, "nameAvailable": true, "message": ""}
	if err := ValidateServerName(body.Name); err != nil {
		out["nameAvailable"], out["reason"], out["message"] = false, "Invalid", arm.AsError(err).Message
		arm.WriteJSON(w, http.StatusOK, out)
		return
	}
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		_, err := tx.Get(nameKey(body.Name))
		return err
	})
	switch {
	case err == nil:
		out["nameAvailable"], out["reason"], out["message"] = false, "AlreadyExists", "Specified server name is already used."
	case !errors.Is(err, store.ErrNotFound):
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, out)
}
