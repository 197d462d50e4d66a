package cli

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newConfigureCommand(a *App) *cobra.Command {
	var defaults []string
	var list bool
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Manage pgflex CLI configuration.",
		Example: "  pgflex configure --defaults group=myRG location=eastus\n" +
			"  pgflex configure --defaults group=\n" +
			"  pgflex configure --list-defaults",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(defaults) == 0 && !list {
				// az starts an interactive wizard here; pgflex has nothing to ask interactively.
				return Usagef("usage error: --defaults KEY=VALUE [KEY=VALUE ...] | --list-defaults")
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if len(defaults) > 0 {
				for _, d := range defaults {
					k, v, ok := strings.Cut(d, "=")
					if !ok || k == "" {
						return Usagef("usage error: --defaults KEY=VALUE [KEY=VALUE ...]")
					}
					cfg.SetDefault(strings.TrimSpace(k), strings.TrimSpace(v))
				}
				if err := cfg.Save(a.cfgDir); err != nil {
					return userError(err, "Cannot save the configuration in '%s'", a.cfgDir)
				}
			}
			if !list {
				return nil
			}
			keys := make([]string, 0, len(cfg.Defaults))
			for k := range cfg.Defaults {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			source := filepath.Join(a.cfgDir, configFileName)
			entries := []map[string]string{}
			for _, k := range keys {
				entries = append(entries, map[string]string{"name": k, "source": source, "value": cfg.Defaults[k]})
			}
			return a.Print(entries)
		},
	}
	cmd.Flags().StringArrayVarP(&defaults, "defaults", "d", nil,
		"Space-separated 'name=value' pairs for common argument defaults, e.g. '--defaults group=myRG location=eastus'. Use 'name=' to clear a default.")
	markMultiValue(cmd, "defaults", "+")
	cmd.Flags().BoolVarP(&list, "list-defaults", "l", false, "List all applicable defaults.")
	return cmd
}
