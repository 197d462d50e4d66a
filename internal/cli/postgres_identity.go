package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server identity ...` manages the user-assigned identities of a
// server (az's identity_commands.py): assign and remove PATCH the identity block, list and show
// read it. They print the identity block as az prints its UserAssignedIdentity model.
func newPostgresIdentityCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("identity", "Manage server user assigned identities.")
	cmd.AddCommand(newPostgresIdentityAssignCommand(a), newPostgresIdentityRemoveCommand(a),
		newPostgresIdentityListCommand(a), newPostgresIdentityShowCommand(a))
	return cmd
}

func addIdentitiesFlag(cmd *cobra.Command, p *[]string) {
	cmd.Flags().StringArrayVarP(p, "identity", "n", nil, "Space-separated names or ID's of identities.")
	markMultiValue(cmd, "identity", "+")
}

// resolveIdentities resolves every name or id as --identity does on create.
func resolveIdentities(values []string, sub, group string) ([]string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		id, err := resolveIdentity(v, sub, group)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// identityView is az's printing of the identity block: every attribute of the model, null
// when the service left it out.
func identityView(id *pgIdentity) map[string]any {
	out := map[string]any{"principalId": nil, "tenantId": nil, "type": nil, "userAssignedIdentities": nil}
	if id == nil {
		return out
	}
	out["type"] = id.Type
	if id.PrincipalID != "" {
		out["principalId"] = id.PrincipalID
	}
	if id.UserAssignedIdentities != nil {
		m := map[string]any{}
		for k, v := range id.UserAssignedIdentities {
			if v == nil {
				m[k] = nil
				continue
			}
			m[k] = map[string]any{"principalId": v.PrincipalID, "clientId": v.ClientID}
		}
		out["userAssignedIdentities"] = m
	}
	return out
}

// serverIdentityView is what identity list and remove print; az's quirk: a server without an
// identity block shows as SystemAssigned.
func serverIdentityView(id *pgIdentity) map[string]any {
	if id == nil {
		id = &pgIdentity{Type: "SystemAssigned"}
	}
	return identityView(id)
}

// patchIdentity PATCHes the server's identity block, waits, and returns the server.
func (a *App) patchIdentity(ctx context.Context, ref serverRef, identity map[string]any) (*pgServer, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.ARM(ctx, http.MethodPatch, ref.path(), APIVersionPostgres, map[string]any{"identity": identity})
	if err != nil {
		return nil, err
	}
	final, err := a.wait(ctx, c, http.MethodPatch, c.ARMURL(ref.path(), APIVersionPostgres), resp)
	if err != nil {
		return nil, err
	}
	return decodeServer(final.Body)
}

func newPostgresIdentityAssignCommand(a *App) *cobra.Command {
	var group, server string
	var identities []string
	cmd := &cobra.Command{
		Use:     "assign",
		Short:   "Add user assigned managed identities to the server.",
		Example: "  pgflex postgres flexible-server identity assign -g MyResourceGroup -s mydemoserver -n MyIdentity1 MyIdentity2",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, ids, err := a.identityArgs(ctx, &group, &server, identities)
			if err != nil {
				return err
			}
			current, _, err := a.getServer(ctx, ref)
			if err != nil {
				return err
			}
			identityType := "None"
			if current.Identity != nil && current.Identity.Type != "" {
				identityType = current.Identity.Type
			}
			switch identityType {
			case "SystemAssigned":
				identityType = "SystemAssigned,UserAssigned"
			case "None":
				identityType = "UserAssigned"
			}
			m := map[string]any{}
			for _, id := range ids {
				m[id] = map[string]any{}
			}
			srv, err := a.patchIdentity(ctx, ref, map[string]any{"type": identityType, "userAssignedIdentities": m})
			if err != nil {
				return err
			}
			if srv.Identity == nil {
				return nil
			}
			return a.Print(identityView(srv.Identity))
		},
	}
	addIdentityServerFlags(cmd, &group, &server)
	addIdentitiesFlag(cmd, &identities)
	return cmd
}

func newPostgresIdentityRemoveCommand(a *App) *cobra.Command {
	var group, server string
	var identities []string
	var yes bool
	cmd := &cobra.Command{
		Use:     "remove",
		Short:   "Remove user assigned managed identities from the server.",
		Long:    "Remove user assigned managed identities from the server. An identity the server uses for data encryption cannot be removed.",
		Example: "  pgflex postgres flexible-server identity remove -g MyResourceGroup -s mydemoserver -n MyIdentity --yes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, ids, err := a.identityArgs(ctx, &group, &server, identities)
			if err != nil {
				return err
			}
			// az asks first (confirmation=True), before it reads the server.
			if err := a.Confirm(yes); err != nil {
				return err
			}
			current, _, err := a.getServer(ctx, ref)
			if err != nil {
				return err
			}
			patch, err := identityRemoval(current, ids)
			if err != nil {
				return err
			}
			srv, err := a.patchIdentity(ctx, ref, patch)
			if err != nil {
				return err
			}
			return a.Print(serverIdentityView(srv.Identity))
		},
	}
	addIdentityServerFlags(cmd, &group, &server)
	addIdentitiesFlag(cmd, &identities)
	AddYesFlag(cmd, &yes)
	return cmd
}

// identityRemoval is the identity block az's remove sends, after refusing identities the server
// uses for data encryption: null for each removed identity, or type None (SystemAssigned
// when the server has a system identity) when none would remain.
func identityRemoval(current *pgServer, ids []string) (map[string]any, error) {
	removing := func(id string) bool {
		for _, r := range ids {
			if strings.EqualFold(r, id) {
				return true
			}
		}
		return false
	}
	if de := current.Properties.DataEncryption; de != nil {
		if de.PrimaryUserAssignedIdentityID != "" && removing(de.PrimaryUserAssignedIdentityID) {
			return nil, &UserError{Msg: fmt.Sprintf("Cannot remove identity %s because it's used for data encryption.", de.PrimaryUserAssignedIdentityID)}
		}
		if de.GeoBackupUserAssignedIdentityID != "" && removing(de.GeoBackupUserAssignedIdentityID) {
			return nil, &UserError{Msg: fmt.Sprintf("Cannot remove identity %s because it's used for geo backup data encryption.", de.GeoBackupUserAssignedIdentityID)}
		}
	}
	systemAssigned := current.Identity != nil && current.Identity.PrincipalID != ""
	allRemoved := true
	if current.Identity != nil {
		for id := range current.Identity.UserAssignedIdentities {
			if !removing(id) {
				allRemoved = false
			}
		}
	}
	if allRemoved {
		if systemAssigned {
			return map[string]any{"type": "SystemAssigned"}, nil
		}
		return map[string]any{"type": "None"}, nil
	}
	m := map[string]any{}
	for _, id := range ids {
		m[id] = nil
	}
	t := "UserAssigned"
	if systemAssigned {
		t = "SystemAssigned,UserAssigned"
	}
	return map[string]any{"type": t, "userAssignedIdentities": m}, nil
}

func newPostgresIdentityListCommand(a *App) *cobra.Command {
	var group, server string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List all user assigned managed identities from the server.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s")
			if err != nil {
				return err
			}
			srv, _, err := a.getServer(ctx, ref)
			if err != nil {
				return err
			}
			return a.Print(serverIdentityView(srv.Identity))
		},
	}
	addIdentityServerFlags(cmd, &group, &server)
	return cmd
}

func newPostgresIdentityShowCommand(a *App) *cobra.Command {
	var group, server, identity string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Get a user assigned managed identity from the server.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--server-name/-s", RequiredArg("--identity/-n", &identity))
			if err != nil {
				return err
			}
			id, err := resolveIdentity(identity, ref.sub, ref.group)
			if err != nil {
				return err
			}
			srv, _, err := a.getServer(ctx, ref)
			if err != nil {
				return err
			}
			if srv.Identity != nil {
				for k, v := range srv.Identity.UserAssignedIdentities {
					if strings.EqualFold(k, id) && v != nil {
						return a.Print(map[string]any{"principalId": v.PrincipalID, "clientId": v.ClientID})
					}
				}
			}
			return &UserError{Msg: fmt.Sprintf("Identity '%s' does not exist in server %s.", id, server)}
		},
	}
	addIdentityServerFlags(cmd, &group, &server)
	cmd.Flags().StringVarP(&identity, "identity", "n", "", "Name or ID of identity to show.")
	return cmd
}

func addIdentityServerFlags(cmd *cobra.Command, group, server *string) {
	AddResourceGroupFlag(cmd, group)
	addServerNameFlag(cmd, server, "server-name", "s")
}

// identityArgs resolves -g, -s and the identities of assign and remove.
func (a *App) identityArgs(ctx context.Context, group, server *string, identities []string) (serverRef, []string, error) {
	var first string
	if len(identities) > 0 {
		first = identities[0]
	}
	ref, err := a.serverArgs(ctx, group, server, "--server-name/-s", RequiredArg("--identity/-n", &first))
	if err != nil {
		return serverRef{}, nil, err
	}
	ids, err := resolveIdentities(identities, ref.sub, ref.group)
	return ref, ids, err
}
