package arm

import (
	"fmt"
	"net/http"
	"strings"
)

// ResourceID is a parsed ARM resource id:
// /subscriptions/{sub}[/resourceGroups/{rg}[/providers/{ns}/{type}/{name}[/{type}/{name}...]]].
// Names keep the casing they were written with; comparisons use Key, which folds case as ARM does.
type ResourceID struct {
	SubscriptionID string
	ResourceGroup  string
	Namespace      string   // e.g. Microsoft.KeyVault; empty for subscriptions and groups
	Types          []string // e.g. [flexibleServers databases]
	Names          []string // one per type
}

// ParseResourceID parses an ARM resource id. Segment keywords (subscriptions, resourceGroups,
// providers) are matched case-insensitively.
func ParseResourceID(s string) (ResourceID, error) {
	var id ResourceID
	bad := func(why string) (ResourceID, error) {
		return ResourceID{}, &Error{Status: http.StatusBadRequest, Code: "InvalidResourceId",
			Message: fmt.Sprintf("The resource id '%s' is not valid: %s. Expected /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/{namespace}/{type}/{name}.", s, why)}
	}
	if !strings.HasPrefix(s, "/") {
		return bad("it must start with '/'")
	}
	segs := strings.Split(strings.TrimSuffix(s[1:], "/"), "/")
	for _, seg := range segs {
		if seg == "" {
			return bad("it has an empty segment")
		}
	}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return bad("it must start with /subscriptions/{subscriptionId}")
	}
	id.SubscriptionID = segs[1]
	rest := segs[2:]
	if len(rest) == 0 {
		return id, nil
	}
	if !strings.EqualFold(rest[0], "resourceGroups") || len(rest) < 2 {
		return bad("expected resourceGroups/{name} after the subscription")
	}
	id.ResourceGroup = rest[1]
	rest = rest[2:]
	if len(rest) == 0 {
		return id, nil
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 4 {
		return bad("expected providers/{namespace}/{type}/{name} after the resource group")
	}
	id.Namespace = rest[1]
	rest = rest[2:]
	if len(rest)%2 != 0 {
		return bad("each resource type must be followed by a name")
	}
	for i := 0; i < len(rest); i += 2 {
		id.Types = append(id.Types, rest[i])
		id.Names = append(id.Names, rest[i+1])
	}
	return id, nil
}

// String renders the id with ARM's canonical keywords and the names' own casing.
func (id ResourceID) String() string {
	var b strings.Builder
	b.WriteString("/subscriptions/")
	b.WriteString(id.SubscriptionID)
	if id.ResourceGroup == "" {
		return b.String()
	}
	b.WriteString("/resourceGroups/")
	b.WriteString(id.ResourceGroup)
	if id.Namespace == "" {
		return b.String()
	}
	b.WriteString("/providers/")
	b.WriteString(id.Namespace)
	for i := range id.Types {
		b.WriteString("/")
		b.WriteString(id.Types[i])
		b.WriteString("/")
		b.WriteString(id.Names[i])
	}
	return b.String()
}

// Key is the case-folded form used to store and compare ids.
func (id ResourceID) Key() string { return strings.ToLower(id.String()) }

// Name is the last name of the id (the resource's own name).
func (id ResourceID) Name() string {
	if n := len(id.Names); n > 0 {
		return id.Names[n-1]
	}
	if id.ResourceGroup != "" {
		return id.ResourceGroup
	}
	return id.SubscriptionID
}

// Type is the full resource type, e.g. Microsoft.DBforPostgreSQL/flexibleServers/databases.
func (id ResourceID) Type() string {
	if id.Namespace == "" {
		if id.ResourceGroup != "" {
			return "Microsoft.Resources/resourceGroups"
		}
		return "Microsoft.Resources/subscriptions"
	}
	return id.Namespace + "/" + strings.Join(id.Types, "/")
}

// IsType reports whether the id is of the given full type, case-insensitively.
func (id ResourceID) IsType(fullType string) bool { return strings.EqualFold(id.Type(), fullType) }

// Child returns the id of a child resource.
func (id ResourceID) Child(typ, name string) ResourceID {
	c := id
	c.Types = append(append([]string(nil), id.Types...), typ)
	c.Names = append(append([]string(nil), id.Names...), name)
	return c
}

// Parent returns the id one level up: the parent resource, the group, then the subscription.
func (id ResourceID) Parent() ResourceID {
	p := id
	switch {
	case len(id.Types) > 1:
		p.Types = id.Types[:len(id.Types)-1]
		p.Names = id.Names[:len(id.Names)-1]
	case len(id.Types) == 1:
		p.Namespace, p.Types, p.Names = "", nil, nil
	case id.ResourceGroup != "":
		p.ResourceGroup = ""
	}
	return p
}

// GroupID is the id of the resource group that holds the resource.
func (id ResourceID) GroupID() ResourceID {
	return ResourceID{SubscriptionID: id.SubscriptionID, ResourceGroup: id.ResourceGroup}
}

// SameAs compares two ids as ARM does, ignoring case.
func (id ResourceID) SameAs(other ResourceID) bool { return id.Key() == other.Key() }

// NewResourceID builds a top-level provider resource id.
func NewResourceID(sub, group, namespace, typ, name string) ResourceID {
	return ResourceID{SubscriptionID: sub, ResourceGroup: group, Namespace: namespace,
		Types: []string{typ}, Names: []string{name}}
}
