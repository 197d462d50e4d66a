package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgflex/pgflex/internal/cloudmeta"
)

func newCloudCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("cloud", "Manage registered Azure clouds: use the pgflex daemon from Azure's own CLI.")
	cmd.AddCommand(newCloudShowConfigCommand(a))
	return cmd
}

func newCloudShowConfigCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "show-config",
		Short: "Print the cloud configuration for `az cloud register --cloud-config` of this daemon.",
		Long: "Print the cloud configuration that `az cloud register -n pgflex --cloud-config @FILE` reads, for the " +
			"daemon the profile names. The values are the ones the daemon publishes at " + cloudmeta.Path +
			" (ARM's cloud metadata), converted to az's names: the resource manager, the ADFS-style sign-in " +
			"authority, Microsoft Graph, and the key-store and server DNS suffixes.",
		Example: "  pgflex cloud show-config > pgflex-cloud.json\n" +
			"  az cloud register -n pgflex --cloud-config @pgflex-cloud.json\n" +
			"  az cloud set -n pgflex",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			// Public, as Azure's: no token is sent.
			resp, err := c.send(ctx, http.MethodGet, c.ARMURL(cloudmeta.Path, "2022-09-01"), nil, http.Header{"Accept": {"application/json"}})
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return decodeARMError(resp.StatusCode, resp.Body)
			}
			var clouds []map[string]any
			if err := json.Unmarshal(resp.Body, &clouds); err != nil {
				return &UserError{Msg: "The daemon answered with cloud metadata that is not a list of clouds.", Err: err}
			}
			for _, cl := range clouds {
				if name, _ := cl["name"].(string); strings.EqualFold(name, cloudmeta.Name) {
					cfg, err := cloudmeta.CLIConfig(cl)
					if err != nil {
						return &UserError{Msg: "The daemon's cloud metadata is incomplete: " + err.Error(), Err: err}
					}
					return a.Print(cfg)
				}
			}
			return &UserError{Msg: fmt.Sprintf("The daemon's cloud metadata names no cloud '%s'.", cloudmeta.Name)}
		},
	}
}
