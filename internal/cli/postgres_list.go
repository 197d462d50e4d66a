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
			out, err := a.listInGroupOrSubscription(cmd.Context(), &group, flexibleServerType, APIVersionPostgres, azResourceView)
			if err != nil {
				return err
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
