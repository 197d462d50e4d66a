package rbac

import (
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// parseScope parses a role-assignment scope: a subscription, a resource group, or a resource
// at any depth (a vault, or a key inside it: {vaultId}/keys/{name}).
func parseScope(s string) (arm.ResourceID, error) {
	id, err := arm.ParseResourceID(s)
	if err != nil {
		return arm.ResourceID{}, arm.Errorf(http.StatusBadRequest, "InvalidScope",
			"The scope '%s' is not valid. A scope is a subscription, resource group or resource id: /subscriptions/{subscriptionId}[/resourceGroups/{resourceGroupName}[/providers/{namespace}/{type}/{name}...]].", s)
	}
	return id, nil
}

// scopeKeys returns the case-folded keys of a scope and of every scope above it, up to its
// subscription: the scopes whose assignments apply to it.
func scopeKeys(id arm.ResourceID) map[string]bool {
	keys := map[string]bool{}
	for {
		keys[id.Key()] = true
		if id.ResourceGroup == "" && id.Namespace == "" {
			return keys
		}
		id = id.Parent()
	}
}

// isBelow reports whether the scope with key child lies strictly under the scope with key parent.
func isBelow(child, parent string) bool {
	return strings.HasPrefix(child, parent+"/")
}
