package identity

import (
	"context"
	"errors"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// Update changes the tags of an existing identity (nil keeps them). Its principal, client id
// and location never change.
func (s *Service) Update(ctx context.Context, id arm.ResourceID, tags map[string]string) (*Identity, error) {
	if err := resources.ValidateTags(tags); err != nil {
		return nil, err
	}
	var ident Identity
	err := s.st.Update(ctx, func(tx store.Tx) error {
		key := identityKey(id.SubscriptionID, id.ResourceGroup, id.Name())
		err := store.GetJSON(tx, key, &ident)
		if errors.Is(err, store.ErrNotFound) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		if tags != nil {
			ident.Tags = tags
		}
		return store.PutJSON(tx, key, &ident)
	})
	if err != nil {
		return nil, err
	}
	return &ident, nil
}

// update serves PATCH: tags only, as the IdentityUpdate model allows nothing else to change.
func (s *Service) update(w http.ResponseWriter, r *arm.Request) {
	id := requestID(r)
	if err := s.checkGroup(r.Context(), id.SubscriptionID, id.ResourceGroup); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body identityBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Location != nil {
		cur, err := s.Get(r.Context(), id)
		if errors.Is(err, ErrNotFound) {
			err = arm.ResourceNotFound(id)
		}
		if err != nil {
			arm.WriteError(w, r, err)
			return
		}
		if reg, ok := regions.Lookup(*body.Location); !ok || reg.Name != cur.Location {
			arm.WriteError(w, r, arm.BadRequest("InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, *body.Location))
			return
		}
	}
	ident, err := s.Update(r.Context(), id, body.Tags)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, ident.view(r.APIVersion))
}
