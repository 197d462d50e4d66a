package cli

import "github.com/spf13/cobra"

// `pgflex postgres flexible-server revive-dropped` is az's flexible_server_revivedropped: a
// new server made from the backups of a server that was deleted, which the service keeps for
// the deleted server's backup retention. It is a PUT with createMode ReviveDropped and
// pointInTimeUTC = now, the latest state the backups reach. The source no longer exists, so
// nothing reads it: --source-server is a resource id (or a bare name in the new server's group)
// and --location, which must be the deleted server's region, is required. As with restore, the
// new server has its own data encryption key and its own choice of key.

func newPostgresReviveDroppedCommand(a *App) *cobra.Command {
	o := pgRestoreArgs{mode: createModeReviveDropped}
	cmd := &cobra.Command{
		Use:   "revive-dropped",
		Short: "Revive a dropped flexible server from backup.",
		Long: "Create a new server from the backups of a deleted flexible server, as of its latest state. A deleted " +
			"server's backups are kept for its backup retention period; --location must be the region the deleted " +
			"server was in. The new server has its own data encryption key and its own choice of key: a service-managed " +
			"key unless --identity and --key name a customer-managed one, whatever the deleted server used.",
		Example: "  pgflex postgres flexible-server revive-dropped --resource-group testGroup --name testserverNew \\\n" +
			"    --source-server /subscriptions/{SubId}/resourceGroups/{testGroup}/providers/Microsoft.DBforPostgreSQL/flexibleServers/testserver \\\n" +
			"    --location eastus\n" +
			"  pgflex postgres flexible-server revive-dropped -l eastus --resource-group testGroup --name testserverNew \\\n" +
			"    --source-server testserver --key https://myvault.vault.localhost:8443/keys/mykey --identity newIdentity",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.restorePostgresServer(cmd.Context(), &o) },
	}
	addNewServerFromBackupFlags(cmd, &o)
	AddLocationFlag(cmd, &o.location)
	return cmd
}
