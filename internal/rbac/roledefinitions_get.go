package rbac

import (
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// definitionView renders a role definition as listed at scope: its id is subscription-level
// under a subscription (the form role assignments name) and tenant-level at the root scope.
func definitionView(d *RoleDefinition, scope string) map[string]any {
	prefix := ""
	if scope != "/" {
		if id, err := parseScope(scope); err == nil {
			prefix = "/subscriptions/" + id.SubscriptionID
		}
	}
	perms := make([]Permission, len(d.Permissions))
	for i, p := range d.Permissions {
		perms[i] = Permission{Actions: nonNil(p.Actions), NotActions: nonNil(p.NotActions),
			DataActions: nonNil(p.DataActions), NotDataActions: nonNil(p.NotDataActions)}
	}
	return map[string]any{
		"id":   prefix + "/providers/" + DefinitionType + "/" + d.ID,
		"name": d.ID,
		"type": DefinitionType,
		"properties": map[string]any{
			"roleName":         d.RoleName,
			"type":             d.RoleType,
			"description":      d.Description,
			"assignableScopes": nonNil(d.AssignableScopes),
			"permissions":      perms,
			"createdBy":        nil,
			"updatedBy":        nil,
		},
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// checkDefinitionScope validates the scope a definition is read at: the tenant root, or a
// subscription (or anything in it) that exists.
func (s *Service) checkDefinitionScope(r *arm.Request, scope string) error {
	if scope == "/" {
		return nil
	}
	id, err := parseScope(scope)
	if err != nil {
		return err
	}
	_, err = s.groups.Subscription(r.Context(), id.SubscriptionID)
	return err
}

// getDefinition serves GET {scope}/providers/Microsoft.Authorization/roleDefinitions/{id}.
func (s *Service) getDefinition(w http.ResponseWriter, r *arm.Request, scope string) {
	if err := s.checkDefinitionScope(r, scope); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	id := r.Param("roleDefinitionId")
	d, ok := s.builtin.byID[strings.ToLower(id)]
	if !ok {
		arm.WriteError(w, r, arm.Errorf(http.StatusNotFound, "RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", strings.ReplaceAll(id, "-", "")))
		return
	}
	arm.WriteJSON(w, http.StatusOK, definitionView(d, scope))
}
