package cli

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// subscriptionJSON is the part of a Microsoft.Resources subscription the CLI reads.
type subscriptionJSON struct {
	SubscriptionID   string          `json:"subscriptionId"`
	DisplayName      string          `json:"displayName"`
	State            string          `json:"state"`
	TenantID         string          `json:"tenantId"`
	ManagedByTenants json.RawMessage `json:"managedByTenants"`
}

// account is one entry of az's profile as `az account show|list` and `az login` print it.
// show names the cloud "environmentName", list and login "cloudName", as az does.
func (a *App) account(p *Profile, s subscriptionJSON, isDefault bool, cloudKey string) map[string]any {
	user := p.User
	if user.Name == "" {
		user = ProfileUser{Name: p.ClientID, Type: "servicePrincipal"}
	}
	state := s.State
	if state == "" {
		state = "Enabled"
	}
	tenant := s.TenantID
	if tenant == "" {
		tenant = p.TenantID
	}
	managedBy := s.ManagedByTenants
	if len(managedBy) == 0 || string(managedBy) == "null" {
		managedBy = json.RawMessage("[]")
	}
	return map[string]any{
		cloudKey:           "AzureCloud",
		"homeTenantId":     tenant,
		"id":               s.SubscriptionID,
		"isDefault":        isDefault,
		"managedByTenants": managedBy,
		"name":             s.DisplayName,
		"state":            state,
		"tenantId":         tenant,
		"user":             user,
	}
}

func newAccountCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("account", "Manage subscription information.")
	cmd.AddCommand(newAccountShowCommand(a), newAccountListCommand(a), newAccountListLocationsCommand(a))
	return cmd
}

func newAccountShowCommand(a *App) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Get the details of a subscription.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.ARMClient(ctx)
			if err != nil {
				return err
			}
			var sub string
			if name != "" {
				sub, err = a.resolveSubscription(ctx, c, name)
			} else {
				sub, err = a.SubscriptionID(ctx)
			}
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, SubscriptionPath(sub), APIVersionSubscriptions, nil)
			if err != nil {
				return err
			}
			var s subscriptionJSON
			if err := json.Unmarshal(resp.Body, &s); err != nil {
				return &UserError{Msg: "The service answered with an invalid subscription.", Err: err}
			}
			p := c.Profile()
			return a.Print(a.account(p, s, strings.EqualFold(s.SubscriptionID, p.SubscriptionID), "environmentName"))
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "Name or ID of subscription.")
	return cmd
}

func newAccountListCommand(a *App) *cobra.Command {
	var all bool
	var refresh bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Get a list of subscriptions for the logged in account.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			accounts, err := a.listAccounts(cmd, all)
			if err != nil {
				return err
			}
			return a.Print(accounts, WithTableTransformer(accountListTable))
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "List all subscriptions from all clouds, rather than just 'Enabled' ones.")
	// az re-reads subscriptions from the service with --refresh; pgflex always does.
	cmd.Flags().BoolVar(&refresh, "refresh", false, "Retrieve up-to-date subscriptions from the server.")
	return cmd
}

// listAccounts reads the subscriptions the profile's principal sees, in az's account shape.
func (a *App) listAccounts(cmd *cobra.Command, all bool) ([]map[string]any, error) {
	ctx := cmd.Context()
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	items, err := c.ListAll(ctx, "/subscriptions", APIVersionSubscriptions)
	if err != nil {
		return nil, err
	}
	p := c.Profile()
	accounts := []map[string]any{}
	for _, raw := range items {
		var s subscriptionJSON
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &UserError{Msg: "The service answered with an invalid subscription.", Err: err}
		}
		if !all && s.State != "" && s.State != "Enabled" {
			continue
		}
		accounts = append(accounts, a.account(p, s, strings.EqualFold(s.SubscriptionID, p.SubscriptionID), "cloudName"))
	}
	return accounts, nil
}

// accountListTable is az's transform_account_list.
func accountListTable(v any) any {
	list, _ := v.([]any)
	rows := []any{}
	for _, r := range list {
		rows = append(rows, newRow(
			"Name", field(r, "name"),
			"CloudName", field(r, "cloudName"),
			"SubscriptionId", field(r, "id"),
			"TenantId", field(r, "tenantId"),
			"State", field(r, "state"),
			"IsDefault", field(r, "isDefault"),
		))
	}
	return rows
}

func newAccountListLocationsCommand(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "list-locations",
		Short: "List supported regions for the current subscription.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sub, err := a.SubscriptionID(cmd.Context())
			if err != nil {
				return err
			}
			return a.ListResources(cmd.Context(), SubscriptionPath(sub)+"/locations", APIVersionSubscriptions)
		},
	}
}
