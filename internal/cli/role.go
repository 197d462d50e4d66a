package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgflex/pgflex/internal/arm"
)

// api-versions of Microsoft.Authorization, as az's role module uses them.
const (
	APIVersionRoleAssignments = "2022-04-01"
	APIVersionRoleDefinitions = "2022-04-01"
)

const (
	roleAssignmentsPath = "/providers/Microsoft.Authorization/roleAssignments"
	roleDefinitionsPath = "/providers/Microsoft.Authorization/roleDefinitions"
)

// `pgflex role ...` is az's role module for what pgflex has: role assignments and built-in role
// definitions. az resolves principals through Microsoft Graph; pgflex's directory holds the
// administrator and managed identities only, so --assignee is resolved against those (the
// profile's client id, an identity's client or principal id) and otherwise taken as an object
// id, as az falls back to.
func newRoleCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("role", "Manage Azure role-based access control (Azure RBAC).")
	assignment := newCommandGroup("assignment", "Manage role assignments.")
	assignment.AddCommand(newRoleAssignmentCreateCommand(a), newRoleAssignmentDeleteCommand(a), newRoleAssignmentListCommand(a))
	definition := newCommandGroup("definition", "Manage role definitions.")
	definition.AddCommand(newRoleDefinitionListCommand(a))
	cmd.AddCommand(assignment, definition)
	return cmd
}

var principalTypeChoices = []string{"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}

// principalTypeValue is --assignee-principal-type: az's enum, matched case-insensitively and
// sent in the service's casing.
type principalTypeValue struct{ p *string }

func (v principalTypeValue) String() string { return *v.p }
func (v principalTypeValue) Type() string   { return "string" }
func (v principalTypeValue) Set(s string) error {
	for _, c := range principalTypeChoices {
		if strings.EqualFold(c, s) {
			*v.p = c
			return nil
		}
	}
	quoted := make([]string, len(principalTypeChoices))
	for i, c := range principalTypeChoices {
		quoted[i] = pythonRepr(c)
	}
	return &UsageError{Msg: fmt.Sprintf("argument --assignee-principal-type: invalid choice: %s (choose from %s)",
		pythonRepr(s), strings.Join(quoted, ", "))}
}

// roleScopeFlags are the flags that choose a scope, as az's role commands take them.
type roleScopeFlags struct{ group, scope string }

func (f *roleScopeFlags) add(cmd *cobra.Command) {
	// Unlike most commands, no configured default group: with one, az's role commands would
	// call every --scope "redundant".
	cmd.Flags().StringVarP(&f.group, "resource-group", "g", "", "Use it only if the role or assignment was added at the level of a resource group.")
	cmd.Flags().StringVar(&f.scope, "scope", "", "Scope at which the role assignment or definition applies to, e.g., /subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333, /subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/myGroup, or /subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/myGroup/providers/Microsoft.KeyVault/vaults/myVault.")
}

// build is az's _build_role_scope: --scope as given (checked when it is an ARM id), else the
// group, else the subscription.
func (f *roleScopeFlags) build(sub string) (string, error) {
	if f.scope != "" {
		if f.group != "" {
			return "", &UserError{Msg: fmt.Sprintf("Resource group \"%s\" is redundant because scope is supplied", f.group)}
		}
		if strings.HasPrefix(f.scope, "/subscriptions/") && !validResourceID(f.scope) {
			return "", &UserError{Msg: "Invalid scope. Please use --help to view the valid format."}
		}
		return f.scope, nil
	}
	if f.group != "" {
		return SubscriptionPath(sub) + "/resourceGroups/" + f.group, nil
	}
	return SubscriptionPath(sub), nil
}

// validResourceID is azure-mgmt-core's is_valid_resource_id: the id parses and renders back
// unchanged (case aside).
func validResourceID(s string) bool {
	id, err := arm.ParseResourceID(s)
	return err == nil && strings.EqualFold(id.String(), s)
}

var guidStringPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUIDString(s string) bool { return guidStringPattern.MatchString(s) }

func newAssignmentGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var roleDefinitionIDPattern = regexp.MustCompile(`(?i)^/subscriptions/.+/providers/Microsoft\.Authorization/roleDefinitions/`)

// resolveRoleID is az's _resolve_role_id: a definition id as given, a GUID as the subscription's
// definition of that id, else the one definition with that role name at scope.
func (a *App) resolveRoleID(ctx context.Context, c *Client, role, scope, sub string) (string, error) {
	switch {
	case roleDefinitionIDPattern.MatchString(role):
		return role, nil
	case isGUIDString(role):
		return SubscriptionPath(sub) + roleDefinitionsPath + "/" + role, nil
	}
	filter := "roleName eq '" + strings.ReplaceAll(role, "'", "''") + "'"
	items, err := c.ListAll(ctx, strings.TrimRight(scope, "/")+roleDefinitionsPath+"?$filter="+url.QueryEscape(filter), APIVersionRoleDefinitions)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, raw := range items {
		var d struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &d) == nil {
			ids = append(ids, d.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", &UserError{Msg: fmt.Sprintf("Role '%s' doesn't exist.", role)}
	case 1:
		return ids[0], nil
	}
	return "", &UserError{Msg: fmt.Sprintf("More than one role matches the given name '%s'. Please pick a value from '%s'", role, pythonRepr(stringsToAny(ids)))}
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// directory is what the CLI knows of pgflex's principals: the administrator (this profile)
// and the managed identities of the subscription, by object id with the name az would show
// (a service principal's first servicePrincipalName, its application id).
type directory struct {
	adminOID string
	names    map[string]string // object id (lower case) → display name
	byClient map[string]string // client id (lower case) → object id
}

func (a *App) loadDirectory(ctx context.Context, c *Client, sub string) (*directory, error) {
	d := &directory{names: map[string]string{}, byClient: map[string]string{}}
	p := c.Profile()
	if tok, err := c.Token(ctx, p.ARMAudience); err == nil {
		d.adminOID = strings.ToLower(tokenObjectID(tok))
	}
	if d.adminOID != "" {
		d.names[d.adminOID] = p.ClientID
		d.byClient[strings.ToLower(p.ClientID)] = d.adminOID
	}
	items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/providers/"+identityType, APIVersionIdentities)
	if err != nil {
		return nil, err
	}
	for _, raw := range items {
		var i struct {
			Properties struct {
				PrincipalID string `json:"principalId"`
				ClientID    string `json:"clientId"`
			} `json:"properties"`
		}
		if json.Unmarshal(raw, &i) == nil && i.Properties.PrincipalID != "" {
			oid := strings.ToLower(i.Properties.PrincipalID)
			d.names[oid] = i.Properties.ClientID
			d.byClient[strings.ToLower(i.Properties.ClientID)] = oid
		}
	}
	return d, nil
}

// tokenObjectID reads the oid claim of a JWT this client obtained (its own identity).
func tokenObjectID(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		OID string `json:"oid"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.OID
}

// resolve is az's _resolve_object_id with fallback_to_object_id: a client (application) id or
// object id of a known principal, else any GUID as an object id.
func (d *directory) resolve(assignee string) (string, error) {
	key := strings.ToLower(assignee)
	if oid, ok := d.byClient[key]; ok {
		return oid, nil
	}
	if _, ok := d.names[key]; ok || isGUIDString(assignee) {
		return key, nil
	}
	return "", &UserError{Msg: fmt.Sprintf("Cannot find user or service principal in graph database for '%s'.", assignee)}
}

func newRoleAssignmentCreateCommand(a *App) *cobra.Command {
	var role, assignee, objectID, principalType, description, name string
	var sf roleScopeFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a new role assignment for a user, group, or service principal.",
		Example: "  pgflex role assignment create --assignee-object-id $principalId --assignee-principal-type ServicePrincipal \\\n" +
			"      --role \"Key Vault Crypto Service Encryption User\" --scope $vaultId",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--role", &role)); err != nil {
				return err
			}
			if (assignee == "") == (objectID == "") {
				return &UserError{Msg: "usage error: --assignee STRING | --assignee-object-id GUID"}
			}
			if principalType != "" && objectID == "" {
				return &UserError{Msg: "usage error: --assignee-object-id GUID --assignee-principal-type TYPE"}
			}
			if name != "" && !isGUIDString(name) {
				return Usagef("argument --name/-n: invalid GUID value: %s", pythonRepr(name))
			}
			ctx := cmd.Context()
			sub, c, err := a.armSession(ctx)
			if err != nil {
				return err
			}
			scope, err := sf.build(sub)
			if err != nil {
				return err
			}
			oid := objectID
			if assignee != "" {
				dir, err := a.loadDirectory(ctx, c, sub)
				if err != nil {
					return err
				}
				if oid, err = dir.resolve(assignee); err != nil {
					return err
				}
				principalType = "ServicePrincipal" // every principal pgflex has is one
			} else if principalType == "" {
				a.log.warningf("cli.pgflex", "RBAC service might reject creating role assignment without --assignee-principal-type in the future. Better to specify --assignee-principal-type manually.")
			}
			roleID, err := a.resolveRoleID(ctx, c, role, scope, sub)
			if err != nil {
				return err
			}
			if name == "" {
				name = newAssignmentGUID()
			}
			props := map[string]any{"roleDefinitionId": roleID, "principalId": oid}
			if principalType != "" {
				props["principalType"] = principalType
			}
			if description != "" {
				props["description"] = description
			}
			resp, err := c.ARM(ctx, http.MethodPut, strings.TrimRight(scope, "/")+roleAssignmentsPath+"/"+name,
				APIVersionRoleAssignments, map[string]any{"properties": props})
			var ae *ARMError
			if errors.As(err, &ae) && ae.Code == "RoleAssignmentExists" {
				// az makes create idempotent: the existing assignment is the answer.
				existing, lerr := a.searchAssignments(ctx, c, sub, scope, false, oid, roleID)
				if lerr == nil && len(existing) > 0 {
					return a.Print(existing[0])
				}
			}
			if err != nil {
				return err
			}
			v, err := flattenAssignment(resp.Body)
			if err != nil {
				return err
			}
			return a.Print(v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "Role name or id.")
	f.StringVar(&assignee, "assignee", "", "Represent a user or service principal. Supported format: object id, or the client (application) id of a service principal or managed identity.")
	f.StringVar(&objectID, "assignee-object-id", "", "Use this parameter instead of '--assignee' to bypass Graph API invocation in case of insufficient privileges. This parameter only works with object ids for users, groups, service principals, and managed identities.")
	f.Var(principalTypeValue{&principalType}, "assignee-principal-type", "Use with --assignee-object-id to avoid errors caused by propagation latency in Microsoft Graph. Allowed values: "+strings.Join(principalTypeChoices, ", ")+".")
	f.StringVar(&description, "description", "", "Description of role assignment.")
	f.StringVarP(&name, "name", "n", "", "A GUID for the role assignment. It must be unique and different for each role assignment. If omitted, a new GUID is generated.")
	sf.add(cmd)
	return cmd
}

// searchAssignments is az's _search_role_assignments: at a scope, the assignments there (and
// with inherited, those above); without one (--all), every assignment of the subscription;
// narrowed to a principal and a role definition id when given.
func (a *App) searchAssignments(ctx context.Context, c *Client, sub, scope string, inherited bool, oid, roleID string) ([]map[string]any, error) {
	var path string
	switch {
	case scope != "":
		path = strings.TrimRight(scope, "/") + roleAssignmentsPath + "?$filter=" + url.QueryEscape("atScope()")
	case oid != "":
		path = SubscriptionPath(sub) + roleAssignmentsPath + "?$filter=" + url.QueryEscape("principalId eq '"+oid+"'")
	default:
		path = SubscriptionPath(sub) + roleAssignmentsPath
	}
	items, err := c.ListAll(ctx, path, APIVersionRoleAssignments)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, raw := range items {
		v, err := flattenAssignment(raw)
		if err != nil {
			return nil, err
		}
		s, _ := v["scope"].(string)
		if scope != "" && !strings.EqualFold(s, scope) && !(inherited && scopeCovers(s, scope)) {
			continue
		}
		if roleID != "" && !strings.EqualFold(fmt.Sprint(v["roleDefinitionId"]), roleID) {
			continue
		}
		if oid != "" && !strings.EqualFold(fmt.Sprint(v["principalId"]), oid) {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// scopeCovers reports whether an assignment at scope applies at target (target is the scope
// or below it).
func scopeCovers(scope, target string) bool {
	s, t := strings.ToLower(strings.TrimRight(scope, "/")), strings.ToLower(strings.TrimRight(target, "/"))
	return s == t || strings.HasPrefix(t, s+"/")
}

func newRoleAssignmentListCommand(a *App) *cobra.Command {
	var assignee, role string
	var all, inherited bool
	var sf roleScopeFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role assignments.",
		Long: "By default, only assignments scoped to the subscription are displayed. " +
			"To view assignments scoped by resource or group, use --all.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			sub, c, err := a.armSession(ctx)
			if err != nil {
				return err
			}
			scope := ""
			if all {
				if sf.group != "" || sf.scope != "" {
					return &UserError{Msg: "group or scope are not required when --all is used"}
				}
			} else if scope, err = sf.build(sub); err != nil {
				return err
			}
			dir, err := a.loadDirectory(ctx, c, sub)
			if err != nil {
				return err
			}
			oid := ""
			if assignee != "" {
				if oid, err = dir.resolve(assignee); err != nil {
					return err
				}
			}
			roleID := ""
			if role != "" {
				if roleID, err = a.resolveRoleID(ctx, c, role, firstNonEmptyString(scope, SubscriptionPath(sub)), sub); err != nil {
					return err
				}
			}
			found, err := a.searchAssignments(ctx, c, sub, scope, inherited, oid, roleID)
			if err != nil {
				return err
			}
			names, err := a.roleNames(ctx, c, firstNonEmptyString(scope, SubscriptionPath(sub)))
			if err != nil {
				return err
			}
			for _, v := range found {
				v["roleDefinitionName"] = names[strings.ToLower(fmt.Sprint(v["roleDefinitionId"]))]
				v["principalName"] = dir.names[strings.ToLower(fmt.Sprint(v["principalId"]))]
			}
			return a.Print(found, WithTableTransformer(assignmentListTable))
		},
	}
	f := cmd.Flags()
	f.StringVar(&assignee, "assignee", "", "Represent a user or service principal. Supported format: object id, or the client (application) id of a service principal or managed identity.")
	f.StringVar(&role, "role", "", "Role name or id.")
	f.BoolVar(&all, "all", false, "Show all assignments under the current subscription.")
	f.BoolVar(&inherited, "include-inherited", false, "Include assignments applied on parent scopes.")
	sf.add(cmd)
	return cmd
}

// roleNames maps role definition ids (lower case) to role names, as az fills
// roleDefinitionName; an unknown definition gets null.
func (a *App) roleNames(ctx context.Context, c *Client, scope string) (map[string]any, error) {
	items, err := c.ListAll(ctx, strings.TrimRight(scope, "/")+roleDefinitionsPath, APIVersionRoleDefinitions)
	if err != nil {
		return nil, err
	}
	names := map[string]any{}
	for _, raw := range items {
		var d struct {
			ID         string `json:"id"`
			Properties struct {
				RoleName string `json:"roleName"`
			} `json:"properties"`
		}
		if json.Unmarshal(raw, &d) == nil {
			names[strings.ToLower(d.ID)] = d.Properties.RoleName
		}
	}
	return names, nil
}

// assignmentListTable is az's transform_assignment_list.
func assignmentListTable(v any) any {
	list, _ := v.([]any)
	rows := []any{}
	for _, r := range list {
		rows = append(rows, newRow("Principal", field(r, "principalName"), "Role", field(r, "roleDefinitionName"), "Scope", field(r, "scope")))
	}
	return rows
}

func newRoleAssignmentDeleteCommand(a *App) *cobra.Command {
	var ids []string
	var assignee, role string
	var inherited, yes bool
	var sf roleScopeFlags
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete role assignments.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			if len(ids) > 0 {
				if assignee != "" || role != "" || sf.group != "" || sf.scope != "" || inherited {
					return &UserError{Msg: "When assignment ids are used, other parameter values are not required"}
				}
				for _, id := range ids {
					if _, err := c.ARM(ctx, http.MethodDelete, id, APIVersionRoleAssignments, nil); err != nil {
						return err
					}
				}
				return nil
			}
			if assignee == "" && role == "" && sf.group == "" && sf.scope == "" {
				a.log.warningf("cli.pgflex", "This will delete all role assignments under the subscription.")
				if err := a.Confirm(yes); err != nil {
					return err
				}
			}
			sub, err := a.SubscriptionID(ctx)
			if err != nil {
				return err
			}
			scope, err := sf.build(sub)
			if err != nil {
				return err
			}
			oid := ""
			if assignee != "" {
				dir, err := a.loadDirectory(ctx, c, sub)
				if err != nil {
					return err
				}
				if oid, err = dir.resolve(assignee); err != nil {
					return err
				}
			}
			roleID := ""
			if role != "" {
				if roleID, err = a.resolveRoleID(ctx, c, role, scope, sub); err != nil {
					return err
				}
			}
			found, err := a.searchAssignments(ctx, c, sub, scope, inherited, oid, roleID)
			if err != nil {
				return err
			}
			if len(found) == 0 {
				return &UserError{Msg: "No matched assignments were found to delete"}
			}
			for _, v := range found {
				if _, err := c.ARM(ctx, http.MethodDelete, fmt.Sprint(v["id"]), APIVersionRoleAssignments, nil); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ids, "ids", nil, "Space-separated role assignment ids.")
	markMultiValue(cmd, "ids", "+")
	f.StringVar(&assignee, "assignee", "", "Represent a user or service principal. Supported format: object id, or the client (application) id of a service principal or managed identity.")
	f.StringVar(&role, "role", "", "Role name or id.")
	f.BoolVar(&inherited, "include-inherited", false, "Include assignments applied on parent scopes.")
	AddYesFlag(cmd, &yes)
	sf.add(cmd)
	return cmd
}

// flattenAssignment is a role assignment as az prints it: properties lifted to the top level,
// times as Python prints them, resourceGroup when the scope is in one.
func flattenAssignment(raw []byte) (map[string]any, error) {
	v, err := flattenARMResource(raw)
	if err != nil {
		return nil, err
	}
	delete(v, "systemData")
	delete(v, "tags")
	for _, k := range []string{"createdOn", "updatedOn"} {
		if s, ok := v[k].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				v[k] = pythonISOTime(t)
			}
		}
	}
	return v, nil
}

// pythonISOTime is datetime.isoformat() of an aware UTC time: microseconds unless zero.
func pythonISOTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

func firstNonEmptyString(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func newRoleDefinitionListCommand(a *App) *cobra.Command {
	var name string
	var customOnly bool
	var sf roleScopeFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role definitions.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			sub, c, err := a.armSession(ctx)
			if err != nil {
				return err
			}
			scope, err := sf.build(sub)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, strings.TrimRight(scope, "/")+roleDefinitionsPath, APIVersionRoleDefinitions)
			if err != nil {
				return err
			}
			out := []map[string]any{}
			for _, raw := range items {
				v, err := flattenDefinition(raw)
				if err != nil {
					return err
				}
				// az matches --name exactly, against the GUID or the role name.
				if name != "" && v["name"] != name && v["roleName"] != name {
					continue
				}
				if customOnly && v["roleType"] != "CustomRole" {
					continue
				}
				out = append(out, v)
			}
			return a.Print(out, WithTableTransformer(definitionListTable))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&name, "name", "n", "", "A role's name (as the roleName or the name in the output of 'pgflex role definition list').")
	f.BoolVar(&customOnly, "custom-role-only", false, "Custom roles only (vs. build-in ones).")
	sf.add(cmd)
	return cmd
}

// flattenDefinition is a role definition as az prints it: properties lifted, the role's type
// as roleType (type stays the resource type).
func flattenDefinition(raw []byte) (map[string]any, error) {
	var r struct {
		ID         string         `json:"id"`
		Name       string         `json:"name"`
		Type       string         `json:"type"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &UserError{Msg: "The service answered with a body that is not a role definition.", Err: err}
	}
	v := map[string]any{"createdBy": nil, "createdOn": nil, "updatedBy": nil, "updatedOn": nil}
	for k, x := range r.Properties {
		v[k] = x
	}
	v["roleType"] = r.Properties["type"]
	v["id"], v["name"], v["type"] = r.ID, r.Name, r.Type
	return v, nil
}

// definitionListTable is az's transform_definition_list.
func definitionListTable(v any) any {
	list, _ := v.([]any)
	rows := []any{}
	for _, r := range list {
		rows = append(rows, newRow("Name", field(r, "roleName"), "Type", field(r, "type"), "Description", field(r, "description")))
	}
	return rows
}
