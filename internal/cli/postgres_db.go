package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server db ...` manages the databases of a server.
func newPostgresDBCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("db", "Manage PostgreSQL databases on a flexible server.")
	cmd.AddCommand(newPostgresDBCreateCommand(a), newPostgresDBListCommand(a), newPostgresDBShowCommand(a), newPostgresDBDeleteCommand(a))
	return cmd
}

func addDBFlags(cmd *cobra.Command, group, server, database *string) {
	AddResourceGroupFlag(cmd, group)
	addServerNameFlag(cmd, server, "server-name", "s")
	if database != nil {
		cmd.Flags().StringVarP(database, "database-name", "d", "", "The name of the database")
	}
}

func databasePath(ref serverRef, name string) string {
	return ref.childPath("databases/" + url.PathEscape(name))
}

// printDatabase prints a database as az prints its Database model (no tags).
func (a *App) printDatabase(raw []byte) error {
	v, err := azResourceView(raw)
	if err != nil {
		return err
	}
	delete(v, "tags")
	return a.Print(v)
}

// createDatabase PUTs a database and waits for it: what `db create` and `create -d` share.
func (a *App) createDatabase(ctx context.Context, c *Client, ref serverRef, name, charset, collation string) error {
	_, err := a.putDatabase(ctx, c, ref, name, charset, collation, false)
	return err
}

func (a *App) putDatabase(ctx context.Context, c *Client, ref serverRef, name, charset, collation string, noWait bool) (*Response, error) {
	path := databasePath(ref, name)
	body := map[string]any{"properties": map[string]any{"charset": charset, "collation": collation}}
	resp, err := c.ARM(ctx, http.MethodPut, path, APIVersionPostgres, body)
	if err != nil || noWait {
		return nil, err
	}
	return a.wait(ctx, c, http.MethodPut, c.ARMURL(path, APIVersionPostgres), resp)
}

func newPostgresDBCreateCommand(a *App) *cobra.Command {
	var group, server, database, charset, collation string
	var noWait bool
	cmd := &cobra.Command{
		Use:     "create",
		Short:   "Create a PostgreSQL database on a flexible server.",
		Example: "  pgflex postgres flexible-server db create -g MyResourceGroup -s mydemoserver -d newdatabase",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--database-name/-d", &database))
			if err != nil {
				return err
			}
			switch {
			case charset == "" && collation == "":
				charset, collation = "utf8", "en_US.utf8"
				a.log.warningf(pgLog, "Creating database with utf8 charset and en_US.utf8 collation")
			case charset == "" || collation == "":
				return &UserError{Msg: "charset and collation have to be input together."}
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			final, err := a.putDatabase(ctx, c, ref, database, charset, collation, noWait)
			if err != nil || noWait {
				return err
			}
			return a.printDatabase(final.Body)
		},
	}
	addDBFlags(cmd, &group, &server, &database)
	cmd.Flags().StringVar(&charset, "charset", "", "The charset of the database. The default value is UTF8")
	cmd.Flags().StringVar(&collation, "collation", "", "The collation of the database.")
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newPostgresDBListCommand(a *App) *cobra.Command {
	var group, server string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the databases for a flexible server.",
		Args:  noArgs,
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
			items, err := c.ListAll(ctx, ref.childPath("databases"), APIVersionPostgres)
			if err != nil {
				return err
			}
			out, err := viewAll(items, azResourceView)
			if err != nil {
				return err
			}
			for _, v := range out {
				delete(v, "tags")
			}
			return a.Print(out)
		},
	}
	addDBFlags(cmd, &group, &server, nil)
	return cmd
}

func newPostgresDBShowCommand(a *App) *cobra.Command {
	var group, server, database string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the details of a database.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--database-name/-d", &database))
			if err != nil {
				return err
			}
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, databasePath(ref, database), APIVersionPostgres, nil)
			if err != nil {
				return err
			}
			return a.printDatabase(resp.Body)
		},
	}
	addDBFlags(cmd, &group, &server, &database)
	return cmd
}

func newPostgresDBDeleteCommand(a *App) *cobra.Command {
	var group, server, database string
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a database on a flexible server.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--database-name/-d", &database))
			if err != nil {
				return err
			}
			if err := a.confirmPrompt(yes, fmt.Sprintf("Are you sure you want to delete the database '%s' of the server '%s'", database, server)); err != nil {
				return err
			}
			return a.DeleteResource(ctx, databasePath(ref, database), APIVersionPostgres, noWait)
		},
	}
	addDBFlags(cmd, &group, &server, &database)
	AddYesFlag(cmd, &yes)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}
