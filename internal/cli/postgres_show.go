package cli

import "github.com/spf13/cobra"

func newPostgresShowCommand(a *App) *cobra.Command {
	var group, name string
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "Get the details of a flexible server.",
		Example: "  pgflex postgres flexible-server show -g MyResourceGroup -n mydemoserver --query dataEncryption",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref, err := a.serverArgs(cmd.Context(), &group, &name, "--name/-n")
			if err != nil {
				return err
			}
			_, raw, err := a.getServer(cmd.Context(), ref)
			if err != nil {
				return err
			}
			return a.printServer(raw)
		},
	}
	AddResourceGroupFlag(cmd, &group)
	addServerNameFlag(cmd, &name, "name", "n")
	return cmd
}
