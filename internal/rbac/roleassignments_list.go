package rbac

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// ListFilter selects role assignments, as the $filter of the list operations does.
type ListFilter struct {
	// AtScope keeps the assignments at the scope or above it; otherwise those below it are
	// listed too.
	AtScope bool
	// PrincipalID keeps one principal's assignments.
	PrincipalID string
}

// The filters Azure's role-assignment lists support. "atScope() and principalId eq" is not
// among them (an Azure limitation clients know of); assignedTo has no groups to expand here,
// so it equals principalId eq.
var (
	filterAtScope      = regexp.MustCompile(`(?i)^atScope\(\)$`)
	filterPrincipal    = regexp.MustCompile(`(?i)^principalId\s+eq\s+'([^']*)'$`)
	filterAssignedTo   = regexp.MustCompile(`(?i)^assignedTo\('([^']*)'\)$`)
	filterAtScopeAndTo = regexp.MustCompile(`(?i)^(?:atScope\(\)\s+and\s+assignedTo\('([^']*)'\)|assignedTo\('([^']*)'\)\s+and\s+atScope\(\))$`)
)

// ParseListFilter reads a role-assignment $filter.
func ParseListFilter(f string) (ListFilter, error) {
	f = strings.TrimSpace(f)
	switch {
	case f == "":
		return ListFilter{}, nil
	case filterAtScope.MatchString(f):
		return ListFilter{AtScope: true}, nil
	}
	if m := filterPrincipal.FindStringSubmatch(f); m != nil && isGUID(m[1]) {
		return ListFilter{PrincipalID: m[1]}, nil
	}
	if m := filterAssignedTo.FindStringSubmatch(f); m != nil && isGUID(m[1]) {
		return ListFilter{PrincipalID: m[1]}, nil
	}
	if m := filterAtScopeAndTo.FindStringSubmatch(f); m != nil && isGUID(m[1]+m[2]) {
		return ListFilter{AtScope: true, PrincipalID: m[1] + m[2]}, nil
	}
	return ListFilter{}, arm.BadRequest("UnsupportedQuery",
		"The filter '%s' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'.", f)
}

// ListAssignments lists the assignments that apply at scope (at it or above it, up to the
// subscription) and, unless f.AtScope, those below it, ordered by scope and name.
func (s *Service) ListAssignments(ctx context.Context, scope string, f ListFilter) ([]Assignment, error) {
	id, err := parseScope(scope)
	if err != nil {
		return nil, err
	}
	above, key := scopeKeys(id), id.Key()
	var all []Assignment
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		if f.PrincipalID != "" {
			all, err = assignmentsOf(tx, f.PrincipalID)
		} else {
			all, err = store.ListJSON[Assignment](tx, assignmentPrefix)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, a := range all {
		if k := a.scopeKey(); above[k] || !f.AtScope && isBelow(k, key) {
			out = append(out, a)
		}
	}
	sortAssignments(out)
	return out, nil
}

// listAssignments serves GET {scope}/providers/Microsoft.Authorization/roleAssignments, paged.
func (s *Service) listAssignments(w http.ResponseWriter, r *arm.Request, scope string) {
	f, err := ParseListFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	id, err := parseScope(scope)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if _, err := s.groups.Subscription(r.Context(), id.SubscriptionID); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	as, err := s.ListAssignments(r.Context(), scope, f)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(as))
	for i := range as {
		views = append(views, as[i].view())
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}
