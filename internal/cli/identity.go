package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// APIVersionIdentities is the Microsoft.ManagedIdentity api-version the identity commands use;
// az's identity module speaks 2023-01-31, whose answers have no isolationScope.
const APIVersionIdentities = "2023-01-31"

const identityType = "Microsoft.ManagedIdentity/userAssignedIdentities"

// `pgflex identity ...` is `az identity ...`: user-assigned managed identities, printed as az
// prints them — the resource with its properties flattened into it (principalId, clientId,
// tenantId) and resourceGroup added, so that `--query principalId -o tsv` works as in the seed.
func newIdentityCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("identity", "Managed Identities.")
	cmd.AddCommand(newIdentityCreateCommand(a), newIdentityDeleteCommand(a), newIdentityListCommand(a), newIdentityShowCommand(a))
	return cmd
}

func addIdentityNameFlags(cmd *cobra.Command, name, group *string) {
	cmd.Flags().StringVarP(name, "name", "n", "", "The name of the identity resource.")
	AddResourceGroupFlag(cmd, group)
}

func newIdentityCreateCommand(a *App) *cobra.Command {
	var name, group, location string
	var tags []string
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Create Identities.",
		Example: "  pgflex identity create --name MyIdentity --resource-group MyResourceGroup",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc := LocationArg(&location)
			loc.Optional = true // the group's location otherwise, as az takes it
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name), ResourceGroupArg(&group), loc); err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := a.LocationFromGroup(ctx, &location, group); err != nil {
				return err
			}
			body := map[string]any{"location": location}
			if t := ParseTags(tags); t != nil {
				body["tags"] = t
			}
			resp, err := a.identityCall(ctx, http.MethodPut, group, name, body)
			if err != nil {
				return err
			}
			return a.printIdentity(resp.Body)
		},
	}
	addIdentityNameFlags(cmd, &name, &group)
	AddLocationFlag(cmd, &location)
	AddTagsFlag(cmd, &tags)
	return cmd
}

func newIdentityShowCommand(a *App) *cobra.Command {
	var name, group string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the details of an identity.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name), ResourceGroupArg(&group)); err != nil {
				return err
			}
			resp, err := a.identityCall(cmd.Context(), http.MethodGet, group, name, nil)
			if err != nil {
				return err
			}
			return a.printIdentity(resp.Body)
		},
	}
	addIdentityNameFlags(cmd, &name, &group)
	return cmd
}

func newIdentityDeleteCommand(a *App) *cobra.Command {
	var name, group string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete an identity. Its principal goes with it: role assignments and access policies that name it grant nothing any more.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--name/-n", &name), ResourceGroupArg(&group)); err != nil {
				return err
			}
			_, err := a.identityCall(cmd.Context(), http.MethodDelete, group, name, nil)
			return err
		},
	}
	addIdentityNameFlags(cmd, &name, &group)
	return cmd
}

func newIdentityListCommand(a *App) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List all managed identities within a subscription or a resource group.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := a.listInGroupOrSubscription(cmd.Context(), &group, identityType, APIVersionIdentities, flattenARMResource)
			if err != nil {
				return err
			}
			return a.Print(out)
		},
	}
	AddResourceGroupFlag(cmd, &group)
	return cmd
}

// identityCall sends one request about the identity group/name.
func (a *App) identityCall(ctx context.Context, method, group, name string, body any) (*Response, error) {
	sub, c, err := a.armSession(ctx)
	if err != nil {
		return nil, err
	}
	return c.ARM(ctx, method, ResourcePath(sub, group, identityType, name), APIVersionIdentities, body)
}

func (a *App) printIdentity(raw []byte) error {
	v, err := flattenARMResource(raw)
	if err != nil {
		return err
	}
	return a.Print(v)
}

// flattenARMResource turns an ARM resource into az's view of it: the properties lifted to the top
// level (az's SDK models flatten them), systemData kept (null when absent), tags never null,
// and resourceGroup read from the id when it has one.
func flattenARMResource(raw []byte) (map[string]any, error) {
	var r map[string]any
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, &UserError{Msg: "The service answered with a body that is not a resource.", Err: err}
	}
	out := map[string]any{"systemData": nil}
	for k, v := range r {
		if k != "properties" {
			out[k] = v
		}
	}
	if props, ok := r["properties"].(map[string]any); ok {
		for k, v := range props {
			out[k] = v
		}
	}
	if out["tags"] == nil {
		out["tags"] = map[string]any{}
	}
	if id, ok := r["id"].(string); ok {
		if g := resourceGroupFromID(id); g != "" {
			out["resourceGroup"] = g
		}
	}
	return out, nil
}

// resourceGroupFromID is the resource group segment of an ARM id, "" when it has none.
func resourceGroupFromID(id string) string {
	segs := strings.Split(id, "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}
