package cli

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// az's group commands take the group's name as -n/--name or -g/--resource-group alike; these
// are the option lists argparse prints when it is missing.
const (
	groupCreateNameDisplay = "--name/--resource-group/-n/-g"
	groupNameDisplay       = "--name/-n/--resource-group/-g"
)

// addGroupNameFlags binds -n/--name and -g/--resource-group to the same value.
func addGroupNameFlags(cmd *cobra.Command, p *string, display, help string) {
	f := cmd.Flags()
	f.StringVarP(p, "name", "n", "", help)
	f.StringVarP(p, "resource-group", "g", "", help)
	for _, name := range []string{"name", "resource-group"} {
		_ = f.SetAnnotation(name, annotationDisplay, []string{display})
	}
}

// groupNameArg is the group name of show, list, delete and exists, which falls back to the
// configured default group as az's resource_group_name_type does.
func groupNameArg(p *string) Arg { return Arg{Name: groupNameDisplay, Value: p, Default: "group"} }

const groupNameHelp = "Name of resource group. You can configure the default group using 'pgflex configure --defaults group=<name>'."

func newGroupCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("group", "Manage resource groups.")
	cmd.AddCommand(newGroupCreateCommand(a), newGroupDeleteCommand(a), newGroupExistsCommand(a),
		newGroupListCommand(a), newGroupShowCommand(a))
	return cmd
}

func newGroupCreateCommand(a *App) *cobra.Command {
	var name, location, managedBy string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a new resource group.",
		Example: "  pgflex group create -l westus -n MyResourceGroup\n" +
			"  pgflex group create -n MyResourceGroup -l eastus --tags env=dev team=data",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Unlike the other group commands, create has no configured default for the name.
			if err := a.ResolveArgs(RequiredArg(groupCreateNameDisplay, &name), LocationArg(&location)); err != nil {
				return err
			}
			ctx := cmd.Context()
			sub, err := a.SubscriptionID(ctx)
			if err != nil {
				return err
			}
			body := map[string]any{"location": location}
			if t := ParseTags(tags); t != nil {
				body["tags"] = t
			}
			if managedBy != "" {
				body["managedBy"] = managedBy
			}
			return a.PutResource(ctx, http.MethodPut, ResourceGroupPath(sub, name), APIVersionResourceGroups, body, false)
		},
	}
	addGroupNameFlags(cmd, &name, groupCreateNameDisplay, "Name of the new resource group.")
	AddLocationFlag(cmd, &location)
	AddTagsFlag(cmd, &tags)
	cmd.Flags().StringVar(&managedBy, "managed-by", "", "The ID of the resource that manages this resource group.")
	return cmd
}

func newGroupShowCommand(a *App) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Gets a resource group.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(groupNameArg(&name)); err != nil {
				return err
			}
			sub, err := a.SubscriptionID(cmd.Context())
			if err != nil {
				return err
			}
			return a.ShowResource(cmd.Context(), ResourceGroupPath(sub, name), APIVersionResourceGroups)
		},
	}
	addGroupNameFlags(cmd, &name, groupNameDisplay, groupNameHelp)
	return cmd
}

func newGroupListCommand(a *App) *cobra.Command {
	var tag string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List resource groups.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			sub, c, err := a.armSession(ctx)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/resourcegroups", APIVersionResourceGroups)
			if err != nil {
				return err
			}
			if tag != "" {
				items = filterByTag(items, tag)
			}
			return a.Print(jsonArray(items), WithTableTransformer(groupListTable))
		},
	}
	// az sends --tag as an OData $filter; the filter is applied here, with ARM's semantics
	// (tag names case-insensitive, values exact).
	cmd.Flags().StringVar(&tag, "tag", "", "A single tag in 'key[=value]' format.")
	return cmd
}

func filterByTag(items []json.RawMessage, tag string) []json.RawMessage {
	key, value, withValue := strings.Cut(tag, "=")
	out := []json.RawMessage{}
	for _, raw := range items {
		var g struct {
			Tags map[string]string `json:"tags"`
		}
		if json.Unmarshal(raw, &g) != nil {
			continue
		}
		for k, v := range g.Tags {
			if strings.EqualFold(k, key) && (!withValue || v == value) {
				out = append(out, raw)
				break
			}
		}
	}
	return out
}

// groupListTable is az's transform_resource_group_list.
func groupListTable(v any) any {
	list, _ := v.([]any)
	rows := []any{}
	for _, r := range list {
		rows = append(rows, newRow(
			"Name", field(r, "name"),
			"Location", field(r, "location"),
			"Status", field(r, "properties", "provisioningState"),
		))
	}
	return rows
}

func newGroupDeleteCommand(a *App) *cobra.Command {
	var name string
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a resource group, and every resource in it.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(groupNameArg(&name)); err != nil {
				return err
			}
			if err := a.Confirm(yes); err != nil {
				return err
			}
			sub, err := a.SubscriptionID(cmd.Context())
			if err != nil {
				return err
			}
			return a.DeleteResource(cmd.Context(), ResourceGroupPath(sub, name), APIVersionResourceGroups, noWait)
		},
	}
	addGroupNameFlags(cmd, &name, groupNameDisplay, groupNameHelp)
	AddYesFlag(cmd, &yes)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newGroupExistsCommand(a *App) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "exists",
		Short: "Check if a resource group exists.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(groupNameArg(&name)); err != nil {
				return err
			}
			ctx := cmd.Context()
			sub, c, err := a.armSession(ctx)
			if err != nil {
				return err
			}
			_, err = c.ARM(ctx, http.MethodHead, ResourceGroupPath(sub, name), APIVersionResourceGroups, nil)
			var ae *ARMError
			switch {
			case err == nil:
				return a.Print(true)
			case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
				return a.Print(false)
			}
			return err
		},
	}
	addGroupNameFlags(cmd, &name, groupNameDisplay, groupNameHelp)
	return cmd
}
