package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// APIVersionPostgres is the Microsoft.DBforPostgreSQL api-version the flexible-server commands
// speak: the newest GA version, whose dataEncryption block carries the geo-backup fields.
const APIVersionPostgres = "2025-08-01"

const flexibleServerType = "Microsoft.DBforPostgreSQL/flexibleServers"

// logger name of the postgres commands' records, shown with --debug as az shows its module's.
const pgLog = "cli.pgflex.postgres"

// `pgflex postgres flexible-server ...` is `az postgres flexible-server ...`. Servers print as
// az prints its SDK models: the properties lifted to the top level, resourceGroup added, and
// the few wire names the Python SDK renames (storageSizeGB → storageSizeGb) renamed likewise.
func newPostgresCommand(a *App) *cobra.Command {
	cmd := newCommandGroup("postgres", "Manage Azure Database for PostgreSQL.")
	fs := newCommandGroup("flexible-server", "Manage Azure Database for PostgreSQL Flexible Servers.")
	fs.AddCommand(
		newPostgresCreateCommand(a), newPostgresShowCommand(a), newPostgresListCommand(a),
		newPostgresUpdateCommand(a), newPostgresDeleteCommand(a),
		newPostgresPowerCommand(a, "start", "Start a flexible server."),
		newPostgresPowerCommand(a, "stop", "Stop a flexible server."),
		newPostgresPowerCommand(a, "restart", "Restart a flexible server."),
		newPostgresShowConnectionStringCommand(a), newPostgresConnectCommand(a), newPostgresExecuteCommand(a),
		newPostgresIdentityCommand(a), newPostgresDBCommand(a), newPostgresFirewallCommand(a), newPostgresParameterCommand(a),
		newPostgresBackupCommand(a), newPostgresRestoreCommand(a), newPostgresGeoRestoreCommand(a),
		newPostgresReviveDroppedCommand(a),
	)
	cmd.AddCommand(fs)
	return cmd
}

// serverRef names one flexible server.
type serverRef struct{ sub, group, name string }

func (s serverRef) path() string { return ResourcePath(s.sub, s.group, flexibleServerType, s.name) }

// childPath is a child collection or resource of the server: "databases", "databases/db1".
func (s serverRef) childPath(rest string) string { return s.path() + "/" + rest }

// pgServer is what the commands read from a server answer.
type pgServer struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Location string            `json:"location"`
	Tags     map[string]string `json:"tags"`
	SKU      struct {
		Name string `json:"name"`
		Tier string `json:"tier"`
	} `json:"sku"`
	Identity   *pgIdentity `json:"identity"`
	Properties struct {
		AdministratorLogin       string `json:"administratorLogin"`
		Version                  string `json:"version"`
		State                    string `json:"state"`
		FullyQualifiedDomainName string `json:"fullyQualifiedDomainName"`
		Storage                  struct {
			StorageSizeGB int    `json:"storageSizeGB"`
			AutoGrow      string `json:"autoGrow"`
		} `json:"storage"`
		Backup struct {
			BackupRetentionDays int    `json:"backupRetentionDays"`
			GeoRedundantBackup  string `json:"geoRedundantBackup"`
		} `json:"backup"`
		DataEncryption *pgDataEncryption `json:"dataEncryption"`
		// Kept verbatim: update sends them back as az's generic update does.
		Network           json.RawMessage `json:"network"`
		MaintenanceWindow json.RawMessage `json:"maintenanceWindow"`
		AuthConfig        json.RawMessage `json:"authConfig"`
	} `json:"properties"`
}

// pgIdentity is the server's identity block.
type pgIdentity struct {
	Type                   string                     `json:"type"`
	PrincipalID            string                     `json:"principalId,omitempty"`
	UserAssignedIdentities map[string]*pgUserIdentity `json:"userAssignedIdentities"`
}

type pgUserIdentity struct {
	PrincipalID string `json:"principalId"`
	ClientID    string `json:"clientId"`
}

// pgDataEncryption is properties.dataEncryption.
type pgDataEncryption struct {
	Type                            string `json:"type"`
	PrimaryKeyURI                   string `json:"primaryKeyURI"`
	PrimaryUserAssignedIdentityID   string `json:"primaryUserAssignedIdentityId"`
	GeoBackupKeyURI                 string `json:"geoBackupKeyURI"`
	GeoBackupUserAssignedIdentityID string `json:"geoBackupUserAssignedIdentityId"`
}

// isCMK reports whether the server was created with a customer-managed key.
func (s *pgServer) isCMK() bool {
	return s.Properties.DataEncryption != nil && s.Properties.DataEncryption.Type == "AzureKeyVault"
}

// host is the server's host name, reached on the daemon's PostgreSQL endpoint (postgresPort).
func (s *pgServer) host() string { return s.Properties.FullyQualifiedDomainName }

// postgresPort is the port of the PostgreSQL endpoint where every server is reached by its host
// name: 5432, as Azure's, unless the profile names another.
func postgresPort(c *Client) int {
	if p := c.Profile().PostgresPort; p > 0 {
		return p
	}
	return 5432
}

func decodeServer(raw []byte) (*pgServer, error) {
	var s pgServer
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, &UserError{Msg: "The service answered with a body that is not a flexible server.", Err: err}
	}
	return &s, nil
}

// getServer reads a server; the raw answer comes back too, for printing.
func (a *App) getServer(ctx context.Context, ref serverRef) (*pgServer, []byte, error) {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.ARM(ctx, http.MethodGet, ref.path(), APIVersionPostgres, nil)
	if err != nil {
		return nil, nil, err
	}
	s, err := decodeServer(resp.Body)
	return s, resp.Body, err
}

// findServer locates a server by name: in the group when one is given, else anywhere in the
// subscription. Server names are globally unique, which is why az's connect commands need no
// group; pgflex needs the server's port, so it looks the server up.
func (a *App) findServer(ctx context.Context, name, group string) (*pgServer, serverRef, error) {
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return nil, serverRef{}, err
	}
	if group != "" {
		ref := serverRef{sub: sub, group: group, name: name}
		s, _, err := a.getServer(ctx, ref)
		return s, ref, err
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return nil, serverRef{}, err
	}
	items, err := c.ListAll(ctx, SubscriptionPath(sub)+"/providers/"+flexibleServerType, APIVersionPostgres)
	if err != nil {
		return nil, serverRef{}, err
	}
	for _, raw := range items {
		s, err := decodeServer(raw)
		if err != nil {
			return nil, serverRef{}, err
		}
		if strings.EqualFold(s.Name, name) {
			return s, serverRef{sub: sub, group: resourceGroupFromID(s.ID), name: s.Name}, nil
		}
	}
	return nil, serverRef{}, &ARMError{StatusCode: http.StatusNotFound, Code: "ResourceNotFound",
		Message: fmt.Sprintf("The Resource '%s/%s' was not found in subscription '%s'.", flexibleServerType, name, sub)}
}

// azSDKNames are the wire names the Python SDK's attribute names turn into something else once
// az prints them (storage_size_gb → storageSizeGb); everything else keeps its wire name.
var azSDKNames = map[string]string{
	"storageSizeGB":   "storageSizeGb",
	"primaryKeyURI":   "primaryKeyUri",
	"geoBackupKeyURI": "geoBackupKeyUri",
	"pointInTimeUTC":  "pointInTimeUtc",
}

// azResourceView is az's view of an ARM resource answer: properties flattened, resourceGroup
// added, SDK attribute names as az prints them. Map-valued fields (tags, the identity map) keep
// their keys.
func azResourceView(raw []byte) (map[string]any, error) {
	v, err := flattenARMResource(raw)
	if err != nil {
		return nil, err
	}
	renameSDKKeys(v)
	return v, nil
}

func renameSDKKeys(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if k == "tags" || k == "userAssignedIdentities" {
				if m, ok := val.(map[string]any); ok {
					for _, inner := range m {
						renameSDKKeys(inner)
					}
				}
				continue
			}
			renameSDKKeys(val)
			if nk, ok := azSDKNames[k]; ok {
				delete(t, k)
				t[nk] = val
			}
		}
	case []any:
		for _, e := range t {
			renameSDKKeys(e)
		}
	}
}

// printServer prints a server answer as az does.
func (a *App) printServer(raw []byte) error {
	v, err := azResourceView(raw)
	if err != nil {
		return err
	}
	return a.Print(v)
}

// addServerNameFlag adds -n/--name, or -s/--server-name for the sub-groups (db, identity).
func addServerNameFlag(cmd *cobra.Command, p *string, long, short string) {
	cmd.Flags().StringVarP(p, long, short, "",
		"Name of the server. The name can contain only lowercase letters, numbers, and the hyphen (-) character. Minimum 3 characters and maximum 63 characters.")
}

// serverArgs resolves -g, the server name flag and the command's other required arguments,
// and returns the server's reference.
func (a *App) serverArgs(ctx context.Context, group, name *string, nameDisplay string, more ...Arg) (serverRef, error) {
	if err := a.ResolveArgs(append([]Arg{RequiredArg(nameDisplay, name), ResourceGroupArg(group)}, more...)...); err != nil {
		return serverRef{}, err
	}
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return serverRef{}, err
	}
	return serverRef{sub: sub, group: *group, name: *name}, nil
}

// confirmPrompt is App.Confirm with the command's own question, as az's user_confirmation asks
// it: "<message> (y/n): ".
func (a *App) confirmPrompt(yes bool, message string) error {
	if yes {
		return nil
	}
	if !a.env.IsTerminal(a.env.Stdin) {
		return &UserError{Msg: "Unable to prompt for confirmation as no tty available. Use --yes."}
	}
	buf := make([]byte, 1)
	for {
		fmt.Fprint(a.env.Stdout, message+" (y/n): ")
		var line []byte
		for {
			n, err := a.env.Stdin.Read(buf)
			if n == 1 && buf[0] != '\n' {
				line = append(line, buf[0])
			}
			if err != nil {
				return errCancelled
			}
			if n == 1 && buf[0] == '\n' {
				break
			}
		}
		switch strings.ToLower(strings.TrimSpace(string(line))) {
		case "y", "yes":
			return nil
		case "n", "no":
			return errCancelled
		}
	}
}
