package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// `pgflex postgres flexible-server firewall-rule ...`: az's commands of the same name
// (flexible_server_custom_common.py), against Microsoft.DBforPostgreSQL/flexibleServers/firewallRules.
func newPostgresFirewallCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("firewall-rule", "Manage firewall rules for a server.")
	cmd.AddCommand(newFirewallCreateCommand(a), newFirewallListCommand(a), newFirewallShowCommand(a),
		newFirewallUpdateCommand(a), newFirewallDeleteCommand(a))
	return cmd
}

// firewallRuleName is az's firewall_rule_name_validator.
var firewallRuleName = regexp.MustCompile(`^[a-zA-Z0-9][-_a-zA-Z0-9]{1,126}[_a-zA-Z0-9]$`)

func checkFirewallRuleName(name string) error {
	if !firewallRuleName.MatchString(name) {
		return &UserError{Msg: "The firewall rule name can only contain 0-9, a-z, A-Z, '-' and '_'. " +
			"Additionally, the name of the firewall rule must be at least 3 characters and no more than 128 characters in length. "}
	}
	return nil
}

// checkRuleAddresses is az's ip_address_validator (the order compared as numbers: az 2.45
// compares the octets as strings, so that 10.0.0.96-10.0.0.111 is refused; Azure/azure-cli#26466).
func checkRuleAddresses(start, end string) error {
	var ips [][4]int
	for _, s := range []string{start, end} {
		if s == "" {
			continue
		}
		ip, ok := parseIPv4(s)
		if !ok {
			return &UserError{Msg: "Incorrect value for ip address. Ip address should be IPv4 format. Example: 12.12.12.12. "}
		}
		ips = append(ips, ip)
	}
	if start != "" && end != "" && ipGreater(ips[0], ips[1]) {
		return &UserError{Msg: "The end IP address is smaller than the start IP address."}
	}
	return nil
}

func ipGreater(a, b [4]int) bool {
	for i := range 4 {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

func addFirewallFlags(cmd *cobra.Command, group, server, rule, start, end *string) {
	AddResourceGroupFlag(cmd, group)
	addServerNameFlag(cmd, server, "name", "n")
	if rule != nil {
		cmd.Flags().StringVarP(rule, "rule-name", "r", "", "The name of the firewall rule. If name is omitted, default name will be chosen for firewall name. "+
			"The firewall rule name can only contain 0-9, a-z, A-Z, '-' and '_'. Additionally, the name of the firewall rule must be at least 3 characters and no more than 128 characters in length. ")
	}
	if start != nil {
		cmd.Flags().StringVar(start, "start-ip-address", "", "The start IP address of the firewall rule. Must be IPv4 format. Use value '0.0.0.0' to represent all Azure-internal IP addresses. ")
		cmd.Flags().StringVar(end, "end-ip-address", "", "The end IP address of the firewall rule. Must be IPv4 format. Use value '0.0.0.0' to represent all Azure-internal IP addresses. ")
	}
}

func firewallRulePath(ref serverRef, name string) string {
	return ref.childPath("firewallRules/" + url.PathEscape(name))
}

// firewallClient is the ARM client for a firewall-rule command on ref, after az's
// validate_public_access_server: rules are for servers with public network access.
func (a *App) firewallClient(ctx context.Context, ref serverRef) (*Client, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.ARM(ctx, http.MethodGet, ref.path(), APIVersionPostgres, nil)
	if err != nil {
		return nil, err
	}
	srv, err := decodeServer(resp.Body)
	if err != nil {
		return nil, err
	}
	var network struct {
		PublicNetworkAccess string `json:"publicNetworkAccess"`
	}
	_ = json.Unmarshal(srv.Properties.Network, &network) // absent or odd: not Disabled
	if network.PublicNetworkAccess == "Disabled" {
		return nil, &UserError{Msg: "Firewall rule operations cannot be requested for a private access enabled server."}
	}
	return c, nil
}

// printFirewallRule prints a rule as az prints its FirewallRule model.
func (a *App) printFirewallRule(raw []byte) error {
	v, err := azResourceView(raw)
	if err != nil {
		return err
	}
	delete(v, "tags")
	return a.Print(v)
}

// putFirewallRule is az's firewall_rule_create_func after its checks: it names a rule that has
// no name as az does, says what it configures, PUTs the rule and waits for it.
func (a *App) putFirewallRule(ctx context.Context, c *Client, ref serverRef, name, start, end string, noWait bool) (*Response, string, error) {
	if end == "" && start != "" {
		end = start
	} else if start == "" && end != "" {
		start = end
	}
	if name == "" {
		now := time.Now()
		stamp := fmt.Sprintf("%d-%d-%d_%d-%d-%d", now.Year(), now.Month(), now.Day(), now.Hour(), now.Minute(), now.Second())
		name = "FirewallIPAddress_" + stamp
		switch {
		case start == "0.0.0.0" && end == "0.0.0.0":
			a.log.warningf(pgLog, "Configuring server firewall rule, 'azure-access', to accept connections from all Azure resources...")
			name = "AllowAllAzureServicesAndResourcesWithinAzureIps_" + stamp
		case start == end:
			a.log.warningf(pgLog, "Configuring server firewall rule to accept connections from '%s'...", start)
		default:
			if start == "0.0.0.0" && end == "255.255.255.255" {
				name = "AllowAll_" + stamp
			}
			a.log.warningf(pgLog, "Configuring server firewall rule to accept connections from '%s' to '%s'...", start, end)
		}
	}
	path := firewallRulePath(ref, name)
	body := map[string]any{"properties": map[string]any{"startIpAddress": start, "endIpAddress": end}}
	resp, err := c.ARM(ctx, http.MethodPut, path, APIVersionPostgres, body)
	if err != nil || noWait {
		return nil, name, err
	}
	final, err := a.wait(ctx, c, http.MethodPut, c.ARMURL(path, APIVersionPostgres), resp)
	return final, name, err
}

func newFirewallCreateCommand(a *App) *cobra.Command {
	var group, server, rule, start, end string
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a new firewall rule for a flexible server.",
		Example: "  pgflex postgres flexible-server firewall-rule create --resource-group testGroup --name testserver --rule-name allowiprange --start-ip-address 107.46.14.0 --end-ip-address 107.46.14.221\n" +
			"  pgflex postgres flexible-server firewall-rule create --resource-group testGroup --name testserver --start-ip-address 107.46.14.221",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--name/-n")
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("rule-name") {
				if err := checkFirewallRuleName(rule); err != nil {
					return err
				}
			}
			if err := checkRuleAddresses(start, end); err != nil {
				return err
			}
			if start == "" && end == "" {
				return &UserError{Msg: "incorrect usage: --start-ip-address and --end-ip-address: give at least one of them."}
			}
			c, err := a.firewallClient(ctx, ref)
			if err != nil {
				return err
			}
			final, _, err := a.putFirewallRule(ctx, c, ref, rule, start, end, noWait)
			if err != nil || noWait {
				return err
			}
			return a.printFirewallRule(final.Body)
		},
	}
	addFirewallFlags(cmd, &group, &server, &rule, &start, &end)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newFirewallListCommand(a *App) *cobra.Command {
	var group, server string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List all firewall rules for a flexible server.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.serverArgs(ctx, &group, &server, "--name/-n")
			if err != nil {
				return err
			}
			c, err := a.firewallClient(ctx, ref)
			if err != nil {
				return err
			}
			items, err := c.ListAll(ctx, ref.childPath("firewallRules"), APIVersionPostgres)
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
	addFirewallFlags(cmd, &group, &server, nil, nil, nil)
	return cmd
}

// ruleArgs resolves a command's server and required --rule-name.
func (a *App) ruleArgs(ctx context.Context, group, server, rule *string) (serverRef, error) {
	ref, err := a.serverArgs(ctx, group, server, "--name/-n", RequiredArg("--rule-name/-r", rule))
	if err != nil {
		return serverRef{}, err
	}
	return ref, checkFirewallRuleName(*rule)
}

func newFirewallShowCommand(a *App) *cobra.Command {
	var group, server, rule string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Get the details of a firewall rule.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.ruleArgs(ctx, &group, &server, &rule)
			if err != nil {
				return err
			}
			c, err := a.firewallClient(ctx, ref)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, firewallRulePath(ref, rule), APIVersionPostgres, nil)
			if err != nil {
				return err
			}
			return a.printFirewallRule(resp.Body)
		},
	}
	addFirewallFlags(cmd, &group, &server, &rule, nil, nil)
	return cmd
}

func newFirewallUpdateCommand(a *App) *cobra.Command {
	var group, server, rule, start, end string
	var noWait bool
	cmd := &cobra.Command{
		Use:     "update",
		Short:   "Update a firewall rule.",
		Example: "  pgflex postgres flexible-server firewall-rule update --resource-group testGroup --name testserver --rule-name allowiprange --start-ip-address 107.46.14.2 --end-ip-address 107.46.14.218",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.ruleArgs(ctx, &group, &server, &rule)
			if err != nil {
				return err
			}
			if err := checkRuleAddresses(start, end); err != nil {
				return err
			}
			// az's generic update: get (through validate_public_access_server), change, put.
			c, err := a.firewallClient(ctx, ref)
			if err != nil {
				return err
			}
			resp, err := c.ARM(ctx, http.MethodGet, firewallRulePath(ref, rule), APIVersionPostgres, nil)
			if err != nil {
				return err
			}
			var cur struct {
				Name       string `json:"name"`
				Properties struct {
					Start string `json:"startIpAddress"`
					End   string `json:"endIpAddress"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(resp.Body, &cur); err != nil {
				return &UserError{Msg: "The service answered with an invalid firewall rule.", Err: err}
			}
			if start != "" {
				cur.Properties.Start = start
			}
			if end != "" {
				cur.Properties.End = end
			}
			final, _, err := a.putFirewallRule(ctx, c, ref, cur.Name, cur.Properties.Start, cur.Properties.End, noWait)
			if err != nil || noWait {
				return err
			}
			return a.printFirewallRule(final.Body)
		},
	}
	addFirewallFlags(cmd, &group, &server, &rule, &start, &end)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

func newFirewallDeleteCommand(a *App) *cobra.Command {
	var group, server, rule string
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a firewall rule.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			ref, err := a.ruleArgs(ctx, &group, &server, &rule)
			if err != nil {
				return err
			}
			// az checks the server's access before it asks.
			if _, err := a.firewallClient(ctx, ref); err != nil {
				return err
			}
			if err := a.confirmPrompt(yes, fmt.Sprintf("Are you sure you want to delete the firewall-rule '%s' in server '%s', resource group '%s'", rule, server, group)); err != nil {
				return err
			}
			return a.DeleteResource(ctx, firewallRulePath(ref, rule), APIVersionPostgres, noWait)
		},
	}
	addFirewallFlags(cmd, &group, &server, &rule, nil, nil)
	AddYesFlag(cmd, &yes)
	AddNoWaitFlag(cmd, &noWait)
	return cmd
}

// publicAccess is what create's --public-access asks for: public network access, and the
// range of a firewall rule to create (none when start is empty).
type publicAccess struct {
	network    string
	start, end string
	// callerAddress: no --public-access, a rule for the caller's own address (found once the
	// server's host name is known: see callerAddress).
	callerAddress bool
}

// parsePublicAccess checks --public-access as az's public_access_validator does and gives it
// az's meanings (prepare_public_network): omitted, the caller's address; All, every address;
// None or Enabled, no rule; Disabled, no public network access at all; an address or a range
// a-b, a rule for it (0.0.0.0 is az's "Azure services" rule, named so).
func parsePublicAccess(v string) (publicAccess, error) {
	bad := &UserError{Msg: "incorrect usage: --public-access. Acceptable values are 'Disabled', 'Enabled', 'All', 'None','<startIP>' and " +
		"'<startIP>-<destinationIP>' where startIP and destinationIP ranges from 0.0.0.0 to 255.255.255.255"}
	switch strings.ToLower(v) {
	case "":
		return publicAccess{network: "Enabled", callerAddress: true}, nil
	case "all":
		return publicAccess{network: "Enabled", start: "0.0.0.0", end: "255.255.255.255"}, nil
	case "none", "enabled":
		return publicAccess{network: "Enabled"}, nil
	case "disabled":
		return publicAccess{network: "Disabled"}, nil
	}
	parts := strings.Split(v, "-")
	if len(parts) > 2 {
		return publicAccess{}, bad
	}
	var ips [][4]int
	for _, p := range parts {
		ip, ok := parseIPv4(p)
		if !ok {
			return publicAccess{}, bad
		}
		ips = append(ips, ip)
	}
	if len(ips) == 2 && ipGreater(ips[0], ips[1]) {
		return publicAccess{}, &UserError{Msg: "The end IP address is smaller than the start IP address."}
	}
	return publicAccess{network: "Enabled", start: parts[0], end: parts[len(parts)-1]}, nil
}

// callerAddress is this machine's address as the PostgreSQL endpoint at host:port sees it: the
// source address the kernel chooses for that destination, read from a UDP socket "connected"
// to it (which sends nothing). az asks an internet service for the caller's public address;
// pgflex's endpoint is reached directly, so its route is what counts, and no internet is
// needed. Behind a NAT between the two, the endpoint sees another address: give
// --public-access <address> then.
func callerAddress(ctx context.Context, host string, port int) (string, error) {
	var ip netip.Addr
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		// pgflex's clients resolve .localhost names to the loopback address themselves, as
		// libpq (through nss-myhostname) does to the endpoint's IPv4 listener.
		ip = netip.MustParseAddr("127.0.0.1")
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if err != nil || len(ips) == 0 {
			return "", fmt.Errorf("resolve %s to find this machine's address towards it: %w", host, err)
		}
		ip = ips[0]
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp4", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	if err != nil {
		return "", fmt.Errorf("find this machine's address towards %s: %w", ip, err)
	}
	defer conn.Close()
	local, ok := netip.AddrFromSlice(conn.LocalAddr().(*net.UDPAddr).IP)
	if !ok {
		return "", fmt.Errorf("find this machine's address towards %s: no IPv4 source address", ip)
	}
	return local.Unmap().String(), nil
}
