package identity

import (
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
)

// listByGroup serves GET of a group's identities, paged.
func (s *Service) listByGroup(w http.ResponseWriter, r *arm.Request) {
	s.list(w, r, r.Param("resourceGroupName"))
}

// listBySubscription serves GET of a subscription's identities, paged.
func (s *Service) listBySubscription(w http.ResponseWriter, r *arm.Request) {
	s.list(w, r, "")
}

func (s *Service) list(w http.ResponseWriter, r *arm.Request, group string) {
	sub := r.Param("subscriptionId")
	if err := s.checkGroup(r.Context(), sub, group); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	idents, err := s.List(r.Context(), sub, group)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(idents))
	for i := range idents {
		views = append(views, idents[i].view(r.APIVersion))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}
