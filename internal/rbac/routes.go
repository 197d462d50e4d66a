package rbac

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// API versions served.
var (
	assignmentAPIVersions = []string{"2020-04-01-preview", "2020-10-01-preview", "2022-01-01-preview", "2022-04-01"}
	definitionAPIVersions = []string{"2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"}
)

// maxScopeSegments bounds the scope depth served: a resource three levels deep
// (/subscriptions/s/resourceGroups/g/providers/ns/t1/n1/t2/n2/t3/n3 has 12 segments) and a
// little more.
const maxScopeSegments = 14

// RegisterRoutes adds the Microsoft.Authorization routes. A scope is any ARM id, so its length
// varies while arm.Router matches fixed-length patterns: each operation is registered once per
// scope length, with wildcard segments that the handler joins back into the scope and then
// parses. The literal tail (providers/Microsoft.Authorization/...) keeps these patterns from
// matching any other provider's path.
func (s *Service) RegisterRoutes(rt *arm.Router) {
	type handler func(http.ResponseWriter, *arm.Request, string)
	for n := 0; n <= maxScopeSegments; n++ {
		var prefix strings.Builder
		for i := range n {
			fmt.Fprintf(&prefix, "/{scope%d}", i)
		}
		bind := func(h handler) arm.HandlerFunc {
			return func(w http.ResponseWriter, r *arm.Request) { h(w, r, scopeOf(r, n)) }
		}
		defs := prefix.String() + "/providers/Microsoft.Authorization/roleDefinitions"
		rt.Handle(arm.Route{Method: http.MethodGet, Pattern: defs, ResourceType: DefinitionType,
			APIVersions: definitionAPIVersions, Handler: bind(s.listDefinitions)})
		rt.Handle(arm.Route{Method: http.MethodGet, Pattern: defs + "/{roleDefinitionId}", ResourceType: DefinitionType,
			APIVersions: definitionAPIVersions, Handler: bind(s.getDefinition)})
		if n == 0 {
			continue // no assignments at the tenant root: there are no management groups here
		}
		list := prefix.String() + "/providers/Microsoft.Authorization/roleAssignments"
		item := list + "/{roleAssignmentName}"
		route := func(method, pattern string, h handler) {
			rt.Handle(arm.Route{Method: method, Pattern: pattern, ResourceType: AssignmentType,
				APIVersions: assignmentAPIVersions, Handler: bind(h)})
		}
		route(http.MethodGet, list, s.listAssignments)
		route(http.MethodPut, item, s.createAssignment)
		route(http.MethodGet, item, s.getAssignment)
		route(http.MethodDelete, item, s.deleteAssignmentHandler)
	}
}

// scopeOf joins the first n wildcard segments of the route back into the scope.
func scopeOf(r *arm.Request, n int) string {
	if n == 0 {
		return "/"
	}
	segs := make([]string, n)
	for i := range n {
		segs[i] = r.Param(fmt.Sprintf("scope%d", i))
	}
	return "/" + strings.Join(segs, "/")
}
