package cli

import (
	"net/http"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newLoginCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "login",
		Short: "Log in to a pgflex daemon with the profile file `pgflex serve` wrote.",
		Long: "Log in to a pgflex daemon with the profile file `pgflex serve` wrote (--profile FILE or " +
			"$PGFLEX_PROFILE). The profile is validated (a token is obtained and the subscription read) " +
			"and remembered as the default for later commands.",
		Example: "  pgflex login --profile /var/lib/pgflex/profile.json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := a.profileFlag
			if path == "" {
				path = a.env.Getenv("PGFLEX_PROFILE")
			}
			if path == "" {
				return Usagef("the following arguments are required: --profile")
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return userError(err, "Cannot resolve the profile path '%s'", path)
			}
			a.profileFlag = abs
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			// A token and the profile's own subscription prove endpoint, CA and credentials.
			if _, err := c.ARM(ctx, http.MethodGet, SubscriptionPath(c.Profile().SubscriptionID), APIVersionSubscriptions, nil); err != nil {
				return err
			}
			accounts, err := a.listAccounts(cmd, false)
			if err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			cfg.Profile = abs
			if err := cfg.Save(a.cfgDir); err != nil {
				return userError(err, "Cannot save the configuration in '%s'", a.cfgDir)
			}
			// Like `az login`, print the subscriptions now available.
			return a.Print(accounts)
		},
	}
}

func newLogoutCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the profile `pgflex login` stored.",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Profile == "" {
				return &UserError{Msg: "There are no active accounts."}
			}
			cfg.Profile = ""
			if err := cfg.Save(a.cfgDir); err != nil {
				return userError(err, "Cannot save the configuration in '%s'", a.cfgDir)
			}
			return nil
		},
	}
}
