package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

// Delete deletes the identity and, in the same transaction, its principal: from that moment
// no token of the identity verifies. Role assignments and access policies that name the
// principal stay, as in Azure, but grant nothing. deleted is false when there was no identity.
func (s *Service) Delete(ctx context.Context, id arm.ResourceID) (deleted bool, err error) {
	var ident Identity
	err = s.st.Update(ctx, func(tx store.Tx) error {
		key := identityKey(id.SubscriptionID, id.ResourceGroup, id.Name())
		err := store.GetJSON(tx, key, &ident)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		deleted = true
		return deleteInTx(tx, key, &ident)
	})
	if err != nil {
		return false, fmt.Errorf("delete identity %s: %w", id, err)
	}
	if deleted {
		s.log.Info("managed identity deleted", "identity", ident.ResourceID(), "principal", ident.PrincipalID)
	}
	return deleted, nil
}

func deleteInTx(tx store.Tx, key string, ident *Identity) error {
	if err := auth.DeletePrincipal(tx, ident.PrincipalID); err != nil {
		return fmt.Errorf("remove identity principal: %w", err)
	}
	return tx.Delete(key)
}

// DeleteAllInGroup deletes every identity of a resource group with its principal, in one
// transaction (resources.Member).
func (s *Service) DeleteAllInGroup(ctx context.Context, subscriptionID, group string) error {
	var n int
	err := s.st.Update(ctx, func(tx store.Tx) error {
		kvs, err := tx.List(groupPrefix(subscriptionID, group))
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var ident Identity
			if err := store.GetJSON(tx, kv.Key, &ident); err != nil {
				return err
			}
			if err := deleteInTx(tx, kv.Key, &ident); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete identities of group %s: %w", group, err)
	}
	if n > 0 {
		s.log.Info("managed identities deleted with their group", "group", group, "count", n)
	}
	return nil
}

// delete serves DELETE: 200 when the identity was deleted, 204 when there was none.
func (s *Service) delete(w http.ResponseWriter, r *arm.Request) {
	id := requestID(r)
	if err := s.checkGroup(r.Context(), id.SubscriptionID, id.ResourceGroup); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	deleted, err := s.Delete(r.Context(), id)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if !deleted {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(http.StatusOK)
}
