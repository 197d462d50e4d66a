package cli

import "github.com/spf13/cobra"

func newVersionCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the versions of pgflex CLI modules and extensions in JSON format by default or format configured by --output.",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			// The shape of `az version`: the CLI's version and its (here: no) extensions.
			return a.Print(map[string]any{"pgflex": a.env.Version, "extensions": map[string]any{}})
		},
	}
}
