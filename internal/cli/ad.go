package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// graphMeAppOnly is Microsoft Graph's refusal of /me for an application's token.
const graphMeAppOnly = "/me request is only valid with delegated authentication flow."

func newADCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("ad", "Manage Microsoft Entra ID (Azure Active Directory) Graph entities needed for Role Based Access Control.")
	user := newCommandGroup("signed-in-user", "Show graph information about current signed-in user in CLI.")
	user.AddCommand(newADSignedInUserShowCommand(a))
	cmd.AddCommand(user)
	return cmd
}

func newADSignedInUserShowCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Get the details for the currently logged-in user.",
		Long: "Get the details for the currently logged-in user, from Microsoft Graph. pgflex signs in as a " +
			"service principal, for which Graph refuses /me; the service principal is then looked up by its " +
			"application id, as az keyvault create does, and printed in Graph's servicePrincipal shape.",
		Example: "  pgflex ad signed-in-user show --query id -o tsv",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			obj, err := signedInPrincipal(ctx, c)
			if err != nil {
				return err
			}
			return a.Print(obj)
		},
	}
}

// signedInPrincipal is the profile's principal as Graph describes it: /me, or for an
// application's token (Graph's refusal above), the service principal whose name is the
// profile's client id.
func signedInPrincipal(ctx context.Context, c *Client) (json.RawMessage, error) {
	base, err := c.graphBase()
	if err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, http.MethodGet, base+"/v1.0/me", nil)
	if err == nil {
		return resp.Body, nil
	}
	var ae *ARMError
	if !errors.As(err, &ae) || ae.Message != graphMeAppOnly {
		return nil, graphError(err)
	}
	filter := fmt.Sprintf("servicePrincipalNames/any(c:c eq '%s')", strings.ReplaceAll(c.Profile().ClientID, "'", "''"))
	resp, err = c.call(ctx, http.MethodGet, base+"/v1.0/servicePrincipals?$filter="+url.QueryEscape(filter), nil)
	if err != nil {
		return nil, graphError(err)
	}
	var list struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		return nil, &UserError{Msg: "Microsoft Graph answered with a body that is not a list of service principals.", Err: err}
	}
	if len(list.Value) != 1 {
		return nil, &UserError{Msg: fmt.Sprintf("Microsoft Graph knows %d service principals named '%s'; expected one.", len(list.Value), c.Profile().ClientID)}
	}
	return list.Value[0], nil
}

// graphError prints a Graph refusal as az does: its message alone.
func graphError(err error) error {
	var ae *ARMError
	if errors.As(err, &ae) && ae.Message != "" {
		return &UserError{Msg: ae.Message, Err: err}
	}
	return err
}

// graphBase is Microsoft Graph's base URL, from the profile the daemon wrote.
func (c *Client) graphBase() (string, error) {
	g := strings.TrimRight(c.profile.GraphEndpoint, "/")
	if g == "" {
		return "", &UserError{Msg: "The profile names no Microsoft Graph endpoint (graphEndpoint).",
			Recommendation: "Restart 'pgflex serve' with this version: it rewrites the profile."}
	}
	return g, nil
}
