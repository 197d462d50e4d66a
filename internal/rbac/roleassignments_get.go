package rbac

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

func assignmentNotFound(name string) *arm.Error {
	return arm.Errorf(http.StatusNotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
}

// Assignment reads the assignment with the given name at the given scope; an assignment of that
// name at another scope is not found there.
func (s *Service) Assignment(ctx context.Context, scope, name string) (*Assignment, error) {
	id, err := parseScope(scope)
	if err != nil {
		return nil, err
	}
	var a Assignment
	err = s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, assignmentKey(name), &a) })
	if errors.Is(err, store.ErrNotFound) || err == nil && a.scopeKey() != id.Key() {
		return nil, assignmentNotFound(name)
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// getAssignment serves GET {scope}/providers/Microsoft.Authorization/roleAssignments/{name}.
func (s *Service) getAssignment(w http.ResponseWriter, r *arm.Request, scope string) {
	name := r.Param("roleAssignmentName")
	if !isGUID(name) {
		arm.WriteError(w, r, arm.BadRequest("InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name))
		return
	}
	a, err := s.Assignment(r.Context(), scope, strings.ToLower(name))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, a.view())
}
