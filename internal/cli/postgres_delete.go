package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPostgresDeleteCommand(a *App) *cobra.Command {
	var group, name string
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a flexible server.",
		Long: "Delete a flexible server. Its wrapped data encryption key is destroyed first, so whatever ciphertext " +
			"remains can no longer be read; then its files are removed.",
		Example: "  pgflex postgres flexible-server delete -g MyResourceGroup -n mydemoserver --yes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := a.serverArgs(cmd.Context(), &group, &name, "--name/-n")
			if err != nil {
				return err
			}
			if err := a.confirmPrompt(yes, fmt.Sprintf("Are you sure you want to delete the server '%s' in resource group '%s'", name, group)); err != nil {
				return err
			}
			return a.DeleteResource(cmd.Context(), ref.path(), APIVersionPostgres, noWait)
		},
	}
	AddResourceGroupFlag(cmd, &group)
	addServerNameFlag(cmd, &name, "name", "n")
	AddYesFlag(cmd, &yes)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}
