package resources

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// GenericResource is a resource as Microsoft.Resources lists them across providers
// (GET /subscriptions/{id}/resources): what az keyvault list and az keyvault show -n (without
// a group) read to find vaults.
type GenericResource struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Location string            `json:"location"`
	Tags     map[string]string `json:"tags,omitempty"`
}

// GenericAPIVersions are the api-versions of the generic resource list (2015-11-01 is what
// Key Vault's SDK pins for it).
var GenericAPIVersions = []string{"2015-11-01", "2016-09-01", "2019-10-01", "2020-06-01", "2021-04-01", "2022-09-01"}

// The $filter served: clauses "{property} eq '{value}'" joined by "and", on the properties
// Azure's tools filter by (az keyvault list: resourceType; az resource list: resourceGroup,
// name, location).
var (
	filterAnd    = regexp.MustCompile(`(?i)\s+and\s+`)
	filterClause = regexp.MustCompile(`(?i)^\s*(resourceType|resourceGroup|name|location)\s+eq\s+'([^']*)'\s*$`)
)

// parseGenericFilter turns a $filter into a predicate; ok is false for one not served.
func parseGenericFilter(f string) (func(GenericResource) bool, bool) {
	var preds []func(GenericResource) bool
	for _, clause := range filterAnd.Split(f, -1) {
		m := filterClause.FindStringSubmatch(clause)
		if m == nil {
			return nil, false
		}
		want := m[2]
		var get func(GenericResource) string
		switch strings.ToLower(m[1]) {
		case "resourcetype":
			get = func(r GenericResource) string { return r.Type }
		case "resourcegroup":
			get = func(r GenericResource) string { return groupOf(r.ID) }
		case "name":
			get = func(r GenericResource) string { return r.Name }
		case "location":
			get = func(r GenericResource) string { return r.Location }
		}
		preds = append(preds, func(r GenericResource) bool { return strings.EqualFold(get(r), want) })
	}
	return func(r GenericResource) bool {
		for _, p := range preds {
			if !p(r) {
				return false
			}
		}
		return true
	}, true
}

func (s *Service) registerGenericRoutes(rt *arm.Router) {
	const typ = "Microsoft.Resources/resources"
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions/{subscriptionId}/resources", ResourceType: typ,
		APIVersions: GenericAPIVersions, Handler: s.listGeneric})
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/resources",
		ResourceType: typ, APIVersions: GenericAPIVersions, Handler: s.listGeneric})
}

// maxEchoedFilter bounds how much of a client's $filter an error repeats: enough to recognise
// it, not a way to have the service reflect arbitrary amounts of text.
const maxEchoedFilter = 200

// echoFilter is f for an error message: its first maxEchoedFilter characters, then "…" if cut.
func echoFilter(f string) string {
	n := 0
	for i := range f {
		if n == maxEchoedFilter {
			return f[:i] + "…"
		}
		n++
	}
	return f
}

// listGeneric lists the resources every member provider reports, in the subscription or the
// group, optionally of one type.
func (s *Service) listGeneric(w http.ResponseWriter, r *arm.Request) {
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	if _, err := s.Subscription(r.Context(), sub); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if rg != "" {
		if _, err := s.Group(r.Context(), sub, rg); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	match := func(GenericResource) bool { return true }
	if f := r.URL.Query().Get("$filter"); f != "" {
		var ok bool
		if match, ok = parseGenericFilter(f); !ok {
			arm.WriteError(w, r, arm.BadRequest("InvalidFilterInQueryString", "Invalid $filter '%s' specified in the query string.", echoFilter(f)))
			return
		}
	}
	s.mu.Lock()
	members := append([]Member(nil), s.members...)
	s.mu.Unlock()
	var out []GenericResource
	for _, m := range members {
		if m.List == nil {
			continue
		}
		rs, err := m.List(r.Context(), sub)
		if err != nil {
			arm.WriteError(w, r, err)
			return
		}
		for _, res := range rs {
			if !match(res) {
				continue
			}
			if rg != "" && !strings.EqualFold(groupOf(res.ID), rg) {
				continue
			}
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].ID) < strings.ToLower(out[j].ID) })
	page, err := arm.Paginate(r, out)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

// groupOf is the resource group segment of a resource id.
func groupOf(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// ListFunc reports a provider's live resources in a subscription, for the generic list.
type ListFunc func(ctx context.Context, subscriptionID string) ([]GenericResource, error)
