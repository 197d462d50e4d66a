package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server backup ...` is az's backup group over the server's
// backups child (Microsoft.DBforPostgreSQL/flexibleServers/backups, az's
// BackupsAutomaticAndOnDemandOperations): list, show, an on-demand create (a PUT with no
// body, long-running) and delete (long-running).

const backupsChild = "backups"

// backupArgs are the arguments every backup command shares.
type backupArgs struct {
	group, server, backup string
}

func addBackupServerFlags(cmd *cobra.Command, o *backupArgs) {
	AddResourceGroupFlag(cmd, &o.group)
	addServerNameFlag(cmd, &o.server, "name", "n")
}

func addBackupNameFlag(cmd *cobra.Command, o *backupArgs) {
	cmd.Flags().StringVarP(&o.backup, "backup-name", "b", "", "The name of the backup.")
}

// resolve checks the arguments and returns the server.
func (o *backupArgs) resolve(ctx context.Context, a *App, withBackup bool) (serverRef, error) {
	var more []Arg
	if withBackup {
		more = append(more, RequiredArg("--backup-name/-b", &o.backup))
	}
	return a.serverArgs(ctx, &o.group, &o.server, "--name/-n", more...)
}

func (o *backupArgs) path(ref serverRef) string {
	return ref.childPath(backupsChild + "/" + url.PathEscape(o.backup))
}

func newPostgresBackupCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("backup", "Manage flexible server backups.")
	cmd.AddCommand(newPostgresBackupCreateCommand(a), newPostgresBackupListCommand(a),
		newPostgresBackupShowCommand(a), newPostgresBackupDeleteCommand(a))
	return cmd
}

func newPostgresBackupCreateCommand(a *App) *cobra.Command {
	var o backupArgs
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a backup for a given server with specified backup name.",
		Long: "Create an on-demand full backup of a flexible server. It is encrypted like the server's automatic " +
			"backups: under the server's own key, and, with geo-redundant backup, its copy in the paired region under " +
			"the geo-backup key.",
		Example: "  pgflex postgres flexible-server backup create -g testgroup -n testsvr --backup-name testbackup",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := o.resolve(ctx, a, true)
			if err != nil {
				return err
			}
			if err := validateBackupName(o.backup); err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			path := o.path(ref)
			resp, err := c.ARM(ctx, http.MethodPut, path, APIVersionPostgres, nil)
			if err != nil || noWait {
				return err
			}
			final, err := a.wait(ctx, c, http.MethodPut, c.ARMURL(path, APIVersionPostgres), resp)
			if err != nil {
				return err
			}
			// az's create has no transform: the model prints whole, systemData included.
			v, err := backupView(final.Body, true)
			if err != nil {
				return err
			}
			return a.Print(v)
		},
	}
	addBackupServerFlags(cmd, &o)
	addBackupNameFlag(cmd, &o)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newPostgresBackupListCommand(a *App) *cobra.Command {
	var o backupArgs
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List all the backups for a given server.",
		Example: "  pgflex postgres flexible-server backup list -g testgroup -n testsvr -o table",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := o.resolve(ctx, a, false)
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, ref.childPath(backupsChild), APIVersionPostgres)
			if err != nil {
				return err
			}
			out, err := viewAll(items, func(raw []byte) (map[string]any, error) { return backupView(raw, false) })
			if err != nil {
				return err
			}
			// No table transformer: az's table is knack's automatic one (every scalar field
			// but id and type, sorted: BackupType, CompletedTime, Name, ResourceGroup, Source).
			return a.Print(out)
		},
	}
	addBackupServerFlags(cmd, &o)
	return cmd
}

func newPostgresBackupShowCommand(a *App) *cobra.Command {
	var o backupArgs
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "Show the details of a specific backup for a given server.",
		Example: "  pgflex postgres flexible-server backup show -g testgroup -n testsvr --backup-name testbackup",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := o.resolve(ctx, a, true)
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, o.path(ref), APIVersionPostgres, nil)
			if err != nil {
				return err
			}
			v, err := backupView(resp.Body, false)
			if err != nil {
				return err
			}
			return a.Print(v)
		},
	}
	addBackupServerFlags(cmd, &o)
	addBackupNameFlag(cmd, &o)
	return cmd
}

func newPostgresBackupDeleteCommand(a *App) *cobra.Command {
	var o backupArgs
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a specific backup.",
		Example: "  pgflex postgres flexible-server backup delete -g testgroup -n testsvr --backup-name testbackup --yes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := o.resolve(ctx, a, true)
			if err != nil {
				return err
			}
			if err := a.confirmPrompt(yes, fmt.Sprintf("Are you sure you want to delete the backup '%s' in server '%s'", o.backup, o.server)); err != nil {
				return err
			}
			return a.DeleteResource(ctx, o.path(ref), APIVersionPostgres, noWait)
		},
	}
	addBackupServerFlags(cmd, &o)
	addBackupNameFlag(cmd, &o)
	AddYesFlag(cmd, &yes)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

// validateBackupName is az's validate_backup_name (create only): quotes do not count, and the
// name has at most 128 characters.
func validateBackupName(name string) error {
	stripped := strings.NewReplacer("'", "", `"`, "").Replace(name)
	switch {
	case name == "":
		return &UserError{Msg: "Backup name cannot be empty."}
	case strings.TrimSpace(stripped) == "":
		return &UserError{Msg: "Backup name cannot be empty or contain only whitespaces."}
	case len([]rune(stripped)) > 128:
		return &UserError{Msg: "Backup name cannot exceed 128 characters."}
	}
	return nil
}

// backupView is az's view of a backup: properties lifted (backupType, completedTime, source),
// resourceGroup added. show and list run az's transform_backup, which drops systemData;
// create prints the model as it is, with it.
func backupView(raw []byte, withSystemData bool) (map[string]any, error) {
	v, err := flattenARMResource(raw)
	if err != nil {
		return nil, err
	}
	// A backup is a proxy resource: no tags.
	if t, ok := v["tags"].(map[string]any); ok && len(t) == 0 {
		delete(v, "tags")
	}
	for _, k := range []string{"backupType", "completedTime", "source"} {
		if _, ok := v[k]; !ok {
			v[k] = nil
		}
	}
	if !withSystemData {
		delete(v, "systemData")
	}
	return v, nil
}
