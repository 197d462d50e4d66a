package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// Flag helpers that every command group reuses, with az's names, shorthands and help texts.

// AddResourceGroupFlag adds -g/--resource-group. Resolve it with ResourceGroupArg so that it
// falls back to the configured default `group`, as az's resource_group_name_type does.
func AddResourceGroupFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "resource-group", "g", "",
		"Name of resource group. You can configure the default group using 'pgflex configure --defaults group=<name>'.")
}

// AddLocationFlag adds -l/--location. Resolve it with LocationArg (configured default
// `location`) or App.LocationFromGroup (the resource group's location, as many az create
// commands default).
func AddLocationFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "location", "l", "",
		"Location. Values from: 'pgflex account list-locations'. You can configure the default location using 'pgflex configure --defaults location=<location>'.")
}

// AddTagsFlag adds --tags, which takes space-separated key[=value] items as az's does
// (`--tags env=dev team=db`); turn them into a map with ParseTags.
func AddTagsFlag(cmd *cobra.Command, p *[]string) {
	cmd.Flags().StringArrayVar(p, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...]. Use \"\" to clear existing tags.")
	markMultiValue(cmd, "tags", "*")
}

// ParseTags is az's tag parsing: each item split at its first "=", an item without "=" is a
// key with an empty value, empty items are skipped, a later key wins. Given items (even only
// empty ones) yield a non-nil map, so that `--tags ""` sends {} and clears tags.
func ParseTags(items []string) map[string]string {
	if items == nil {
		return nil
	}
	tags := map[string]string{}
	for _, item := range items {
		if item == "" {
			continue
		}
		k, v, _ := strings.Cut(item, "=")
		tags[k] = v
	}
	return tags
}

// AddNoWaitFlag adds --no-wait: the command returns once the service accepted the
// long-running operation, printing nothing, as az does.
func AddNoWaitFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "no-wait", false, "Do not wait for the long-running operation to finish.")
}

// AddYesFlag adds -y/--yes for commands that ask App.Confirm first.
func AddYesFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVarP(p, "yes", "y", false, "Do not prompt for confirmation.")
}

// Arg is one argument a command needs, for App.ResolveArgs.
type Arg struct {
	// Name is the option list as az prints it when missing: "--resource-group/-g".
	Name  string
	Value *string
	// Default is the configured-default key (`pgflex configure --defaults KEY=VALUE`) that
	// fills an empty value, or "".
	Default string
	// Optional arguments only receive the default.
	Optional bool

	normalize func(string) string
}

// ResourceGroupArg is -g/--resource-group with the configured default `group`.
func ResourceGroupArg(p *string) Arg {
	return Arg{Name: "--resource-group/-g", Value: p, Default: "group"}
}

// LocationArg is -l/--location with the configured default `location`; a display name
// ("East US") becomes the region name ("eastus") as az's location type converts it.
func LocationArg(p *string) Arg {
	return Arg{Name: "--location/-l", Value: p, Default: "location", normalize: NormalizeLocation}
}

// RequiredArg is a required argument without a default.
func RequiredArg(name string, p *string) Arg { return Arg{Name: name, Value: p} }

// NormalizeLocation turns a region display name into its name: "West US 2" → "westus2".
func NormalizeLocation(s string) string {
	if !strings.Contains(s, " ") {
		return s
	}
	return strings.ToLower(strings.ReplaceAll(s, " ", ""))
}

// ResolveArgs fills empty arguments from their configured defaults and reports the required
// ones still missing in argparse's words: "the following arguments are required: --name/-n,
// --resource-group/-g" (a usage error, exit code 2).
func (a *App) ResolveArgs(args ...Arg) error {
	var missing []string
	for _, arg := range args {
		if *arg.Value == "" && arg.Default != "" {
			v, err := a.configuredDefault(arg.Default)
			if err != nil {
				return err
			}
			*arg.Value = v
		}
		if *arg.Value == "" && !arg.Optional {
			missing = append(missing, arg.Name)
		}
		if arg.normalize != nil && *arg.Value != "" {
			*arg.Value = arg.normalize(*arg.Value)
		}
	}
	if len(missing) > 0 {
		return Usagef("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	return nil
}

// LocationFromGroup leaves *loc alone if set, else sets it to the resource group's location:
// the default az's create commands take from the group (get_default_location_from_resource_group).
func (a *App) LocationFromGroup(ctx context.Context, loc *string, group string) error {
	if *loc != "" {
		*loc = NormalizeLocation(*loc)
		return nil
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return err
	}
	resp, err := c.ARM(ctx, http.MethodGet, ResourceGroupPath(sub, group), APIVersionResourceGroups, nil)
	if err != nil {
		return err
	}
	var g struct {
		Location string `json:"location"`
	}
	if err := json.Unmarshal(resp.Body, &g); err != nil || g.Location == "" {
		return &UserError{Msg: fmt.Sprintf("The location of resource group '%s' is unknown; specify --location.", group), Err: err}
	}
	*loc = g.Location
	return nil
}

// configuredDefault is a default from the environment (PGFLEX_DEFAULTS_GROUP) or config.json.
func (a *App) configuredDefault(key string) (string, error) {
	if v := defaultFromEnv(a.env.Getenv, key); v != "" {
		return v, nil
	}
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	return cfg.Defaults[key], nil
}

// Confirm asks az's question before a destructive operation unless yes is set. Without a
// terminal on stdin it warns and cancels, as az does; "n" (or end of input) cancels.
func (a *App) Confirm(yes bool) error {
	if yes {
		return nil
	}
	if !a.env.IsTerminal(a.env.Stdin) {
		a.log.warningf("cli.pgflex", "Unable to prompt for confirmation as no tty available. Use --yes.")
		return errCancelled
	}
	in := bufio.NewReader(a.env.Stdin)
	for {
		// Python's input() writes its prompt to stdout.
		fmt.Fprint(a.env.Stdout, "Are you sure you want to perform this operation? (y/n): ")
		line, err := in.ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y":
			return nil
		case "n":
			return errCancelled
		}
		if err != nil {
			return errCancelled
		}
	}
}
