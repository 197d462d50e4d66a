package cli

import (
	"context"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server parameter ...` lists, shows and sets server parameters,
// as az's (flexible_server_custom_postgres.flexible_parameter_update).
func newPostgresParameterCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("parameter", "Commands for managing server parameter values for flexible server.")
	cmd.AddCommand(newPostgresParameterListCommand(a), newPostgresParameterShowCommand(a), newPostgresParameterSetCommand(a))
	return cmd
}

func parameterPath(ref serverRef, name string) string {
	return ref.childPath("configurations/" + url.PathEscape(name))
}

// parameterTable is az's table_transform_output_parameters.
func parameterTable(v any) any {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	rows := []any{}
	for _, r := range list {
		rows = append(rows, newRow(
			"Name", field(r, "name"),
			"DataType", field(r, "dataType"),
			"DefaultValue", field(r, "defaultValue"),
			"Source", field(r, "source"),
			"AllowedValues", field(r, "allowedValues"),
		))
	}
	return rows
}

func addParameterFlags(cmd *cobra.Command, group, server, name *string) {
	AddResourceGroupFlag(cmd, group)
	addServerNameFlag(cmd, server, "server-name", "s")
	if name != nil {
		cmd.Flags().StringVarP(name, "name", "n", "", "The name of the server configuration")
	}
}

func newPostgresParameterListCommand(a *App) *cobra.Command {
	var group, server string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the parameter values for a flexible server.",
		Example: "  pgflex postgres flexible-server parameter list -g testgroup -s servername",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s")
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, ref.childPath("configurations"), APIVersionPostgres)
			if err != nil {
				return err
			}
			out, err := viewAll(items, azResourceView)
			if err != nil {
				return err
			}
			return a.Print(out, WithTableTransformer(parameterTable))
		},
	}
	addParameterFlags(cmd, &group, &server, nil)
	return cmd
}

func newPostgresParameterShowCommand(a *App) *cobra.Command {
	var group, server, name string
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "Get the parameter for a flexible server.",
		Example: "  pgflex postgres flexible-server parameter show --name parameterName -g testgroup -s servername",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--name/-n", &name))
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, parameterPath(ref, name), APIVersionPostgres, nil)
			if err != nil {
				return err
			}
			return a.printParameter(resp.Body)
		},
	}
	addParameterFlags(cmd, &group, &server, &name)
	return cmd
}

func (a *App) printParameter(raw []byte) error {
	v, err := azResourceView(raw)
	if err != nil {
		return err
	}
	return a.Print(v, WithTableTransformer(parameterTable))
}

func newPostgresParameterSetCommand(a *App) *cobra.Command {
	var group, server, name, value, source string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Update the parameter of a flexible server.",
		Long: "Update the parameter of a flexible server. Without --value and --source, the parameter " +
			"is reset to its default value.",
		Example: "  pgflex postgres flexible-server parameter set --name parameterName --value parameterValue -g testgroup -s servername",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--name/-n", &name))
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			props := map[string]any{}
			switch {
			case !cmd.Flags().Changed("value") && !cmd.Flags().Changed("source"):
				// az resets to the default: it reads the default value and sends it.
				def, err := a.parameterDefault(ctx, c, ref, name)
				if err != nil {
					return err
				}
				props["value"], props["source"] = def, "system-default"
			default:
				if cmd.Flags().Changed("value") {
					props["value"] = value
				}
				if source == "" {
					source = "user-override"
				}
				props["source"] = source
			}
			path := parameterPath(ref, name)
			resp, err := c.ARM(ctx, http.MethodPatch, path, APIVersionPostgres, map[string]any{"properties": props})
			if err != nil || noWait {
				return err
			}
			final, err := a.wait(ctx, c, http.MethodPatch, c.ARMURL(path, APIVersionPostgres), resp)
			if err != nil {
				return err
			}
			return a.printParameter(final.Body)
		},
	}
	addParameterFlags(cmd, &group, &server, &name)
	cmd.Flags().StringVarP(&value, "value", "v", "", "Value of the configuration.")
	cmd.Flags().StringVar(&source, "source", "", "Source of the configuration.")
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

// parameterDefault reads a parameter's defaultValue.
func (a *App) parameterDefault(ctx context.Context, c *Client, ref serverRef, name string) (string, error) {
	resp, err := c.ARM(ctx, http.MethodGet, parameterPath(ref, name), APIVersionPostgres, nil)
	if err != nil {
		return "", err
	}
	v, err := azResourceView(resp.Body)
	if err != nil {
		return "", err
	}
	def, _ := v["defaultValue"].(string)
	return def, nil
}
