package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

func newPostgresListCommand(a *App) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List available flexible servers.",
		Example: "  pgflex postgres flexible-server list -g MyResourceGroup -o table",
		Args:    noArgs,
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
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			path := SubscriptionPath(sub) + "/providers/" + flexibleServerType
			if group != "" {
				path = ResourcePath(sub, group, flexibleServerType)
			}
			items, err := c.ListAll(ctx, path, APIVersionPostgres)
			if err != nil {
				return err
			}
			out := make([]map[string]any, 0, len(items))
			for _, raw := range items {
				v, err := azResourceView(raw)
				if err != nil {
					return err
				}
				out = append(out, v)
			}
			return a.Print(out, WithTableTransformer(postgresListTable))
		},
	}
	AddResourceGroupFlag(cmd, &group)
	return cmd
}

// postgresListTable is az's table_transform_output_list_servers.
func postgresListTable(v any) any {
	list, _ := v.([]any)
	rows := []any{}
	for _, s := range list {
		kv := []any{
			"Name", field(s, "name"),
			"Resource Group", field(s, "resourceGroup"),
			"Location", field(s, "location"),
			"Version", field(s, "version"),
			"Storage Size(GiB)", field(s, "storage", "storageSizeGb"),
			"Tier", field(s, "sku", "tier"),
			"SKU", field(s, "sku", "name"),
		}
		if id, _ := field(s, "id").(string); strings.Contains(id, "flexibleServers") {
			kv = append(kv, "State", field(s, "state"), "HA State", field(s, "highAvailability", "state"),
				"Availability zone", field(s, "availabilityZone"))
		}
		rows = append(rows, newRow(kv...))
	}
	return rows
}
