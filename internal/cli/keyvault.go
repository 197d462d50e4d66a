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

// APIVersionKeyVault is the Microsoft.KeyVault api-version the vault commands use.
const APIVersionKeyVault = "2023-07-01"

const vaultType = "Microsoft.KeyVault/vaults"

// creatorKeyPermissions is what `pgflex keyvault create` grants the signed-in principal, as
// `az keyvault create` adds an access policy for its user: every key permission.
var creatorKeyPermissions = []string{"backup", "create", "decrypt", "delete", "encrypt", "get", "getrotationpolicy",
	"import", "list", "purge", "recover", "release", "restore", "rotate", "setrotationpolicy", "sign", "unwrapKey",
	"update", "verify", "wrapKey"}

// `pgflex keyvault ...` is `az keyvault ...`: vaults on ARM, and (keyvault_key.go) keys on the
// vault's own host. Vaults print as az prints them: the ARM resource with resourceGroup added,
// properties kept nested.
func newKeyVaultCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("keyvault", "Manage KeyVault keys and vaults.")
	cmd.AddCommand(newKeyVaultCreateCommand(a), newKeyVaultShowCommand(a), newKeyVaultListCommand(a),
		newKeyVaultUpdateCommand(a), newKeyVaultDeleteCommand(a), newKeyVaultRecoverCommand(a),
		newKeyVaultPurgeCommand(a), newKeyVaultListDeletedCommand(a), newKeyVaultSetPolicyCommand(a),
		newKeyVaultDeletePolicyCommand(a), newKeyVaultKeyCommand(a))
	addManagedHSMCommands(a, cmd) // keyvault_hsm.go: the --hsm-name forms and `keyvault role`
	return cmd
}

// boolArg is a three-state flag as az's get_three_state_flag: absent, or true/false/yes/no, or
// given alone (true). It is a multi-value flag so that "--flag true" and "--flag" both parse.
type boolArg struct {
	name   string
	values []string
}

func addBoolArg(cmd *cobra.Command, b *boolArg, name, usage string) {
	b.name = name
	cmd.Flags().StringArrayVar(&b.values, name, nil, usage+" Allowed values: false, true.")
	markMultiValue(cmd, name, "*")
}

// get returns the flag's value and whether it was given.
func (b *boolArg) get() (value, given bool, err error) {
	if len(b.values) == 0 {
		return false, false, nil
	}
	switch strings.ToLower(b.values[len(b.values)-1]) {
	case "", "true", "yes", "1", "on":
		return true, true, nil
	case "false", "no", "0", "off":
		return false, true, nil
	}
	return false, false, Usagef("argument --%s: invalid choice: '%s' (choose from 'false', 'true')", b.name, b.values[len(b.values)-1])
}

// vaultRef is a vault located on ARM.
type vaultRef struct {
	sub, group, name string
	raw              []byte
}

func (v *vaultRef) path() string { return ResourcePath(v.sub, v.group, vaultType, v.name) }

// findVault reads a vault by name: in the group when one is given, else wherever it is in the
// subscription, as az keyvault show -n does.
func (a *App) findVault(ctx context.Context, name, group string) (*vaultRef, error) {
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	if group != "" {
		resp, err := c.ARM(ctx, http.MethodGet, ResourcePath(sub, group, vaultType, name), APIVersionKeyVault, nil)
		if err != nil {
			return nil, err
		}
		return &vaultRef{sub: sub, group: resourceGroupFromID(jsonString(resp.Body, "id")), name: jsonString(resp.Body, "name"), raw: resp.Body}, nil
	}
	items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/providers/"+vaultType, APIVersionKeyVault)
	if err != nil {
		return nil, err
	}
	for _, raw := range items {
		if strings.EqualFold(jsonString(raw, "name"), name) {
			return &vaultRef{sub: sub, group: resourceGroupFromID(jsonString(raw, "id")), name: jsonString(raw, "name"), raw: raw}, nil
		}
	}
	return nil, &ARMError{StatusCode: http.StatusNotFound, Message: fmt.Sprintf("The Vault '%s' not found within subscription.", name)}
}

func jsonString(raw []byte, field string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(m[field], &s)
	return s
}

// printVault prints a vault as az does: the resource with resourceGroup added.
func (a *App) printVault(raw []byte) error {
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		return &UserError{Msg: "The service answered with a body that is not a vault.", Err: err}
	}
	if id, ok := v["id"].(string); ok {
		v["resourceGroup"] = resourceGroupFromID(id)
	}
	if v["tags"] == nil {
		v["tags"] = map[string]any{}
	}
	return a.Print(v)
}

func addVaultNameFlags(cmd *cobra.Command, name, group *string) {
	cmd.Flags().StringVarP(name, "name", "n", "", "Name of the Vault.")
	cmd.Flags().StringVarP(group, "resource-group", "g", "", "Proceed only if Key Vault belongs to the specified resource group.")
}

func newKeyVaultCreateCommand(a *App) *cobra.Command {
	var name, group, location, sku, pna string
	var retention int
	var tags []string
	var purge, rbac, noSelfPerms boolArg
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a Vault.",
		Example: "  pgflex keyvault create -g MyResourceGroup -n MyVault -l eastus --enable-purge-protection true\n" +
			"  pgflex keyvault create -g MyResourceGroup -n MyVault --enable-rbac-authorization",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc := LocationArg(&location)
			loc.Optional = true
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name), ResourceGroupArg(&group), loc); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := a.LocationFromGroup(ctx, &location, group); err != nil {
				return err
			}
			pp, ppGiven, err := purge.get()
			if err != nil {
				return err
			}
			rb, _, err := rbac.get()
			if err != nil {
				return err
			}
			noSelf, _, err := noSelfPerms.get()
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
			tenant := c.Profile().TenantID
			policies := []any{}
			if !rb && !noSelf {
				tok, err := c.Token(ctx, c.Profile().ARMAudience)
				if err != nil {
					return err
				}
				oid := tokenObjectID(tok)
				if oid == "" {
					return &UserError{Msg: "Cannot tell the signed-in principal's object id from its token; use --no-self-perms and 'pgflex keyvault set-policy'."}
				}
				policies = append(policies, map[string]any{"tenantId": tenant, "objectId": oid,
					"permissions": map[string]any{"keys": creatorKeyPermissions, "secrets": []string{}, "certificates": []string{}, "storage": []string{}}})
			}
			props := map[string]any{"tenantId": tenant, "sku": map[string]any{"family": "A", "name": strings.ToLower(sku)},
				"accessPolicies": policies, "softDeleteRetentionInDays": retention, "enableSoftDelete": true,
				"enableRbacAuthorization": rb}
			if ppGiven {
				props["enablePurgeProtection"] = pp
			}
			if pna != "" {
				props["publicNetworkAccess"] = pna
			}
			body := map[string]any{"location": location, "properties": props}
			if t := ParseTags(tags); t != nil {
				body["tags"] = t
			}
			resp, err := c.ARM(ctx, http.MethodPut, ResourcePath(sub, group, vaultType, name), APIVersionKeyVault, body)
			if err != nil {
				return err
			}
			return a.printVault(resp.Body)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	cmd.Flags().Lookup("resource-group").Usage = "Name of resource group. You can configure the default group using 'pgflex configure --defaults group=<name>'."
	AddLocationFlag(cmd, &location)
	AddTagsFlag(cmd, &tags)
	f := cmd.Flags()
	f.Var(&choiceValue{p: &sku, choices: []string{"premium", "standard"}, display: "--sku"}, "sku", "Required. SKU details. Allowed values: premium, standard.")
	sku = "standard"
	f.IntVar(&retention, "retention-days", 90, "Soft delete data retention days. It accepts >=7 and <=90.")
	f.Var(&choiceValue{p: &pna, choices: []string{"disabled", "enabled"}, display: "--public-network-access"}, "public-network-access",
		"Property to specify whether the vault will accept traffic from public internet. Allowed values: Disabled, Enabled.")
	addBoolArg(cmd, &purge, "enable-purge-protection", "Property specifying whether protection against purge is enabled for this vault; it cannot be turned off once on.")
	addBoolArg(cmd, &rbac, "enable-rbac-authorization", "Property that controls how data actions are authorized: by role assignments instead of access policies.")
	addBoolArg(cmd, &noSelfPerms, "no-self-perms", "Don't add permissions for the current user/service principal in the new vault.")
	return cmd
}

func newKeyVaultShowCommand(a *App) *cobra.Command {
	var name, group string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show details of a Vault.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			v, err := a.findVault(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			return a.printVault(v.raw)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	return cmd
}

func newKeyVaultListCommand(a *App) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Vaults within a subscription or a resource group.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := ResourceGroupArg(&group)
			g.Optional = true
			if err := a.ResolveArgs(g); err != nil {
				return err
			}
			ctx := cmd.Context()
			sub, err := a.SubscriptionID(ctx)
			if err != nil {
				return err
			}
			path := SubscriptionPath(sub) + "/providers/" + vaultType
			if group != "" {
				path = ResourcePath(sub, group, vaultType)
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, path, APIVersionKeyVault)
			if err != nil {
				return err
			}
			out := make([]map[string]any, 0, len(items))
			for _, raw := range items {
				var v map[string]any
				if err := json.Unmarshal(raw, &v); err != nil {
					return &UserError{Msg: "The service answered with a body that is not a vault.", Err: err}
				}
				v["resourceGroup"] = resourceGroupFromID(jsonString(raw, "id"))
				out = append(out, v)
			}
			return a.Print(out)
		},
	}
	AddResourceGroupFlag(cmd, &group)
	return cmd
}

func newKeyVaultUpdateCommand(a *App) *cobra.Command {
	var name, group, pna string
	var tags []string
	var purge, rbac boolArg
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Update the properties of a Vault.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := a.findVault(ctx, name, group)
			if err != nil {
				return err
			}
			props := map[string]any{}
			if pp, given, err := purge.get(); err != nil {
				return err
			} else if given {
				props["enablePurgeProtection"] = pp
			}
			if rb, given, err := rbac.get(); err != nil {
				return err
			} else if given {
				props["enableRbacAuthorization"] = rb
			}
			if pna != "" {
				props["publicNetworkAccess"] = pna
			}
			body := map[string]any{"properties": props}
			if t := ParseTags(tags); t != nil {
				body["tags"] = t
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodPatch, v.path(), APIVersionKeyVault, body)
			if err != nil {
				return err
			}
			return a.printVault(resp.Body)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	AddTagsFlag(cmd, &tags)
	cmd.Flags().Var(&choiceValue{p: &pna, choices: []string{"disabled", "enabled"}, display: "--public-network-access"}, "public-network-access",
		"Property to specify whether the vault will accept traffic from public internet. Allowed values: Disabled, Enabled.")
	addBoolArg(cmd, &purge, "enable-purge-protection", "Property specifying whether protection against purge is enabled for this vault; it cannot be turned off once on.")
	addBoolArg(cmd, &rbac, "enable-rbac-authorization", "Property that controls how data actions are authorized.")
	return cmd
}

func newKeyVaultDeleteCommand(a *App) *cobra.Command {
	var name, group string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a Vault: it stays recoverable (soft-deleted) for its retention period.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			ctx := cmd.Context()
			v, err := a.findVault(ctx, name, group)
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			_, err = c.ARM(ctx, http.MethodDelete, v.path(), APIVersionKeyVault, nil)
			if err == nil {
				a.log.warningf("cli.pgflex", "Warning! If you have soft-delete protection enabled on this key vault, you will not be able to reuse this key vault name until the key vault has been purged from the soft deleted state.")
			}
			return err
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	return cmd
}

// deletedVault finds a soft-deleted vault by name (and location, when given).
func (a *App) deletedVault(ctx context.Context, name, location string) (sub string, v map[string]any, err error) {
	if sub, err = a.SubscriptionID(ctx); err != nil {
		return "", nil, err
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return "", nil, err
	}
	items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/providers/Microsoft.KeyVault/deletedVaults", APIVersionKeyVault)
	if err != nil {
		return "", nil, err
	}
	for _, raw := range items {
		var d map[string]any
		if json.Unmarshal(raw, &d) != nil || !strings.EqualFold(fmt.Sprint(d["name"]), name) {
			continue
		}
		props, _ := d["properties"].(map[string]any)
		if location != "" && !strings.EqualFold(fmt.Sprint(props["location"]), NormalizeLocation(location)) {
			continue
		}
		return sub, d, nil
	}
	return "", nil, &ARMError{StatusCode: http.StatusNotFound, Code: "DeletedVaultNotFound",
		Message: fmt.Sprintf("The deleted vault '%s' does not exist.", name)}
}

func newKeyVaultRecoverCommand(a *App) *cobra.Command {
	var name, group, location string
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Recover a Vault that was soft-deleted, with its keys.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			ctx := cmd.Context()
			sub, d, err := a.deletedVault(ctx, name, location)
			if err != nil {
				return err
			}
			props, _ := d["properties"].(map[string]any)
			vaultID, _ := props["vaultId"].(string)
			if group == "" {
				group = resourceGroupFromID(vaultID)
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			body := map[string]any{"location": props["location"], "properties": map[string]any{"createMode": "recover",
				"tenantId": c.Profile().TenantID, "sku": map[string]any{"family": "A", "name": "standard"}}}
			resp, err := c.ARM(ctx, http.MethodPut, ResourcePath(sub, group, vaultType, fmt.Sprint(d["name"])), APIVersionKeyVault, body)
			if err != nil {
				return err
			}
			return a.printVault(resp.Body)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	cmd.Flags().StringVarP(&location, "location", "l", "", "Location of the deleted vault.")
	return cmd
}

func newKeyVaultPurgeCommand(a *App) *cobra.Command {
	var name, location string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Permanently delete the specified vault and its keys: refused while purge protection holds it.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			ctx := cmd.Context()
			sub, d, err := a.deletedVault(ctx, name, location)
			if err != nil {
				return err
			}
			props, _ := d["properties"].(map[string]any)
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			path := SubscriptionPath(sub) + "/providers/Microsoft.KeyVault/locations/" + url.PathEscape(fmt.Sprint(props["location"])) +
				"/deletedVaults/" + url.PathEscape(fmt.Sprint(d["name"])) + "/purge"
			resp, err := c.ARM(ctx, http.MethodPost, path, APIVersionKeyVault, nil)
			if err != nil || noWait {
				return err
			}
			_, err = a.wait(ctx, c, http.MethodPost, c.ARMURL(path, APIVersionKeyVault), resp)
			return err
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "Name of the deleted Vault.")
	cmd.Flags().StringVarP(&location, "location", "l", "", "Location of the deleted vault.")
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newKeyVaultListDeletedCommand(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list-deleted",
		Short: "Get information about the deleted Vaults in a subscription.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			sub, err := a.SubscriptionID(ctx)
			if err != nil {
				return err
			}
			return a.ListResources(ctx, SubscriptionPath(sub)+"/providers/Microsoft.KeyVault/deletedVaults", APIVersionKeyVault)
		},
	}
	return cmd
}

// accessPolicy is one accessPolicies entry as the CLI reads and writes it.
type accessPolicy struct {
	TenantID      string         `json:"tenantId"`
	ObjectID      string         `json:"objectId"`
	ApplicationID *string        `json:"applicationId,omitempty"`
	Permissions   map[string]any `json:"permissions"`
}

// currentPolicy finds the vault's access policy for an object (and application) id.
func currentPolicy(raw []byte, oid, appID string) *accessPolicy {
	var v struct {
		Properties struct {
			AccessPolicies []accessPolicy `json:"accessPolicies"`
		} `json:"properties"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	for i, p := range v.Properties.AccessPolicies {
		app := ""
		if p.ApplicationID != nil {
			app = *p.ApplicationID
		}
		if strings.EqualFold(p.ObjectID, oid) && strings.EqualFold(app, appID) {
			return &v.Properties.AccessPolicies[i]
		}
	}
	return nil
}

func newKeyVaultSetPolicyCommand(a *App) *cobra.Command {
	var name, group, objectID, appID string
	var keyPerms, secretPerms, certPerms, storagePerms []string
	cmd := &cobra.Command{
		Use:     "set-policy",
		Short:   "Update security policy settings for a Key Vault.",
		Example: "  pgflex keyvault set-policy -g MyResourceGroup -n MyVault --object-id $principalId --key-permissions wrapKey unwrapKey get list",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			if objectID == "" {
				return Usagef("the following arguments are required: --object-id")
			}
			f := cmd.Flags()
			if !f.Changed("key-permissions") && !f.Changed("secret-permissions") && !f.Changed("certificate-permissions") && !f.Changed("storage-permissions") {
				return Usagef("specify at least one: --key-permissions, --secret-permissions, --certificate-permissions --storage-permissions")
			}
			ctx := cmd.Context()
			v, err := a.findVault(ctx, name, group)
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			// As az: each kind of permission given replaces that kind; the others stay.
			perms := map[string]any{"keys": []string{}, "secrets": []string{}, "certificates": []string{}, "storage": []string{}}
			if cur := currentPolicy(v.raw, objectID, appID); cur != nil {
				for k, p := range cur.Permissions {
					perms[k] = p
				}
			}
			for flag, kind := range map[string]string{"key-permissions": "keys", "secret-permissions": "secrets",
				"certificate-permissions": "certificates", "storage-permissions": "storage"} {
				if f.Changed(flag) {
					vals, _ := f.GetStringArray(flag)
					perms[kind] = nonEmpty(vals)
				}
			}
			entry := accessPolicy{TenantID: c.Profile().TenantID, ObjectID: objectID, Permissions: perms}
			if appID != "" {
				entry.ApplicationID = &appID
			}
			return a.updateAccessPolicies(ctx, c, v, "replace", entry)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	f := cmd.Flags()
	f.StringVar(&objectID, "object-id", "", "A GUID that identifies the principal that will receive permissions.")
	f.StringVar(&appID, "application-id", "", "Application ID of the client making request on behalf of a principal. Exposed for compound identity using on-behalf-of authentication flow.")
	for flag, p := range map[string]*[]string{"key-permissions": &keyPerms, "secret-permissions": &secretPerms,
		"certificate-permissions": &certPerms, "storage-permissions": &storagePerms} {
		f.StringArrayVar(p, flag, nil, "Space-separated list of permissions to assign.")
		markMultiValue(cmd, flag, "*")
	}
	return cmd
}

func nonEmpty(vals []string) []string {
	out := []string{}
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func newKeyVaultDeletePolicyCommand(a *App) *cobra.Command {
	var name, group, objectID, appID string
	cmd := &cobra.Command{
		Use:   "delete-policy",
		Short: "Delete security policy settings for a Key Vault.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name)); err != nil {
				return err
			}
			if objectID == "" {
				return Usagef("the following arguments are required: --object-id")
			}
			ctx := cmd.Context()
			v, err := a.findVault(ctx, name, group)
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			entry := accessPolicy{TenantID: c.Profile().TenantID, ObjectID: objectID, Permissions: map[string]any{}}
			if appID != "" {
				entry.ApplicationID = &appID
			}
			return a.updateAccessPolicies(ctx, c, v, "remove", entry)
		},
	}
	addVaultNameFlags(cmd, &name, &group)
	cmd.Flags().StringVar(&objectID, "object-id", "", "A GUID that identifies the principal whose permissions are removed.")
	cmd.Flags().StringVar(&appID, "application-id", "", "Application ID of a compound identity's policy.")
	return cmd
}

// updateAccessPolicies sends one accessPolicies/{kind} request and prints the vault after it,
// as az's set-policy and delete-policy print the vault.
func (a *App) updateAccessPolicies(ctx context.Context, c *Client, v *vaultRef, kind string, entry accessPolicy) error {
	body := map[string]any{"properties": map[string]any{"accessPolicies": []accessPolicy{entry}}}
	if _, err := c.ARM(ctx, http.MethodPut, v.path()+"/accessPolicies/"+kind, APIVersionKeyVault, body); err != nil {
		return err
	}
	resp, err := c.ARM(ctx, http.MethodGet, v.path(), APIVersionKeyVault, nil)
	if err != nil {
		return err
	}
	return a.printVault(resp.Body)
}
