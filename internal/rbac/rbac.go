package rbac

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// Resource types of the Microsoft.Authorization provider.
const (
	AssignmentType = "Microsoft.Authorization/roleAssignments"
	DefinitionType = "Microsoft.Authorization/roleDefinitions"
)

// Principal types of a role assignment, as ARM names them.
const (
	PrincipalUser             = "User"
	PrincipalGroup            = "Group"
	PrincipalServicePrincipal = "ServicePrincipal"
	PrincipalForeignGroup     = "ForeignGroup"
	PrincipalDevice           = "Device"
)

var principalTypes = []string{PrincipalUser, PrincipalGroup, PrincipalServicePrincipal, PrincipalForeignGroup, PrincipalDevice}

// Assignment is a role assignment: a principal holds a role at a scope, and so at every scope
// below it.
type Assignment struct {
	Name             string `json:"name"`  // a GUID
	Scope            string `json:"scope"` // canonical keywords, names as written at creation
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	PrincipalType    string `json:"principalType"`
	Description      string `json:"description,omitempty"`
	// DelegatedManagedIdentityResourceID is kept as given; pgflex has no delegation.
	DelegatedManagedIdentityResourceID string    `json:"delegatedManagedIdentityResourceId,omitempty"`
	CreatedOn                          time.Time `json:"createdOn"`
	UpdatedOn                          time.Time `json:"updatedOn"`
	CreatedBy                          string    `json:"createdBy,omitempty"`
	UpdatedBy                          string    `json:"updatedBy,omitempty"`
}

// ID is the assignment's resource id: {scope}/providers/Microsoft.Authorization/roleAssignments/{name}.
func (a *Assignment) ID() string {
	return a.Scope + "/providers/" + AssignmentType + "/" + a.Name
}

// RoleID is the GUID of the assigned role definition.
func (a *Assignment) RoleID() string {
	return strings.ToLower(a.RoleDefinitionID[strings.LastIndex(a.RoleDefinitionID, "/")+1:])
}

func (a *Assignment) scopeKey() string { return strings.ToLower(a.Scope) }

func (a *Assignment) view() map[string]any {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	return map[string]any{
		"id":   a.ID(),
		"name": a.Name,
		"type": AssignmentType,
		"properties": map[string]any{
			"roleDefinitionId":                   a.RoleDefinitionID,
			"principalId":                        a.PrincipalID,
			"principalType":                      a.PrincipalType,
			"scope":                              a.Scope,
			"condition":                          nil,
			"conditionVersion":                   nil,
			"description":                        opt(a.Description),
			"delegatedManagedIdentityResourceId": opt(a.DelegatedManagedIdentityResourceID),
			"createdOn":                          a.CreatedOn,
			"updatedOn":                          a.UpdatedOn,
			"createdBy":                          opt(a.CreatedBy),
			"updatedBy":                          opt(a.UpdatedBy),
		},
	}
}

// Store layout: one record per assignment by its (tenant-unique) name, and an index by
// principal so that the checker reads only the caller's assignments. An index entry's value is
// the grant itself, "{roleId} {scopeKey}", so that a check decodes no JSON.
const (
	assignmentPrefix  = "rbac/assignment/"
	byPrincipalPrefix = "rbac/principal/"
)

func assignmentKey(name string) string { return assignmentPrefix + strings.ToLower(name) }
func principalIndexKey(oid, name string) string {
	return byPrincipalPrefix + strings.ToLower(oid) + "/" + strings.ToLower(name)
}

func putAssignment(tx store.Tx, a *Assignment) error {
	if err := store.PutJSON(tx, assignmentKey(a.Name), a); err != nil {
		return err
	}
	return tx.Put(principalIndexKey(a.PrincipalID, a.Name), []byte(a.RoleID()+" "+a.scopeKey()))
}

// grant is an index entry: the role a principal holds and the (case-folded) scope.
type grant struct{ roleID, scopeKey string }

// grantsOf reads a principal's grants from the index alone.
func grantsOf(tx store.Tx, oid string) ([]grant, error) {
	kvs, err := tx.List(byPrincipalPrefix + strings.ToLower(oid) + "/")
	if err != nil {
		return nil, err
	}
	out := make([]grant, 0, len(kvs))
	for _, kv := range kvs {
		role, scope, ok := strings.Cut(string(kv.Value), " ")
		if !ok {
			return nil, fmt.Errorf("index entry %s is malformed", kv.Key)
		}
		out = append(out, grant{roleID: role, scopeKey: scope})
	}
	return out, nil
}

func deleteAssignment(tx store.Tx, a *Assignment) error {
	if err := tx.Delete(principalIndexKey(a.PrincipalID, a.Name)); err != nil {
		return err
	}
	return tx.Delete(assignmentKey(a.Name))
}

// assignmentsOf reads the assignments of one principal.
func assignmentsOf(tx store.Tx, oid string) ([]Assignment, error) {
	kvs, err := tx.List(byPrincipalPrefix + strings.ToLower(oid) + "/")
	if err != nil {
		return nil, err
	}
	out := make([]Assignment, 0, len(kvs))
	for _, kv := range kvs {
		var a Assignment
		if err := store.GetJSON(tx, assignmentPrefix+kv.Key[strings.LastIndex(kv.Key, "/")+1:], &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Service is the Microsoft.Authorization provider and the role-based access checker.
type Service struct {
	st       store.Store
	groups   *resources.Service
	tenantID string
	log      *slog.Logger
	now      func() time.Time
	builtin  *catalog // Azure's ARM built-in roles
	hsm      *catalog // Managed HSM local-RBAC roles
}

// New makes the provider. tenantID is the directory's tenant, named in PrincipalNotFound.
func New(st store.Store, groups *resources.Service, tenantID string, log *slog.Logger) (*Service, error) {
	builtin, err := loadCatalog(builtinRolesJSON, TypeBuiltIn)
	if err != nil {
		return nil, err
	}
	hsm, err := loadCatalog(managedHSMRolesJSON, TypeManagedHSMBuiltIn)
	if err != nil {
		return nil, err
	}
	return &Service{st: st, groups: groups, tenantID: tenantID, log: log, now: time.Now, builtin: builtin, hsm: hsm}, nil
}

// RoleDefinitions returns Azure's built-in roles that ARM role assignments can name.
func (s *Service) RoleDefinitions() []RoleDefinition {
	return append([]RoleDefinition(nil), s.builtin.roles...)
}

// ManagedHSMRoleDefinitions returns the Managed HSM local-RBAC built-in roles, for a Managed HSM
// data plane that keeps its own assignments and checks them with the same matching rules
// (RoleDefinition.AllowsDataAction).
func (s *Service) ManagedHSMRoleDefinitions() []RoleDefinition {
	return append([]RoleDefinition(nil), s.hsm.roles...)
}

// RoleDefinition finds a built-in ARM role by id (GUID) or role name, case-insensitively.
func (s *Service) RoleDefinition(idOrName string) (*RoleDefinition, bool) {
	r, ok := s.builtin.byIDOrName(idOrName)
	if !ok {
		return nil, false
	}
	c := *r
	return &c, true
}

// Member is the provider's part in resource-group deletes: role assignments are extension
// resources of their scope, so those at or below a deleted group go with it. Last in order,
// after every resource of the group.
func (s *Service) Member() resources.Member {
	return resources.Member{Name: "Microsoft.Authorization", Order: 100, DeleteAllInGroup: s.DeleteAllInGroup}
}

// DeleteAllInGroup deletes the role assignments at or below a resource group.
func (s *Service) DeleteAllInGroup(ctx context.Context, subscriptionID, group string) error {
	groupKey := strings.ToLower("/subscriptions/" + subscriptionID + "/resourceGroups/" + group)
	var n int
	err := s.st.Update(ctx, func(tx store.Tx) error {
		all, err := store.ListJSON[Assignment](tx, assignmentPrefix)
		if err != nil {
			return err
		}
		for i := range all {
			if k := all[i].scopeKey(); k == groupKey || isBelow(k, groupKey) {
				if err := deleteAssignment(tx, &all[i]); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete role assignments of group %s: %w", group, err)
	}
	if n > 0 {
		s.log.Info("role assignments deleted with their group", "group", group, "count", n)
	}
	return nil
}

// sortAssignments orders assignments by scope, then name, so that lists are stable.
func sortAssignments(as []Assignment) {
	sort.Slice(as, func(i, j int) bool {
		if ki, kj := as[i].scopeKey(), as[j].scopeKey(); ki != kj {
			return ki < kj
		}
		return as[i].Name < as[j].Name
	})
}
