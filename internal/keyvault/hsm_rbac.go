package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/store"
)

// A Managed HSM's local RBAC: role assignments kept by the HSM itself and managed through its
// own host,
//
//	PUT|GET|DELETE {hsmUri}/{scope}/providers/Microsoft.Authorization/roleAssignments/{name}
//	GET            {hsmUri}/{scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=]
//	GET            {hsmUri}/{scope}/providers/Microsoft.Authorization/roleDefinitions[/{name}]
//
// at the scopes "/", "/keys" and "/keys/{name}" (clients send the scope as is, so "/" arrives
// as a doubled slash). The roles are the built-in Managed HSM roles of internal/rbac's catalog,
// matched with its rules (rbac.RoleDefinition.AllowsDataAction). An assignment grants at its
// scope and below: "/" covers every key, "/keys" every key, "/keys/{name}" one key.

// hsmAssignment is one local-RBAC role assignment of a Managed HSM.
type hsmAssignment struct {
	Name        string    `json:"name"`
	Scope       string    `json:"scope"` // "/", "/keys" or "/keys/{name}", key name as given
	RoleID      string    `json:"roleId"`
	PrincipalID string    `json:"principalId"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"createdBy,omitempty"`
}

func hsmAssignmentPrefix(hsmID string) string { return "kv/hsmrole/" + hsmID + "/" }
func hsmAssignmentKey(hsmID, name string) string {
	return hsmAssignmentPrefix(hsmID) + strings.ToLower(name)
}

func putHSMAssignment(tx store.Tx, hsmID string, a *hsmAssignment) error {
	return store.PutJSON(tx, hsmAssignmentKey(hsmID, a.Name), a)
}

func listHSMAssignments(tx store.Tx, hsmID string) ([]hsmAssignment, error) {
	return store.ListJSON[hsmAssignment](tx, hsmAssignmentPrefix(hsmID))
}

// deleteHSMAssignmentsTx removes every role assignment of a Managed HSM (at its purge).
func deleteHSMAssignmentsTx(tx store.Tx, hsmID string) error {
	kvs, err := tx.List(hsmAssignmentPrefix(hsmID))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := tx.Delete(kv.Key); err != nil {
			return err
		}
	}
	return nil
}

// hsmRoleDefinitionID is the id a Managed HSM gives a role definition.
func hsmRoleDefinitionID(roleID string) string {
	return "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/" + roleID
}

// canonicalHSMScope turns a scope as a client sends it ("", "/", "//", "/keys/", "//keys/k")
// into "/", "/keys" or "/keys/{name}"; ok is false for anything else.
func canonicalHSMScope(raw string) (string, bool) {
	s := strings.Trim(raw, "/")
	if s == "" {
		return "/", true
	}
	parts := strings.Split(s, "/")
	if !strings.EqualFold(parts[0], "keys") || len(parts) > 2 {
		return "", false
	}
	if len(parts) == 1 {
		return "/keys", true
	}
	if !keyNameRE.MatchString(parts[1]) {
		return "", false
	}
	return "/keys/" + parts[1], true
}

// scopeCovers reports whether an assignment at scope a applies at scope target.
func scopeCovers(a, target string) bool {
	a, target = strings.ToLower(a), strings.ToLower(target)
	return a == "/" || a == target || strings.HasPrefix(target, a+"/")
}

// authorizeHSM decides, by the HSM's local role assignments, whether the caller holds op's
// data action at scope.
func (s *Service) authorizeHSM(ctx context.Context, v *Vault, c caller, op keyOp, scope string) error {
	var held []hsmAssignment
	if err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		held, err = listHSMAssignments(tx, v.ID)
		return err
	}); err != nil {
		return fmt.Errorf("read managed HSM role assignments: %w", err)
	}
	for _, a := range held {
		if !strings.EqualFold(a.PrincipalID, c.ObjectID) || !scopeCovers(a.Scope, scope) {
			continue
		}
		if role, ok := s.hsmRoles[a.RoleID]; ok && role.AllowsDataAction(op.HSMAction) {
			return nil
		}
	}
	lines := []string{
		"Caller is not authorized to perform action on resource.",
		"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.",
		"Caller: " + c.describe(),
		"Action: '" + op.HSMAction + "'",
		"Resource: '" + strings.ToLower(scope) + "'",
		"Assignment: (not found)",
		"DecisionReason: 'DeniedWithNoValidRBAC'",
		"Vault: " + v.Name + ";location=" + v.Location,
		"",
	}
	return &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "ForbiddenByRbac", Message: strings.Join(lines, "\n")}
}

// resolveHSMRBAC recognises the role-management paths of a Managed HSM; ok is false for any
// other path (the keys API).
func (s *Service) resolveHSMRBAC(r *http.Request) (t target, ok bool, err error) {
	p := r.URL.EscapedPath()
	const marker = "/providers/microsoft.authorization/"
	i := strings.Index(strings.ToLower(p), marker)
	if i < 0 {
		return target{}, false, nil
	}
	rawScope, err1 := url.PathUnescape(p[:i])
	tail := strings.Split(strings.Trim(p[i+len(marker):], "/"), "/")
	scope, valid := canonicalHSMScope(rawScope)
	if err1 != nil || !valid {
		return target{}, true, badParameter("The role scope '%s' is invalid: a managed HSM role scope is '/', '/keys' or '/keys/{key name}'.", rawScope)
	}
	name := ""
	if len(tail) == 2 {
		name, _ = url.PathUnescape(tail[1])
	}
	m := r.Method
	switch {
	case strings.EqualFold(tail[0], "roleAssignments") && len(tail) == 1 && m == http.MethodGet:
		return target{op: opRoleAssignList, h: s.listHSMAssignmentsHandler, scope: scope}, true, nil
	case strings.EqualFold(tail[0], "roleAssignments") && len(tail) == 2 && m == http.MethodPut:
		return target{op: opRoleAssignCreate, name: "", h: s.createHSMAssignment(name), scope: scope}, true, nil
	case strings.EqualFold(tail[0], "roleAssignments") && len(tail) == 2 && m == http.MethodGet:
		return target{op: opRoleAssignGet, h: s.getHSMAssignment(name, false), scope: scope}, true, nil
	case strings.EqualFold(tail[0], "roleAssignments") && len(tail) == 2 && m == http.MethodDelete:
		return target{op: opRoleAssignDelete, h: s.getHSMAssignment(name, true), scope: scope}, true, nil
	case strings.EqualFold(tail[0], "roleDefinitions") && len(tail) == 1 && m == http.MethodGet:
		return target{op: opRoleDefList, h: s.listHSMRoleDefinitions, scope: scope}, true, nil
	case strings.EqualFold(tail[0], "roleDefinitions") && len(tail) == 2 && m == http.MethodGet:
		return target{op: opRoleDefGet, h: s.getHSMRoleDefinition(name), scope: scope}, true, nil
	}
	return target{}, true, &kvError{Status: http.StatusNotFound, Code: "NotFound",
		Message: fmt.Sprintf("The requested operation '%s %s' does not exist in the managed HSM.", r.Method, r.URL.Path)}
}

func (s *Service) hsmAssignmentView(a *hsmAssignment) map[string]any {
	return map[string]any{
		"id":   strings.TrimSuffix(a.Scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + a.Name,
		"name": a.Name,
		"type": "Microsoft.Authorization/roleAssignments",
		"properties": map[string]any{
			"scope":            a.Scope,
			"roleDefinitionId": hsmRoleDefinitionID(a.RoleID),
			"principalId":      a.PrincipalID,
		},
	}
}

func hsmRoleDefinitionView(d *rbac.RoleDefinition) map[string]any {
	perms := make([]map[string]any, 0, len(d.Permissions))
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	for _, p := range d.Permissions {
		perms = append(perms, map[string]any{"actions": nonNil(p.Actions), "notActions": nonNil(p.NotActions),
			"dataActions": nonNil(p.DataActions), "notDataActions": nonNil(p.NotDataActions)})
	}
	return map[string]any{
		"id":   hsmRoleDefinitionID(d.ID),
		"name": d.ID,
		"type": "Microsoft.Authorization/roleDefinitions",
		"properties": map[string]any{"roleName": d.RoleName, "description": d.Description, "type": d.RoleType,
			"permissions": perms, "assignableScopes": nonNil(d.AssignableScopes)},
	}
}

// hsmRoleFromID finds a built-in Managed HSM role by its definition id
// (Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/{guid}, with or
// without a leading slash or the Microsoft.KeyVault prefix) or bare GUID.
func (s *Service) hsmRoleFromID(id string) (string, bool) {
	guid := id[strings.LastIndex(id, "/")+1:]
	prefix := strings.ToLower(strings.Trim(id[:len(id)-len(guid)], "/"))
	if prefix != "" && prefix != "providers/microsoft.authorization/roledefinitions" &&
		prefix != "microsoft.keyvault/providers/microsoft.authorization/roledefinitions" {
		return "", false
	}
	_, ok := s.hsmRoles[strings.ToLower(guid)]
	return strings.ToLower(guid), ok
}

// createHSMAssignment serves PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}.
func (s *Service) createHSMAssignment(name string) handler {
	return func(r *kvRequest) (result, error) {
		var b struct {
			Properties *struct {
				RoleDefinitionID string `json:"roleDefinitionId"`
				PrincipalID      string `json:"principalId"`
			} `json:"properties"`
		}
		if err := decodeBody(r, &b); err != nil {
			return result{}, err
		}
		if !IsGUID(name) {
			return result{}, badParameter("The role assignment name '%s' is invalid: it must be a GUID.", name)
		}
		if b.Properties == nil || b.Properties.RoleDefinitionID == "" || b.Properties.PrincipalID == "" {
			return result{}, badParameter("The role assignment's properties.roleDefinitionId and properties.principalId are required.")
		}
		roleID, ok := s.hsmRoleFromID(b.Properties.RoleDefinitionID)
		if !ok {
			return result{}, badParameter("The role definition '%s' does not exist in this managed HSM. List the role definitions with GET /providers/Microsoft.Authorization/roleDefinitions.", b.Properties.RoleDefinitionID)
		}
		if !IsGUID(b.Properties.PrincipalID) {
			return result{}, badParameter("The principal id '%s' is invalid: it must be a GUID (an object id).", b.Properties.PrincipalID)
		}
		want := hsmAssignment{Name: strings.ToLower(name), Scope: r.scope, RoleID: roleID,
			PrincipalID: strings.ToLower(b.Properties.PrincipalID), Created: s.now().UTC(), CreatedBy: r.caller.ObjectID}
		var got *hsmAssignment
		err := s.st.Update(r.Context(), func(tx store.Tx) error {
			v, err := liveVault(tx, r.vault)
			if err != nil {
				return err
			}
			all, err := listHSMAssignments(tx, v.ID)
			if err != nil {
				return err
			}
			for i := range all {
				a := &all[i]
				same := strings.EqualFold(a.Scope, want.Scope) && a.RoleID == want.RoleID && a.PrincipalID == want.PrincipalID
				switch {
				case a.Name == want.Name && same:
					got = a // a repeated request: the assignment as it is
					return nil
				case a.Name == want.Name:
					return &kvError{Status: http.StatusConflict, Code: "Conflict",
						Message: fmt.Sprintf("The role assignment '%s' already exists with another scope, role or principal; role assignments cannot be updated.", name)}
				case same:
					return &kvError{Status: http.StatusConflict, Code: "Conflict", Inner: "RoleAssignmentExists",
						Message: fmt.Sprintf("The role assignment already exists as '%s'.", a.Name)}
				}
			}
			got = &want
			return putHSMAssignment(tx, v.ID, &want)
		})
		if err != nil {
			return result{}, err
		}
		r.log.Info("managed HSM role assigned", "hsm", r.vault.Name, "scope", got.Scope, "role", got.RoleID, "principal", got.PrincipalID)
		return result{http.StatusCreated, s.hsmAssignmentView(got)}, nil
	}
}

// getHSMAssignment serves GET (and, with del, DELETE) of one role assignment.
func (s *Service) getHSMAssignment(name string, del bool) handler {
	return func(r *kvRequest) (result, error) {
		var got hsmAssignment
		notFound := &kvError{Status: http.StatusNotFound, Code: "RoleAssignmentNotFound",
			Message: fmt.Sprintf("The role assignment '%s' does not exist at scope '%s'.", name, r.scope)}
		tx := s.st.View
		if del {
			tx = s.st.Update
		}
		err := tx(r.Context(), func(tx store.Tx) error {
			err := store.GetJSON(tx, hsmAssignmentKey(r.vault.ID, name), &got)
			if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(got.Scope, r.scope)) {
				return notFound
			}
			if err != nil || !del {
				return err
			}
			return tx.Delete(hsmAssignmentKey(r.vault.ID, name))
		})
		if err != nil {
			return result{}, err
		}
		if del {
			r.log.Info("managed HSM role assignment deleted", "hsm", r.vault.Name, "assignment", got.Name)
		}
		return result{http.StatusOK, s.hsmAssignmentView(&got)}, nil
	}
}

// listHSMAssignmentsHandler serves GET {scope}/.../roleAssignments: the assignments at the scope
// and below it, or with $filter=atScope() only those at the scope, or with
// $filter=principalId eq '{id}' only one principal's.
func (s *Service) listHSMAssignmentsHandler(r *kvRequest) (result, error) {
	filter := strings.TrimSpace(r.URL.Query().Get("$filter"))
	atScope, principal := false, ""
	switch {
	case filter == "":
	case strings.EqualFold(filter, "atScope()"):
		atScope = true
	case strings.HasPrefix(strings.ToLower(filter), "principalid eq "):
		principal = strings.Trim(strings.TrimSpace(filter[len("principalId eq "):]), "'")
	default:
		return result{}, badParameter("The filter '%s' is not supported: use atScope() or principalId eq '{id}'.", filter)
	}
	var all []hsmAssignment
	if err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		all, err = listHSMAssignments(tx, r.vault.ID)
		return err
	}); err != nil {
		return result{}, err
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Scope != all[j].Scope {
			return all[i].Scope < all[j].Scope
		}
		return all[i].Name < all[j].Name
	})
	var items []map[string]any
	for i := range all {
		a := &all[i]
		switch {
		case atScope && !strings.EqualFold(a.Scope, r.scope):
		case !atScope && !scopeCovers(r.scope, a.Scope):
		case principal != "" && !strings.EqualFold(a.PrincipalID, principal):
		default:
			items = append(items, s.hsmAssignmentView(a))
		}
	}
	body, err := page(r, items)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, body}, nil
}

// listHSMRoleDefinitions serves GET {scope}/.../roleDefinitions: the built-in roles.
func (s *Service) listHSMRoleDefinitions(r *kvRequest) (result, error) {
	ids := make([]string, 0, len(s.hsmRoles))
	for id := range s.hsmRoles {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	items := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		d := s.hsmRoles[id]
		items = append(items, hsmRoleDefinitionView(&d))
	}
	body, err := page(r, items)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, body}, nil
}

// getHSMRoleDefinition serves GET {scope}/.../roleDefinitions/{name}.
func (s *Service) getHSMRoleDefinition(name string) handler {
	return func(r *kvRequest) (result, error) {
		d, ok := s.hsmRoles[strings.ToLower(name)]
		if !ok {
			return result{}, &kvError{Status: http.StatusNotFound, Code: "RoleDefinitionNotFound",
				Message: fmt.Sprintf("The role definition '%s' does not exist in this managed HSM.", name)}
		}
		return result{http.StatusOK, hsmRoleDefinitionView(&d)}, nil
	}
}
