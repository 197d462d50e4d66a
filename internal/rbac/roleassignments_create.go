package rbac

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// AssignmentRequest is what a client asks for when it assigns a role.
type AssignmentRequest struct {
	Scope string
	Name  string // a GUID, unique in the tenant
	// RoleDefinitionID is /subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}
	// or the same without the subscription part.
	RoleDefinitionID string
	PrincipalID      string
	PrincipalType    string // optional; checked against the directory when given
	Description      string
	// Condition is an ABAC condition. pgflex does not evaluate conditions, so it refuses them
	// rather than grant more than the condition would.
	Condition                          string
	DelegatedManagedIdentityResourceID string
	// Caller is the object id of who asks, recorded as createdBy/updatedBy.
	Caller string
}

// CreateAssignment assigns a role. Repeating a request for an existing assignment (same name,
// scope, principal and role) updates its description and returns it with created false.
// Failures are *arm.Error values with Azure's codes and change nothing.
func (s *Service) CreateAssignment(ctx context.Context, req AssignmentRequest) (a *Assignment, created bool, err error) {
	if !isGUID(req.Name) {
		return nil, false, arm.BadRequest("InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", req.Name)
	}
	scope, err := parseScope(req.Scope)
	if err != nil {
		return nil, false, err
	}
	roleID, err := s.assignableRole(req.RoleDefinitionID, scope)
	if err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(req.PrincipalID) == "" {
		return nil, false, arm.BadRequest("InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
	}
	if !isGUID(req.PrincipalID) {
		return nil, false, arm.BadRequest("InvalidPrincipalId",
			"The Principal ID '%s' is not valid. Principal ID must be a GUID.", req.PrincipalID)
	}
	if req.PrincipalType != "" && !slices.Contains(principalTypes, req.PrincipalType) {
		return nil, false, arm.BadRequest("InvalidPrincipalType",
			"The principal type '%s' is not valid. Valid principal types are '%s'.", req.PrincipalType, strings.Join(principalTypes, "', '"))
	}
	if req.Condition != "" {
		return nil, false, arm.BadRequest("ConditionNotSupported",
			"Role assignment conditions are not supported: pgflex does not evaluate conditions, and an assignment without its condition would grant more than asked.")
	}
	if _, err := s.groups.Subscription(ctx, scope.SubscriptionID); err != nil {
		return nil, false, err
	}
	name, oid := strings.ToLower(req.Name), strings.ToLower(req.PrincipalID)
	want := Assignment{Name: name, Scope: scope.String(),
		RoleDefinitionID: "/subscriptions/" + scope.SubscriptionID + "/providers/" + DefinitionType + "/" + roleID,
		PrincipalID:      oid, PrincipalType: PrincipalServicePrincipal, Description: req.Description,
		DelegatedManagedIdentityResourceID: req.DelegatedManagedIdentityResourceID, UpdatedBy: req.Caller}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if scope.ResourceGroup != "" {
			if _, err := resources.CheckGroupInTx(tx, scope.SubscriptionID, scope.ResourceGroup); err != nil {
				return err
			}
		}
		_, err := auth.GetPrincipal(tx, oid)
		if errors.Is(err, store.ErrNotFound) {
			return arm.BadRequest("PrincipalNotFound",
				"Principal %s does not exist in the directory %s. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
				strings.ReplaceAll(oid, "-", ""), s.tenantID)
		}
		if err != nil {
			return err
		}
		// pgflex's directory holds service principals only: the administrator and the service
		// principals behind managed identities, which ARM reports as ServicePrincipal too.
		if req.PrincipalType != "" && req.PrincipalType != PrincipalServicePrincipal {
			// Azure's message, typos included.
			return arm.BadRequest("UnmatchedPrincipalType",
				"The PrincipalId '%s' has type 'ServicePrincipal' , which is different from specified PrinciaplType '%s'.",
				strings.ReplaceAll(oid, "-", ""), req.PrincipalType)
		}
		var cur Assignment
		err = store.GetJSON(tx, assignmentKey(name), &cur)
		switch {
		case err == nil:
			if cur.scopeKey() != strings.ToLower(want.Scope) || cur.PrincipalID != oid || cur.RoleID() != roleID {
				return arm.BadRequest("RoleAssignmentUpdateNotPermitted",
					"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
			}
			cur.Description, cur.UpdatedBy, cur.UpdatedOn = want.Description, req.Caller, s.now().UTC()
			a = &cur
			return putAssignment(tx, &cur)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		held, err := assignmentsOf(tx, oid)
		if err != nil {
			return err
		}
		for i := range held {
			if held[i].scopeKey() == strings.ToLower(want.Scope) && held[i].RoleID() == roleID {
				return arm.Conflict("RoleAssignmentExists", "The role assignment already exists.")
			}
		}
		created = true
		want.CreatedBy = req.Caller
		want.CreatedOn = s.now().UTC()
		want.UpdatedOn = want.CreatedOn
		a = &want
		return putAssignment(tx, &want)
	})
	if err != nil {
		return nil, false, err
	}
	if created {
		s.log.Info("role assigned", "assignment", a.ID(), "role", roleID, "principal", oid)
	}
	return a, created, nil
}

// assignableRole checks a roleDefinitionId and returns the GUID of the built-in role it names.
func (s *Service) assignableRole(defID string, scope arm.ResourceID) (string, error) {
	invalid := arm.BadRequest("InvalidRoleDefinitionId", "The role definition ID '%s' is not valid.", defID)
	segs := strings.Split(strings.TrimPrefix(defID, "/"), "/")
	if len(segs) == 6 && strings.EqualFold(segs[0], "subscriptions") {
		// The definition must be read at the scope's own subscription, as Azure resolves it.
		if !strings.EqualFold(segs[1], scope.SubscriptionID) {
			return "", invalid
		}
		segs = segs[2:]
	}
	if len(segs) != 4 || !strings.EqualFold(segs[0], "providers") || !strings.EqualFold(segs[1], "Microsoft.Authorization") ||
		!strings.EqualFold(segs[2], "roleDefinitions") || segs[3] == "" {
		return "", invalid
	}
	role, ok := s.builtin.byID[strings.ToLower(segs[3])]
	if !ok {
		return "", arm.BadRequest("RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", strings.ReplaceAll(segs[3], "-", ""))
	}
	return strings.ToLower(role.ID), nil
}

// assignmentBody is the PUT body of a role assignment.
type assignmentBody struct {
	ID         *string `json:"id"`
	Name       *string `json:"name"`
	Properties *struct {
		RoleDefinitionID                   string  `json:"roleDefinitionId"`
		PrincipalID                        string  `json:"principalId"`
		PrincipalType                      string  `json:"principalType"`
		Scope                              *string `json:"scope"`
		Description                        string  `json:"description"`
		Condition                          string  `json:"condition"`
		ConditionVersion                   string  `json:"conditionVersion"`
		DelegatedManagedIdentityResourceID string  `json:"delegatedManagedIdentityResourceId"`
	} `json:"properties"`
}

// createAssignment serves PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}.
func (s *Service) createAssignment(w http.ResponseWriter, r *arm.Request, scope string) {
	name := r.Param("roleAssignmentName")
	var body assignmentBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Properties == nil {
		arm.WriteError(w, r, arm.BadRequest("InvalidRequestContent",
			"The request content was invalid and could not be deserialized: the properties of the role assignment are required."))
		return
	}
	p := body.Properties
	mismatch := func(what, got, want string) {
		arm.WriteError(w, r, arm.BadRequest("InvalidCreateRoleAssignmentRequest",
			"The request to create role assignment '%s' is not valid. Role assignment %s '%s' must match the %s specified on the URI '%s'.",
			name, what, got, what, want))
	}
	uriID := strings.TrimRight(scope, "/") + "/providers/" + AssignmentType + "/" + name
	switch {
	case p.Scope != nil && !sameScope(*p.Scope, scope):
		mismatch("scope", *p.Scope, scope)
		return
	case body.Name != nil && !strings.EqualFold(*body.Name, name):
		mismatch("name", *body.Name, name)
		return
	case body.ID != nil && !strings.EqualFold(strings.TrimRight(*body.ID, "/"), uriID):
		mismatch("id", *body.ID, uriID)
		return
	}
	a, created, err := s.CreateAssignment(r.Context(), AssignmentRequest{Scope: scope, Name: name,
		RoleDefinitionID: p.RoleDefinitionID, PrincipalID: p.PrincipalID, PrincipalType: p.PrincipalType,
		Description: p.Description, Condition: p.Condition,
		DelegatedManagedIdentityResourceID: p.DelegatedManagedIdentityResourceID, Caller: r.Principal.ObjectID})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	arm.WriteJSON(w, status, a.view())
}

// sameScope compares two scopes as ARM does, ignoring case and a trailing slash.
func sameScope(a, b string) bool {
	return strings.EqualFold(strings.TrimRight(a, "/"), strings.TrimRight(b, "/"))
}
