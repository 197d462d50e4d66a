package rbac

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// The role-definition list filters Azure supports.
var (
	filterRoleName = regexp.MustCompile(`(?i)^roleName\s+eq\s+'(.*)'$`)
	filterRoleType = regexp.MustCompile(`(?i)^type\s+eq\s+'([^']*)'$`)
)

// listDefinitions serves GET {scope}/providers/Microsoft.Authorization/roleDefinitions: every
// built-in role (all are assignable at "/", hence everywhere), filtered by roleName or type.
func (s *Service) listDefinitions(w http.ResponseWriter, r *arm.Request, scope string) {
	if err := s.checkDefinitionScope(r, scope); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	keep := func(*RoleDefinition) bool { return true }
	f := strings.TrimSpace(r.URL.Query().Get("$filter"))
	switch m, t := filterRoleName.FindStringSubmatch(f), filterRoleType.FindStringSubmatch(f); {
	case f == "":
	case m != nil:
		// OData doubles a quote inside a string literal.
		name := strings.ReplaceAll(m[1], "''", "'")
		keep = func(d *RoleDefinition) bool { return strings.EqualFold(d.RoleName, name) }
	case t != nil:
		keep = func(d *RoleDefinition) bool { return strings.EqualFold(d.RoleType, t[1]) }
	default:
		arm.WriteError(w, r, arm.BadRequest("UnsupportedQuery",
			"The filter '%s' is not supported. Supported filters are 'roleName eq '{value}'' and 'type eq '{value}''.", f))
		return
	}
	views := []map[string]any{}
	for i := range s.builtin.roles {
		if d := &s.builtin.roles[i]; keep(d) {
			views = append(views, definitionView(d, scope))
		}
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}
