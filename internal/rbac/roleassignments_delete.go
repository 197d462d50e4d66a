package rbac

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// DeleteAssignment removes the named assignment at scope and returns it; nil (and no error)
// when there was none there.
func (s *Service) DeleteAssignment(ctx context.Context, scope, name string) (*Assignment, error) {
	id, err := parseScope(scope)
	if err != nil {
		return nil, err
	}
	var a *Assignment
	err = s.st.Update(ctx, func(tx store.Tx) error {
		var cur Assignment
		err := store.GetJSON(tx, assignmentKey(name), &cur)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.scopeKey() != id.Key() {
			return nil
		}
		a = &cur
		return deleteAssignment(tx, &cur)
	})
	if err != nil {
		return nil, fmt.Errorf("delete role assignment %s: %w", name, err)
	}
	if a != nil {
		s.log.Info("role assignment deleted", "assignment", a.ID(), "principal", a.PrincipalID)
	}
	return a, nil
}

// deleteAssignmentHandler serves DELETE: 200 with the deleted assignment, 204 when none.
func (s *Service) deleteAssignmentHandler(w http.ResponseWriter, r *arm.Request, scope string) {
	name := r.Param("roleAssignmentName")
	if !isGUID(name) {
		arm.WriteError(w, r, arm.BadRequest("InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name))
		return
	}
	a, err := s.DeleteAssignment(r.Context(), scope, name)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if a == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	arm.WriteJSON(w, http.StatusOK, a.view())
}
