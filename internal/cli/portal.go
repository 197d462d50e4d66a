package cli

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

func newPortalCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "portal",
		Short: "Print a one-time link that signs you in to pgflex's web console.",
		Long: "Print a one-time link that signs the profile's principal in to the web console. The link " +
			"works once, within 10 minutes; the code is in the URL's fragment, which the browser never " +
			"sends to a server. The console also accepts the profile's clientId and clientSecret.",
		Example: "  pgflex portal --query url -o tsv",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			base := strings.TrimRight(c.Profile().PortalEndpoint, "/")
			if base == "" {
				return &UserError{Msg: "The profile names no portal endpoint (portalEndpoint).",
					Recommendation: "Restart 'pgflex serve' with this version: it rewrites the profile."}
			}
			resp, err := c.call(ctx, http.MethodPost, base+"/auth/links", nil)
			if err != nil {
				return err
			}
			var link json.RawMessage = resp.Body
			return a.Print(link)
		},
	}
}
