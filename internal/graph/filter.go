package graph

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/pgflex/pgflex/internal/auth"
)

// The $filter clauses Azure's tools send for service principals. An OData string literal is
// quoted with ' and escapes ' by doubling it.
var (
	anyClause        = regexp.MustCompile(`^\s*(\w+)/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$`)
	eqClause         = regexp.MustCompile(`^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$`)
	startsWithClause = regexp.MustCompile(`^\s*startswith\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\)\s*$`)
)

func unquote(s string) string { return strings.ReplaceAll(s, "''", "'") }

func unsupported(prop string) *Error {
	return errorf(http.StatusBadRequest, "Request_UnsupportedQuery",
		"Unsupported or invalid query filter clause specified for property '%s' of resource 'ServicePrincipal'.", prop)
}

var errInvalidFilter = errorf(http.StatusBadRequest, "BadRequest", "Invalid filter clause")

// spProperty reads a filterable string property of a service principal.
func spProperty(name string) (func(*auth.Principal) string, bool) {
	switch name {
	case "appId":
		return func(p *auth.Principal) string { return p.ClientID }, true
	case "id":
		return func(p *auth.Principal) string { return p.ObjectID }, true
	case "displayName":
		return func(p *auth.Principal) string { return p.DisplayName }, true
	case "servicePrincipalType":
		return func(p *auth.Principal) string { return ServicePrincipal(p)["servicePrincipalType"].(string) }, true
	}
	return nil, false
}

// parseFilter turns one $filter clause into a predicate. Directory string comparisons are
// case-insensitive, as Graph's are.
func parseFilter(f string) (func(*auth.Principal) bool, error) {
	if m := anyClause.FindStringSubmatch(f); m != nil {
		if m[1] != "servicePrincipalNames" {
			return nil, unsupported(m[1])
		}
		if m[2] != m[3] {
			return nil, errInvalidFilter
		}
		want := unquote(m[4])
		return func(p *auth.Principal) bool {
			for _, n := range ServicePrincipal(p)["servicePrincipalNames"].([]string) {
				if strings.EqualFold(n, want) {
					return true
				}
			}
			return false
		}, nil
	}
	if m := eqClause.FindStringSubmatch(f); m != nil {
		get, ok := spProperty(m[1])
		if !ok {
			return nil, unsupported(m[1])
		}
		want := unquote(m[2])
		return func(p *auth.Principal) bool { return strings.EqualFold(get(p), want) }, nil
	}
	if m := startsWithClause.FindStringSubmatch(f); m != nil {
		get, ok := spProperty(m[1])
		if !ok || m[1] == "id" {
			return nil, unsupported(m[1])
		}
		want := strings.ToLower(unquote(m[2]))
		return func(p *auth.Principal) bool { return strings.HasPrefix(strings.ToLower(get(p)), want) }, nil
	}
	return nil, errInvalidFilter
}
