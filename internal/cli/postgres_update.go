package cli

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/spf13/cobra"
)

// pgUpdateArgs are the update command's arguments; zero values are "not given".
type pgUpdateArgs struct {
	group, name                  string
	adminPassword, skuName, tier string
	storageGB, retention         int
	publicAccess                 string
	tags                         []string
	tagsGiven, retentionGiven    bool
	byok                         byokArgs
	yes, noWait                  bool
}

func newPostgresUpdateCommand(a *App) *cobra.Command {
	var o pgUpdateArgs
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Update a PostgreSQL flexible server.",
		Long: "Update a PostgreSQL flexible server. --identity and --key (or --backup-identity and --backup-key) change " +
			"the identity or key of a server created with a customer-managed key; they are given together.",
		Example: "  pgflex postgres flexible-server update -g MyResourceGroup -n mydemoserver --backup-retention 10 --tags env=prod\n" +
			"  pgflex postgres flexible-server update -g MyResourceGroup -n mydemoserver --identity MyIdentity \\\n" +
			"    --key https://myvault.vault.localhost:8443/keys/mykey",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.tagsGiven = cmd.Flags().Changed("tags")
			o.retentionGiven = cmd.Flags().Changed("backup-retention")
			return a.updatePostgresServer(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	AddResourceGroupFlag(cmd, &o.group)
	addServerNameFlag(cmd, &o.name, "name", "n")
	f.StringVarP(&o.adminPassword, "admin-password", "p", "", "The password of the administrator. Minimum 8 characters and maximum 128 characters. Password must contain characters from three of the following categories: English uppercase letters, English lowercase letters, numbers, and non-alphanumeric characters.")
	f.StringVar(&o.skuName, "sku-name", "", "The name of the compute SKU. Follows the convention Standard_{VM name}. Examples: Standard_B1ms")
	f.StringVar(&o.tier, "tier", "", "Compute tier of the server. Accepted values: Burstable, GeneralPurpose, MemoryOptimized")
	f.IntVar(&o.storageGB, "storage-size", 0, "The storage capacity of the server. Minimum is 32 GiB and max is 16 TiB.")
	f.IntVar(&o.retention, "backup-retention", 0, "The number of days a backup is retained. Range of 7 to 35 days.")
	addEnumFlag(cmd, &o.publicAccess, "public-access", "", "Enable or disable the public access on a server.", "Enabled", "Disabled")
	AddTagsFlag(cmd, &o.tags)
	addBYOKFlags(cmd, &o.byok)
	AddYesFlag(cmd, &o.yes)
	AddNoWaitFlag(cmd, &o.noWait)
	return cmd
}

// updatePostgresServer is az's generic update with flexible_server_update_custom_func: read
// the server, validate the arguments against it and its location, PATCH what az's
// ServerForUpdate carries, print the server.
func (a *App) updatePostgresServer(ctx context.Context, o *pgUpdateArgs) error {
	ref, err := a.serverArgs(ctx, &o.group, &o.name, "--name/-n")
	if err != nil {
		return err
	}
	if o.retentionGiven && (o.retention < 7 || o.retention > 35) {
		return &UserError{Msg: "incorrect usage: --backup-retention. Range is 7 to 35 days."}
	}
	if err := resolveBYOKIdentities(&o.byok, ref.sub, ref.group); err != nil {
		return err
	}
	if err := checkBYOKPairs(o.byok); err != nil {
		return err
	}
	current, _, err := a.getServer(ctx, ref)
	if err != nil {
		return err
	}
	caps, err := a.locationCapabilities(ctx, ref.sub, current.Location)
	if err != nil {
		return err
	}
	if err := validateCaps(caps, capsArgs{tier: o.tier, sku: o.skuName, storageGB: o.storageGB}, current); err != nil {
		return err
	}
	if err := validateBYOK(o.byok, current.Properties.Backup.GeoRedundantBackup, current); err != nil {
		return err
	}
	if t := caps.tier(o.tier); t != nil {
		o.tier = t.name
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ARM(ctx, http.MethodPatch, ref.path(), APIVersionPostgres, updateServerBody(o, current))
	if err != nil || o.noWait {
		return err
	}
	final, err := a.wait(ctx, c, http.MethodPatch, c.ARMURL(ref.path(), APIVersionPostgres), resp)
	if err != nil {
		return err
	}
	return a.printServer(final.Body)
}

// updateServerBody is the PATCH az sends: the server's sku, storage, backup, network,
// maintenance window and auth config with the changes applied, the password and tags when
// given, and identity with dataEncryption when a complete key configuration results.
func updateServerBody(o *pgUpdateArgs, current *pgServer) map[string]any {
	sku := map[string]any{"name": current.SKU.Name, "tier": current.SKU.Tier}
	if o.skuName != "" {
		sku["name"] = o.skuName
	}
	if o.tier != "" {
		sku["tier"] = o.tier
	}
	p := current.Properties
	storage := map[string]any{"storageSizeGB": p.Storage.StorageSizeGB, "autoGrow": p.Storage.AutoGrow}
	if o.storageGB != 0 {
		storage["storageSizeGB"] = o.storageGB
	}
	backup := map[string]any{"backupRetentionDays": p.Backup.BackupRetentionDays, "geoRedundantBackup": p.Backup.GeoRedundantBackup}
	if o.retentionGiven {
		backup["backupRetentionDays"] = o.retention
	}
	props := map[string]any{"storage": storage, "backup": backup}
	network := rawObject(p.Network)
	if o.publicAccess != "" {
		if network == nil {
			network = map[string]any{}
		}
		network["publicNetworkAccess"] = o.publicAccess
	}
	if network != nil {
		props["network"] = network
	}
	if mw := rawObject(p.MaintenanceWindow); mw != nil {
		props["maintenanceWindow"] = mw
	}
	if ac := rawObject(p.AuthConfig); ac != nil {
		props["authConfig"] = ac
	}
	if o.adminPassword != "" {
		props["administratorLoginPassword"] = o.adminPassword
	}
	body := map[string]any{"sku": sku, "properties": props}
	if identity, enc := buildIdentityAndDataEncryption(o.byok, current); identity != nil {
		body["identity"] = identity
		props["dataEncryption"] = enc
	}
	if o.tagsGiven {
		tags := ParseTags(o.tags)
		if tags == nil {
			tags = map[string]string{}
		}
		body["tags"] = tags
	}
	return body
}

// rawObject decodes a JSON object kept verbatim; nil when absent or not an object.
func rawObject(raw json.RawMessage) map[string]any {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}
