package cli

import (
	"net/http"

	"github.com/spf13/cobra"
)

// newPostgresPowerCommand is start, stop or restart: POST .../{action} as a long-running
// operation. az prints nothing for them.
func newPostgresPowerCommand(a *App, action, short string) *cobra.Command {
	var group, name string
	var noWait bool
	cmd := &cobra.Command{
		Use:     action,
		Short:   short,
		Example: "  pgflex postgres flexible-server " + action + " -g MyResourceGroup -n mydemoserver",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &name, "--name/-n")
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			var body any
			if action == "restart" {
				body = map[string]any{"restartWithFailover": false} // az's RestartParameter
			}
			path := ref.path() + "/" + action
			resp, err := c.ARM(ctx, http.MethodPost, path, APIVersionPostgres, body)
			if err != nil || noWait {
				return err
			}
			_, err = a.wait(ctx, c, http.MethodPost, c.ARMURL(path, APIVersionPostgres), resp)
			return err
		},
	}
	AddResourceGroupFlag(cmd, &group)
	addServerNameFlag(cmd, &name, "name", "n")
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}
