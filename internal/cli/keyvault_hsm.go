package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// Managed HSM forms of `pgflex keyvault ...`, as az spells them: `keyvault create|show|delete
// --hsm-name`, `keyvault key ... --hsm-name`, and the HSM's local RBAC under `keyvault role`.
// The HSM resource lives on ARM (Microsoft.KeyVault/managedHSMs); keys and role assignments on
// the HSM's own host, https://{hsm}.{managedHsmDnsSuffix}:{port}.

// APIVersionManagedHSM is the Microsoft.KeyVault/managedHSMs api-version the HSM commands use.
const APIVersionManagedHSM = "2023-07-01"

const hsmType = "Microsoft.KeyVault/managedHSMs"

// hsmKeyContext marks a keys REST call that goes to a Managed HSM rather than a vault.
type hsmKeyContext struct{}

// onManagedHSM reports whether keyCall should address a Managed HSM host.
func onManagedHSM(ctx context.Context) bool { v, _ := ctx.Value(hsmKeyContext{}).(bool); return v }

// addManagedHSMCommands adds the --hsm-name forms to the keyvault group built by
// newKeyVaultCommand, and the `keyvault role` group.
func addManagedHSMCommands(a *App, kv *cobra.Command) {
	for _, sub := range kv.Commands() {
		switch sub.Name() {
		case "create":
			addHSMCreate(a, sub)
		case "show":
			addHSMShowDelete(a, sub, false)
		case "delete":
			addHSMShowDelete(a, sub, true)
		case "key":
			for _, kc := range sub.Commands() {
				switch {
				case kc.Name() == "audit":
					addHSMAudit(a, kc)
				case kc.Flags().Lookup("vault-name") != nil:
					addHSMKeyTarget(kc)
				}
			}
		}
	}
	kv.AddCommand(newKeyVaultRoleCommand(a))
}

// exclusive is az's message for --hsm-name given with the vault's name flag.
func exclusive(other string) error {
	return Usagef("--hsm-name and %s are mutually exclusive, please specify just one of them", other)
}

// wrapRunE runs hsm instead of the command's own RunE when --hsm-name is given.
func wrapRunE(cmd *cobra.Command, hsmName *string, hsm func(cmd *cobra.Command) error) {
	orig := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if *hsmName == "" {
			return orig(c, args)
		}
		if err := noArgs(c, args); err != nil {
			return err
		}
		return hsm(c)
	}
}

func addHSMCreate(a *App, cmd *cobra.Command) {
	var hsmName string
	var admins []string
	f := cmd.Flags()
	f.StringVar(&hsmName, "hsm-name", "", "Name of the HSM. (--hsm-name and --name/-n are mutually exclusive, please specify just one of them)")
	f.StringArrayVar(&admins, "administrators", nil, "[HSM Only] Administrator role for data plane operations for Managed HSM. It accepts a space separated list of OIDs that will be assigned.")
	markMultiValue(cmd, "administrators", "+")
	cmd.Example += "\n  pgflex keyvault create --hsm-name MyHSM -g MyResourceGroup -l eastus --administrators $(pgflex ad signed-in-user show --query id -o tsv) --retention-days 7"
	wrapRunE(cmd, &hsmName, func(cmd *cobra.Command) error {
		f := cmd.Flags()
		if f.Changed("name") {
			return exclusive("--name/-n")
		}
		group, _ := f.GetString("resource-group")
		location, _ := f.GetString("location")
		loc := LocationArg(&location)
		loc.Optional = true
		if err := a.ResolveArgs(ResourceGroupArg(&group), loc); err != nil {
			return err
		}
		var missing []string
		if len(admins) == 0 {
			missing = append(missing, "--administrators")
		}
		if !f.Changed("retention-days") {
			missing = append(missing, "--retention-days")
		}
		if len(missing) > 0 {
			return Usagef("the following arguments are required: %s", strings.Join(missing, ", "))
		}
		if f.Changed("sku") || f.Changed("enable-rbac-authorization") || f.Changed("no-self-perms") {
			return Usagef("--sku, --enable-rbac-authorization and --no-self-perms apply to vaults only; a Managed HSM is Standard_B1 and authorizes by its local RBAC")
		}
		retention, _ := f.GetInt("retention-days")
		ctx := cmd.Context()
		if err := a.LocationFromGroup(ctx, &location, group); err != nil {
			return err
		}
		pp := boolArg{name: "enable-purge-protection"}
		pp.values, _ = f.GetStringArray("enable-purge-protection")
		purge, purgeGiven, err := pp.get()
		if err != nil {
			return err
		}
		c, err := a.ARMClient(ctx)
		if err != nil {
			return err
		}
		sub, err := a.SubscriptionID(ctx)
		if err != nil {
			return err
		}
		props := map[string]any{"tenantId": c.Profile().TenantID, "initialAdminObjectIds": admins,
			"enableSoftDelete": true, "softDeleteRetentionInDays": retention}
		if purgeGiven {
			props["enablePurgeProtection"] = purge
		}
		if pna, _ := f.GetString("public-network-access"); pna != "" {
			props["publicNetworkAccess"] = pna
		}
		body := map[string]any{"location": location, "sku": map[string]any{"family": "B", "name": "Standard_B1"}, "properties": props}
		tags, _ := f.GetStringArray("tags")
		if t := ParseTags(tags); t != nil {
			body["tags"] = t
		}
		return a.PutResource(ctx, http.MethodPut, ResourcePath(sub, group, hsmType, hsmName), APIVersionManagedHSM, body, false)
	})
}

// findHSM reads a Managed HSM by name: in the group when one is given, else wherever it is in
// the subscription.
func (a *App) findHSM(ctx context.Context, name, group string) (path string, raw []byte, err error) {
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return "", nil, err
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return "", nil, err
	}
	if group != "" {
		path = ResourcePath(sub, group, hsmType, name)
		resp, err := c.ARM(ctx, http.MethodGet, path, APIVersionManagedHSM, nil)
		if err != nil {
			return "", nil, err
		}
		return path, resp.Body, nil
	}
	items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/providers/"+hsmType, APIVersionManagedHSM)
	if err != nil {
		return "", nil, err
	}
	for _, raw := range items {
		if strings.EqualFold(jsonString(raw, "name"), name) {
			return jsonString(raw, "id"), raw, nil
		}
	}
	return "", nil, &ARMError{StatusCode: http.StatusNotFound, Message: fmt.Sprintf("The managed HSM '%s' was not found within subscription.", name)}
}

func addHSMShowDelete(a *App, cmd *cobra.Command, del bool) {
	var hsmName string
	cmd.Flags().StringVar(&hsmName, "hsm-name", "", "Name of the HSM. (--hsm-name and --name/-n are mutually exclusive, please specify just one of them)")
	wrapRunE(cmd, &hsmName, func(cmd *cobra.Command) error {
		if cmd.Flags().Changed("name") {
			return exclusive("--name/-n")
		}
		group, _ := cmd.Flags().GetString("resource-group")
		ctx := cmd.Context()
		path, raw, err := a.findHSM(ctx, hsmName, group)
		if err != nil {
			return err
		}
		if !del {
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				return &UserError{Msg: "The service answered with a body that is not a managed HSM.", Err: err}
			}
			v["resourceGroup"] = resourceGroupFromID(path)
			return a.Print(v)
		}
		return a.DeleteResource(ctx, path, APIVersionManagedHSM, false)
	})
}

// addHSMKeyTarget lets a key command address a Managed HSM: --hsm-name in place of
// --vault-name sends its keys REST call to the HSM's host.
func addHSMKeyTarget(cmd *cobra.Command) {
	var hsmName string
	cmd.Flags().StringVar(&hsmName, "hsm-name", "", "Name of the HSM. (--hsm-name and --vault-name are mutually exclusive, please specify just one of them)")
	orig := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if hsmName != "" {
			if c.Flags().Changed("vault-name") {
				return exclusive("--vault-name")
			}
			if err := c.Flags().Set("vault-name", hsmName); err != nil {
				return err
			}
			c.SetContext(context.WithValue(c.Context(), hsmKeyContext{}, true))
		}
		return orig(c, args)
	}
}

// addHSMAudit gives `keyvault key audit` (a pgflex extension) the HSM's audit trail.
func addHSMAudit(a *App, cmd *cobra.Command) {
	var hsmName string
	cmd.Flags().StringVar(&hsmName, "hsm-name", "", "Name of the HSM. (--hsm-name and --vault-name are mutually exclusive, please specify just one of them)")
	wrapRunE(cmd, &hsmName, func(cmd *cobra.Command) error {
		if cmd.Flags().Changed("vault-name") {
			return exclusive("--vault-name")
		}
		group, _ := cmd.Flags().GetString("resource-group")
		key, _ := cmd.Flags().GetString("name")
		ctx := cmd.Context()
		path, _, err := a.findHSM(ctx, hsmName, group)
		if err != nil {
			return err
		}
		path += "/auditEvents"
		if key != "" {
			path += "?keyName=" + url.QueryEscape(key)
		}
		return a.ListResources(ctx, path, APIVersionManagedHSM)
	})
}

// ---- keyvault role: a Managed HSM's local RBAC ----

func newKeyVaultRoleCommand(a *App) *cobra.Command {
	role := newCommandGroup("role", "Manage user roles for access control of a Managed HSM.")
	assignment := newCommandGroup("assignment", "Manage role assignments of a Managed HSM.")
	assignment.AddCommand(newHSMRoleAssignmentCreate(a), newHSMRoleAssignmentList(a), newHSMRoleAssignmentDelete(a))
	definition := newCommandGroup("definition", "Manage role definitions of a Managed HSM.")
	definition.AddCommand(newHSMRoleDefinitionList(a))
	role.AddCommand(assignment, definition)
	return role
}

// hsmCall sends one request to a Managed HSM's own host.
func (a *App) hsmCall(ctx context.Context, method, hsm, path string, body any) (*Response, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	p := c.Profile()
	if p.ManagedHSMDNSSuffix == "" {
		return nil, &UserError{Msg: "The profile names no Managed HSM DNS suffix."}
	}
	endpoint, err := url.Parse(p.Endpoint)
	if err != nil {
		return nil, &UserError{Msg: "The profile's endpoint is not a URL.", Err: err}
	}
	host := strings.ToLower(hsm) + "." + p.ManagedHSMDNSSuffix
	if port := endpoint.Port(); port != "" && port != "443" {
		host += ":" + port
	}
	return c.DataPlane(ctx, method, "https://"+host+path, APIVersionKeyVaultData, body)
}

// hsmRoleDefinitions lists the HSM's role definitions as az prints them.
func (a *App) hsmRoleDefinitions(ctx context.Context, hsm string) ([]map[string]any, error) {
	resp, err := a.hsmCall(ctx, http.MethodGet, hsm, "///providers/Microsoft.Authorization/roleDefinitions", nil)
	if err != nil {
		return nil, err
	}
	var page struct {
		Value []struct {
			ID         string `json:"id"`
			Name       string `json:"name"`
			Type       string `json:"type"`
			Properties struct {
				RoleName         string            `json:"roleName"`
				Description      string            `json:"description"`
				Type             string            `json:"type"`
				Permissions      []json.RawMessage `json:"permissions"`
				AssignableScopes []string          `json:"assignableScopes"`
			} `json:"properties"`
		} `json:"value"`
	}
	if err := json.Unmarshal(resp.Body, &page); err != nil {
		return nil, &UserError{Msg: "The managed HSM answered with a body that is not a list of role definitions.", Err: err}
	}
	out := make([]map[string]any, 0, len(page.Value))
	for _, d := range page.Value {
		out = append(out, map[string]any{"assignableScopes": d.Properties.AssignableScopes, "description": d.Properties.Description,
			"id": d.ID, "name": d.Name, "permissions": d.Properties.Permissions, "roleName": d.Properties.RoleName,
			"roleType": d.Properties.Type, "type": d.Type})
	}
	return out, nil
}

// resolveHSMRole finds a role definition by name or id (GUID or full definition id).
func (a *App) resolveHSMRole(ctx context.Context, hsm, role string) (id, name string, err error) {
	defs, err := a.hsmRoleDefinitions(ctx, hsm)
	if err != nil {
		return "", "", err
	}
	for _, d := range defs {
		if strings.EqualFold(d["roleName"].(string), role) || strings.EqualFold(d["name"].(string), role) ||
			strings.EqualFold(strings.Trim(d["id"].(string), "/"), strings.Trim(role, "/")) {
			return d["id"].(string), d["roleName"].(string), nil
		}
	}
	return "", "", &UserError{Msg: fmt.Sprintf("Role '%s' doesn't exist.", role)}
}

// azHSMAssignment is a role assignment as az prints it.
func azHSMAssignment(raw map[string]any, roleNames map[string]string) map[string]any {
	p, _ := raw["properties"].(map[string]any)
	def, _ := p["roleDefinitionId"].(string)
	var roleName any
	if n, ok := roleNames[strings.ToLower(def)]; ok {
		roleName = n
	}
	return map[string]any{"id": raw["id"], "name": raw["name"], "principalId": p["principalId"], "principalName": nil,
		"roleDefinitionId": def, "roleName": roleName, "scope": p["scope"], "type": raw["type"]}
}

func (a *App) hsmRoleNames(ctx context.Context, hsm string) (map[string]string, error) {
	defs, err := a.hsmRoleDefinitions(ctx, hsm)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, d := range defs {
		names[strings.ToLower(d["id"].(string))] = d["roleName"].(string)
	}
	return names, nil
}

// assigneeObjectID takes --assignee or --assignee-object-id: an object id. pgflex's directory
// has no users or display names to look up, so a name cannot be resolved.
func assigneeObjectID(assignee, objectID string) (string, error) {
	switch {
	case assignee != "" && objectID != "":
		return "", Usagef("--assignee and --assignee-object-id are mutually exclusive, please specify just one of them")
	case objectID != "":
		assignee = objectID
	case assignee == "":
		return "", Usagef("the following arguments are required: --assignee or --assignee-object-id")
	}
	if !isGUIDString(assignee) {
		return "", &UserError{Msg: fmt.Sprintf("Cannot find user or service principal in graph database for '%s'. Use the principal's object id (for a managed identity, its principalId).", assignee)}
	}
	return strings.ToLower(assignee), nil
}

// hsmScopePath is a scope as a request path prefix: "/" + scope, as Azure's clients join it.
func hsmScopePath(scope string) string {
	if scope == "" {
		scope = "/"
	}
	return "/" + scope
}

func newHSMRoleAssignmentCreate(a *App) *cobra.Command {
	var hsm, role, scope, assignee, assigneeOID, name string
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Create a new role assignment for a user, group, or service principal.",
		Example: `  pgflex keyvault role assignment create --hsm-name MyHSM --role "Managed HSM Crypto Service Encryption User" --assignee $principalId --scope /keys/MyKey`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--hsm-name", &hsm), RequiredArg("--role", &role), RequiredArg("--scope", &scope)); err != nil {
				return err
			}
			oid, err := assigneeObjectID(assignee, assigneeOID)
			if err != nil {
				return err
			}
			if name == "" {
				name = newAssignmentGUID()
			}
			ctx := cmd.Context()
			defID, roleName, err := a.resolveHSMRole(ctx, hsm, role)
			if err != nil {
				return err
			}
			body := map[string]any{"properties": map[string]any{"roleDefinitionId": defID, "principalId": oid}}
			resp, err := a.hsmCall(ctx, http.MethodPut, hsm, hsmScopePath(scope)+"/providers/Microsoft.Authorization/roleAssignments/"+url.PathEscape(name), body)
			if err != nil {
				return err
			}
			var raw map[string]any
			if err := json.Unmarshal(resp.Body, &raw); err != nil {
				return &UserError{Msg: "The managed HSM answered with a body that is not a role assignment.", Err: err}
			}
			return a.Print(azHSMAssignment(raw, map[string]string{strings.ToLower(defID): roleName}))
		},
	}
	f := cmd.Flags()
	f.StringVar(&hsm, "hsm-name", "", "Name of the HSM.")
	f.StringVar(&role, "role", "", "Role name or id.")
	f.StringVar(&scope, "scope", "", "Scope at which the role assignment or definition applies to, e.g., '/' or '/keys' or '/keys/{keyname}'.")
	f.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal: its object id.")
	f.StringVar(&assigneeOID, "assignee-object-id", "", "Use this parameter instead of '--assignee' to bypass graph permission issues.")
	f.StringVar(&name, "name", "", "Name of the role assignment (a GUID); a new one by default.")
	return cmd
}

// hsmAssignments lists the assignments at and below scope, as az prints them.
func (a *App) hsmAssignments(ctx context.Context, hsm, scope string) ([]map[string]any, error) {
	resp, err := a.hsmCall(ctx, http.MethodGet, hsm, hsmScopePath(scope)+"/providers/Microsoft.Authorization/roleAssignments", nil)
	if err != nil {
		return nil, err
	}
	var page struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(resp.Body, &page); err != nil {
		return nil, &UserError{Msg: "The managed HSM answered with a body that is not a list of role assignments.", Err: err}
	}
	names, err := a.hsmRoleNames(ctx, hsm)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(page.Value))
	for _, raw := range page.Value {
		out = append(out, azHSMAssignment(raw, names))
	}
	return out, nil
}

// matches keeps the assignments of an assignee and role (either filter may be empty).
func matchesAssignment(asg map[string]any, oid, role string) bool {
	if oid != "" && !strings.EqualFold(fmt.Sprint(asg["principalId"]), oid) {
		return false
	}
	if role != "" && !strings.EqualFold(fmt.Sprint(asg["roleName"]), role) &&
		!strings.HasSuffix(strings.ToLower(fmt.Sprint(asg["roleDefinitionId"])), "/"+strings.ToLower(role)) {
		return false
	}
	return true
}

func newHSMRoleAssignmentList(a *App) *cobra.Command {
	var hsm, scope, assignee, role string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role assignments.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--hsm-name", &hsm)); err != nil {
				return err
			}
			all, err := a.hsmAssignments(cmd.Context(), hsm, scope)
			if err != nil {
				return err
			}
			out := []map[string]any{}
			for _, asg := range all {
				if matchesAssignment(asg, assignee, role) {
					out = append(out, asg)
				}
			}
			return a.Print(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&hsm, "hsm-name", "", "Name of the HSM.")
	f.StringVar(&scope, "scope", "/", "Scope at which the role assignment or definition applies to, e.g., '/' or '/keys' or '/keys/{keyname}'.")
	f.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal: its object id.")
	f.StringVar(&role, "role", "", "Role name or id.")
	return cmd
}

func newHSMRoleAssignmentDelete(a *App) *cobra.Command {
	var hsm, scope, assignee, role, name string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a role assignment.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--hsm-name", &hsm)); err != nil {
				return err
			}
			ctx := cmd.Context()
			all, err := a.hsmAssignments(ctx, hsm, scope)
			if err != nil {
				return err
			}
			if name == "" && assignee == "" && role == "" {
				return Usagef("Please specify at least one of --name, --assignee or --role")
			}
			deleted := 0
			for _, asg := range all {
				if name != "" && !strings.EqualFold(fmt.Sprint(asg["name"]), name) || !matchesAssignment(asg, assignee, role) {
					continue
				}
				if _, err := a.hsmCall(ctx, http.MethodDelete, hsm, hsmScopePath(fmt.Sprint(asg["scope"]))+
					"/providers/Microsoft.Authorization/roleAssignments/"+url.PathEscape(fmt.Sprint(asg["name"])), nil); err != nil {
					return err
				}
				deleted++
			}
			if deleted == 0 {
				return &UserError{Msg: "No matched assignments were found to delete"}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&hsm, "hsm-name", "", "Name of the HSM.")
	f.StringVar(&scope, "scope", "/", "Scope at which the role assignment or definition applies to, e.g., '/' or '/keys' or '/keys/{keyname}'.")
	f.StringVar(&assignee, "assignee", "", "Represent a user, group, or service principal: its object id.")
	f.StringVar(&role, "role", "", "Role name or id.")
	f.StringVar(&name, "name", "", "Name of the role assignment.")
	return cmd
}

func newHSMRoleDefinitionList(a *App) *cobra.Command {
	var hsm string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role definitions.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--hsm-name", &hsm)); err != nil {
				return err
			}
			defs, err := a.hsmRoleDefinitions(cmd.Context(), hsm)
			if err != nil {
				return err
			}
			return a.Print(defs)
		},
	}
	cmd.Flags().StringVar(&hsm, "hsm-name", "", "Name of the HSM.")
	return cmd
}
