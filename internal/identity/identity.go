package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// ResourceType is the ARM type of a user-assigned managed identity.
const ResourceType = "Microsoft.ManagedIdentity/userAssignedIdentities"

const (
	namespace = "Microsoft.ManagedIdentity"
	typeName  = "userAssignedIdentities"
	keyPrefix = "msi/"
	// isolationScopeVersion is the first api-version that has properties.isolationScope.
	isolationScopeVersion = "2024-11-30"
)

// Isolation scopes of an identity (api-version 2024-11-30).
const (
	IsolationNone     = "None"
	IsolationRegional = "Regional"
)

// apiVersions are the api-versions Azure serves for userAssignedIdentities.
var apiVersions = []string{"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30"}

// ErrNotFound is returned (wrapped) by Get when no identity has the id.
var ErrNotFound = errors.New("managed identity not found")

// Identity is a user-assigned managed identity.
type Identity struct {
	SubscriptionID string            `json:"subscriptionId"`
	ResourceGroup  string            `json:"resourceGroup"` // casing of the group's creation
	Name           string            `json:"name"`          // casing of the identity's creation
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	// PrincipalID is the object id of the identity's principal: what access policies and role
	// assignments name, and the oid of its tokens.
	PrincipalID    string    `json:"principalId"`
	ClientID       string    `json:"clientId"`
	TenantID       string    `json:"tenantId"`
	IsolationScope string    `json:"isolationScope,omitempty"`
	Created        time.Time `json:"created"`
}

// ID is the identity's resource id.
func (i *Identity) ID() arm.ResourceID {
	return arm.NewResourceID(i.SubscriptionID, i.ResourceGroup, namespace, typeName, i.Name)
}

// ResourceID is the id as the Microsoft.ManagedIdentity provider writes it, with a lower-case
// "resourcegroups" segment (Azure's own quirk, which clients compare case-insensitively).
func (i *Identity) ResourceID() string {
	return "/subscriptions/" + i.SubscriptionID + "/resourcegroups/" + i.ResourceGroup +
		"/providers/" + namespace + "/" + typeName + "/" + i.Name
}

// view is the ARM representation for the given api-version.
func (i *Identity) view(apiVersion string) map[string]any {
	props := map[string]any{"tenantId": i.TenantID, "principalId": i.PrincipalID, "clientId": i.ClientID}
	if apiVersion >= isolationScopeVersion {
		scope := i.IsolationScope
		if scope == "" {
			scope = IsolationNone
		}
		props["isolationScope"] = scope
	}
	tags := i.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{
		"id":         i.ResourceID(),
		"name":       i.Name,
		"type":       ResourceType,
		"location":   i.Location,
		"tags":       tags,
		"properties": props,
	}
}

func groupPrefix(sub, group string) string {
	return keyPrefix + strings.ToLower(sub) + "/" + strings.ToLower(group) + "/"
}

func identityKey(sub, group, name string) string {
	return groupPrefix(sub, group) + strings.ToLower(name)
}

// Service is the Microsoft.ManagedIdentity provider.
type Service struct {
	st       store.Store
	groups   *resources.Service
	tenantID string
	log      *slog.Logger
	now      func() time.Time
}

// New makes the provider. tenantID is the directory's tenant, which every identity belongs to.
func New(st store.Store, groups *resources.Service, tenantID string, log *slog.Logger) *Service {
	return &Service{st: st, groups: groups, tenantID: tenantID, log: log, now: time.Now}
}

// RegisterRoutes adds the userAssignedIdentities routes.
func (s *Service) RegisterRoutes(rt *arm.Router) {
	item := "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{resourceName}"
	route := func(method, pattern string, h arm.HandlerFunc) {
		rt.Handle(arm.Route{Method: method, Pattern: pattern, ResourceType: ResourceType, APIVersions: apiVersions, Handler: h})
	}
	route(http.MethodPut, item, s.createOrUpdate)
	route(http.MethodGet, item, s.get)
	route(http.MethodPatch, item, s.update)
	route(http.MethodDelete, item, s.delete)
	route(http.MethodGet, "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", s.listByGroup)
	route(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", s.listBySubscription)
}

// Member is the provider's part in resource-group deletes: deleting a group deletes its
// identities, and with them their principals. Identities go late (high Order), after the
// resources that may still act as them.
func (s *Service) Member() resources.Member {
	return resources.Member{Name: namespace, Order: 90, DeleteAllInGroup: s.DeleteAllInGroup}
}

// Get returns the identity with the given id, which is compared case-insensitively. It fails
// with an error wrapping ErrNotFound when there is none (or id is not an identity's id).
func (s *Service) Get(ctx context.Context, id arm.ResourceID) (*Identity, error) {
	if !id.IsType(ResourceType) || len(id.Names) != 1 || id.ResourceGroup == "" {
		return nil, fmt.Errorf("%s is not a %s id: %w", id, ResourceType, ErrNotFound)
	}
	var ident Identity
	err := s.st.View(ctx, func(tx store.Tx) error {
		return store.GetJSON(tx, identityKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &ident)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("identity %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read identity %s: %w", id, err)
	}
	return &ident, nil
}

// List returns the identities of a subscription, or of one of its groups when group is not
// empty, ordered by group and name.
func (s *Service) List(ctx context.Context, subscriptionID, group string) ([]Identity, error) {
	prefix := keyPrefix + strings.ToLower(subscriptionID) + "/"
	if group != "" {
		prefix = groupPrefix(subscriptionID, group)
	}
	var out []Identity
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = store.ListJSON[Identity](tx, prefix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	return out, nil
}

// checkGroup answers ARM's 404s for a missing subscription or resource group.
func (s *Service) checkGroup(ctx context.Context, sub, group string) error {
	if group == "" {
		_, err := s.groups.Subscription(ctx, sub)
		return err
	}
	_, err := s.groups.Group(ctx, sub, group)
	return err
}
