package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// Spec is what a client sets on an identity.
type Spec struct {
	Location string
	Tags     map[string]string
	// IsolationScope is None or Regional; empty keeps the current value (None for a new one).
	IsolationScope string
}

// ValidateName applies Azure's naming rules for user-assigned identities: up to 128 ASCII
// letters, digits, hyphens and underscores, starting with a letter or a digit. Azure's naming
// guide says at least 3 characters, but the product's own preparation steps name an identity
// "id" (`pgflex identity create -g rg -n id`), and the provider's API declares no minimum, so
// pgflex does not enforce one.
func ValidateName(name string) error {
	valid := len(name) >= 1 && len(name) <= 128
	for i := 0; valid && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		valid = alnum || i > 0 && (c == '-' || c == '_')
	}
	if !valid {
		return arm.BadRequest("InvalidResourceName",
			"The resource name '%s' is invalid. The name of a user assigned identity must be 1 to 128 characters long, start with a letter or a number, and contain only letters, numbers, hyphens and underscores.", name)
	}
	return nil
}

// validateSpec checks a client's spec and normalises its location and isolation scope.
func validateSpec(spec *Spec) error {
	if spec.Location == "" {
		return arm.BadRequest("LocationRequired", "The location property is required for this definition.")
	}
	reg, ok := regions.Lookup(spec.Location)
	if !ok {
		return arm.BadRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			spec.Location, ResourceType, strings.Join(regions.Names(), ","))
	}
	spec.Location = reg.Name
	if err := resources.ValidateTags(spec.Tags); err != nil {
		return err
	}
	switch {
	case spec.IsolationScope == "":
	case strings.EqualFold(spec.IsolationScope, IsolationNone):
		spec.IsolationScope = IsolationNone
	case strings.EqualFold(spec.IsolationScope, IsolationRegional):
		spec.IsolationScope = IsolationRegional
	default:
		return arm.InvalidParameter("properties.isolationScope",
			"The value '%s' of isolationScope is invalid. Allowed values are 'None' and 'Regional'.", spec.IsolationScope)
	}
	return nil
}

// CreateOrUpdate creates the identity named by id, or updates its tags (and isolation scope).
// A new identity gets fresh principal and client ids, and its principal enters the directory
// in the same transaction. created reports whether the identity is new. Bad input fails with
// an *arm.Error and changes nothing.
func (s *Service) CreateOrUpdate(ctx context.Context, id arm.ResourceID, spec Spec) (ident *Identity, created bool, err error) {
	if !id.IsType(ResourceType) || len(id.Names) != 1 || id.ResourceGroup == "" {
		return nil, false, arm.BadRequest("InvalidResourceId", "'%s' is not a user assigned identity id.", id)
	}
	if err := ValidateName(id.Name()); err != nil {
		return nil, false, err
	}
	if err := validateSpec(&spec); err != nil {
		return nil, false, err
	}
	if _, err := s.groups.Subscription(ctx, id.SubscriptionID); err != nil {
		return nil, false, err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		g, err := resources.CheckGroupInTx(tx, id.SubscriptionID, id.ResourceGroup)
		if err != nil {
			return err
		}
		key := identityKey(id.SubscriptionID, id.ResourceGroup, id.Name())
		var cur Identity
		err = store.GetJSON(tx, key, &cur)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			cur = Identity{SubscriptionID: id.SubscriptionID, ResourceGroup: g.Name, Name: id.Name(),
				Location: spec.Location, PrincipalID: arm.NewGUID(), ClientID: arm.NewGUID(), TenantID: s.tenantID,
				IsolationScope: IsolationNone, Created: s.now().UTC()}
			p := &auth.Principal{ObjectID: cur.PrincipalID, ClientID: cur.ClientID, TenantID: cur.TenantID,
				DisplayName: cur.Name, Type: auth.TypeManagedIdentity, ResourceID: cur.ResourceID(), Created: cur.Created}
			if err := auth.PutPrincipal(tx, p); err != nil {
				return fmt.Errorf("add identity principal: %w", err)
			}
		case err != nil:
			return err
		case cur.Location != spec.Location:
			return arm.BadRequest("InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, spec.Location)
		}
		cur.Tags = spec.Tags
		if spec.IsolationScope != "" {
			cur.IsolationScope = spec.IsolationScope
		}
		ident = &cur
		return store.PutJSON(tx, key, &cur)
	})
	if err != nil {
		return nil, false, err
	}
	if created {
		s.log.Info("managed identity created", "identity", ident.ResourceID(), "principal", ident.PrincipalID, "client", ident.ClientID)
	}
	return ident, created, nil
}

// identityBody is the PUT and PATCH body.
type identityBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		IsolationScope *string `json:"isolationScope"`
	} `json:"properties"`
}

// isolationScope is the body's properties.isolationScope: "" when absent or when the
// api-version predates it (older versions ignore it, as Azure does).
func (b *identityBody) isolationScope(apiVersion string) (string, error) {
	if apiVersion < isolationScopeVersion || b.Properties == nil || b.Properties.IsolationScope == nil {
		return "", nil
	}
	if *b.Properties.IsolationScope == "" {
		return "", arm.InvalidParameter("properties.isolationScope",
			"The value '' of isolationScope is invalid. Allowed values are 'None' and 'Regional'.")
	}
	return *b.Properties.IsolationScope, nil
}

func requestID(r *arm.Request) arm.ResourceID {
	return arm.NewResourceID(r.Param("subscriptionId"), r.Param("resourceGroupName"), namespace, typeName, r.Param("resourceName"))
}

// createOrUpdate serves PUT: 201 with a new identity, 200 with an updated one.
func (s *Service) createOrUpdate(w http.ResponseWriter, r *arm.Request) {
	id := requestID(r)
	if _, err := s.groups.Subscription(r.Context(), id.SubscriptionID); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if err := ValidateName(id.Name()); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body identityBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	scope, err := body.isolationScope(r.APIVersion)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	spec := Spec{Tags: body.Tags, IsolationScope: scope}
	if body.Location != nil {
		spec.Location = *body.Location
	}
	ident, created, err := s.CreateOrUpdate(r.Context(), id, spec)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, ident.view(r.APIVersion))
}
