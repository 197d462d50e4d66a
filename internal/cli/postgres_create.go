package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
)

// az's defaults for a new server.
const (
	pgDefaultTier      = "GeneralPurpose"
	pgDefaultSKU       = "Standard_D2s_v3"
	pgDefaultStorageGB = 128
	pgDefaultRetention = 7
	pgDefaultDatabase  = "postgres"
	// pgDefaultLocation is where az puts a server, and the resource group it creates for it,
	// when neither --location nor an existing group says otherwise (DEFAULT_LOCATION_PG).
	pgDefaultLocation = "canadacentral"
)

// enumValue is az's get_enum_type: one of fixed values, matched case-insensitively and kept in
// its canonical casing.
type enumValue struct {
	p       *string
	values  []string
	display string
}

func (v *enumValue) String() string { return *v.p }
func (v *enumValue) Type() string   { return "string" }
func (v *enumValue) Set(s string) error {
	for _, c := range v.values {
		if strings.EqualFold(c, s) {
			*v.p = c
			return nil
		}
	}
	quoted := make([]string, len(v.values))
	for i, c := range v.values {
		quoted[i] = pythonRepr(c)
	}
	return &UsageError{Msg: fmt.Sprintf("argument %s: invalid choice: %s (choose from %s)",
		v.display, pythonRepr(s), strings.Join(quoted, ", "))}
}

func addEnumFlag(cmd *cobra.Command, p *string, name, def, usage string, values ...string) {
	*p = def
	cmd.Flags().Var(&enumValue{p: p, values: values, display: "--" + name}, name,
		usage+" Allowed values: "+strings.Join(values, ", ")+".")
}

// addBYOKFlags adds --identity, --key, --backup-identity and --backup-key with az's help.
func addBYOKFlags(cmd *cobra.Command, b *byokArgs) {
	f := cmd.Flags()
	f.StringVar(&b.Identity, "identity", "", "The name or resource ID of the user assigned identity for data encryption.")
	f.StringVar(&b.Key, "key", "", "The resource ID of the primary keyvault key for data encryption.")
	f.StringVar(&b.BackupIdentity, "backup-identity", "", "The name or resource ID of the geo backup user identity for data encryption. The identity needs to be in the same region as the backup region.")
	f.StringVar(&b.BackupKey, "backup-key", "", "The resource ID of the geo backup keyvault key for data encryption. The key needs to be in the same region as the backup region.")
}

// pgCreateArgs are the create command's arguments.
type pgCreateArgs struct {
	group, name, location           string
	adminUser, adminPassword        string
	version, skuName, tier          string
	storageGB, retention            int
	geo, publicAccess, databaseName string
	tags                            []string
	byok                            byokArgs
	yes, noWait                     bool
	retentionGiven                  bool
}

func newPostgresCreateCommand(a *App) *cobra.Command {
	var o pgCreateArgs
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a PostgreSQL flexible server.",
		Long: "Create a PostgreSQL flexible server. Its data is encrypted at rest with a service-managed key, " +
			"or with a customer-managed key given by --identity and --key (and --backup-identity and --backup-key " +
			"when geo-redundant backup is enabled). Without --admin-password a password is generated and printed once.",
		Example: "  pgflex postgres flexible-server create -g MyResourceGroup -n mydemoserver -l eastus\n" +
			"  pgflex postgres flexible-server create -g MyResourceGroup -n mydemoserver --geo-redundant-backup Disabled \\\n" +
			"    --identity MyIdentity --key https://myvault.vault.localhost:8443/keys/mykey",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.retentionGiven = cmd.Flags().Changed("backup-retention")
			return a.createPostgresServer(cmd.Context(), &o)
		},
	}
	f := cmd.Flags()
	AddResourceGroupFlag(cmd, &o.group)
	addServerNameFlag(cmd, &o.name, "name", "n")
	AddLocationFlag(cmd, &o.location)
	f.StringVarP(&o.adminUser, "admin-user", "u", generateAdminUser(),
		"Administrator username for the server. Once set, it cannot be changed.")
	f.StringVarP(&o.adminPassword, "admin-password", "p", "",
		"The password of the administrator. Minimum 8 characters and maximum 128 characters. Password must contain characters from three of the following categories: English uppercase letters, English lowercase letters, numbers, and non-alphanumeric characters. Default: a generated password, printed once.")
	f.StringVar(&o.version, "version", "", "Server major version. Default: the newest version the location offers.")
	f.StringVar(&o.skuName, "sku-name", "", "The name of the compute SKU. Follows the convention Standard_{VM name}. Examples: Standard_B1ms. Default: the tier's default SKU (Standard_D2s_v3 for GeneralPurpose).")
	f.StringVar(&o.tier, "tier", pgDefaultTier, "Compute tier of the server. Accepted values: Burstable, GeneralPurpose, MemoryOptimized")
	f.IntVar(&o.storageGB, "storage-size", pgDefaultStorageGB, "The storage capacity of the server. Minimum is 32 GiB and max is 16 TiB.")
	f.IntVar(&o.retention, "backup-retention", pgDefaultRetention, "The number of days a backup is retained. Range of 7 to 35 days. Default is 7 days.")
	addEnumFlag(cmd, &o.geo, "geo-redundant-backup", "Disabled", "Whether or not geo redundant backup is enabled.", "Enabled", "Disabled")
	f.StringVar(&o.publicAccess, "public-access", "",
		"Determines the public access. Acceptable values are 'Disabled', 'Enabled', 'All', 'None', '{startIP}' and '{startIP}-{destinationIP}'. "+
			"Disabled: no client may connect. None or Enabled: public access without a firewall rule (add rules with firewall-rule create). "+
			"All: a rule for every address (0.0.0.0-255.255.255.255). An address or a range: a rule for it (0.0.0.0: az's Azure services rule). "+
			"Omitted: a rule for this machine's address as the daemon's PostgreSQL endpoint sees it.")
	f.StringVarP(&o.databaseName, "database-name", "d", "", "The name of a database to create on the new server.")
	AddTagsFlag(cmd, &o.tags)
	addBYOKFlags(cmd, &o.byok)
	AddYesFlag(cmd, &o.yes)
	AddNoWaitFlag(cmd, &o.noWait)
	return cmd
}

// createPostgresServer is az's flexible_server_create: validate everything that can be
// validated, then create the resource group if it is missing, then the server (and database).
// Unlike az, nothing is created before the arguments are known to be valid.
func (a *App) createPostgresServer(ctx context.Context, o *pgCreateArgs) error {
	group := ResourceGroupArg(&o.group)
	group.Optional = true
	loc := LocationArg(&o.location)
	loc.Optional = true
	if err := a.ResolveArgs(group, loc); err != nil {
		return err
	}
	groupGiven := o.group != ""
	if !groupGiven {
		o.group = randomResourceName("group")
	}
	if o.name == "" {
		o.name = randomResourceName("server")
	}
	o.name = strings.ToLower(o.name)
	if o.noWait && o.databaseName != "" {
		return Usagef("--no-wait cannot be combined with --database-name: the database is created once the server is ready.")
	}
	sub, err := a.SubscriptionID(ctx)
	if err != nil {
		return err
	}

	// Checks that need no call.
	if len(o.name) < 3 || len(o.name) > 63 {
		return &UserError{Msg: "Server name must be at least 3 characters and at most 63 characters."}
	}
	if o.retentionGiven && (o.retention < 7 || o.retention > 35) {
		return &UserError{Msg: "incorrect usage: --backup-retention. Range is 7 to 35 days."}
	}
	access, err := parsePublicAccess(o.publicAccess)
	if err != nil {
		return err
	}
	if err := resolveBYOKIdentities(&o.byok, sub, o.group); err != nil {
		return err
	}
	if err := validateBYOK(o.byok, o.geo, nil); err != nil {
		return err
	}

	// Checks that read: the group, the name, the location's capabilities.
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	groupExists := false
	if groupGiven {
		a.log.warningf(pgLog, "Checking the existence of the resource group '%s'...", o.group)
		resp, err := c.ARM(ctx, http.MethodGet, ResourceGroupPath(sub, o.group), APIVersionResourceGroups, nil)
		var ae *ARMError
		switch {
		case err == nil:
			groupExists = true
			var g struct {
				Location string `json:"location"`
			}
			if json.Unmarshal(resp.Body, &g) == nil && o.location == "" {
				o.location = g.Location
			}
		case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		default:
			return err
		}
		a.log.warningf(pgLog, "Resource group '%s' exists ? : %s ", o.group, pythonBool(groupExists))
	}
	if o.location == "" {
		o.location = pgDefaultLocation
	}
	if err := a.checkServerName(ctx, sub, o.location, o.name); err != nil {
		return err
	}
	caps, err := a.locationCapabilities(ctx, sub, o.location)
	if err != nil {
		return err
	}
	if err := validateCaps(caps, capsArgs{tier: o.tier, sku: o.skuName, version: o.version, geo: o.geo, storageGB: o.storageGB}, nil); err != nil {
		return err
	}
	tier := caps.tier(o.tier)
	if tier != nil {
		o.tier = tier.name // the service's casing
	}
	if o.skuName == "" {
		o.skuName = pgDefaultSKU
		if tier != nil && tier.defaultSKU != "" {
			o.skuName = tier.defaultSKU
		}
	}
	if o.version == "" {
		o.version = caps.newestVersion()
	}
	generated := o.adminPassword == ""
	if generated {
		if o.adminPassword, err = generatePassword(o.adminUser); err != nil {
			return err
		}
	}

	// Writes.
	if !groupExists {
		a.log.warningf(pgLog, "Creating Resource Group '%s'...", o.group)
		if _, err := c.ARM(ctx, http.MethodPut, ResourceGroupPath(sub, o.group), APIVersionResourceGroups,
			map[string]any{"location": o.location}); err != nil {
			return err
		}
	}
	// A server the service refuses (a weak password, say) leaves nothing behind: the group
	// created for it goes too. az would keep it.
	undoGroup := func(err error) error {
		if !groupExists {
			if derr := a.DeleteResource(context.WithoutCancel(ctx), ResourceGroupPath(sub, o.group), APIVersionResourceGroups, false); derr != nil {
				a.log.warningf(pgLog, "The resource group '%s' created for the server could not be deleted: %v", o.group, derr)
			}
		}
		return err
	}
	ref := serverRef{sub: sub, group: o.group, name: o.name}
	a.log.warningf(pgLog, "Creating PostgreSQL Server '%s' in group '%s'...", o.name, o.group)
	resp, err := c.ARM(ctx, http.MethodPut, ref.path(), APIVersionPostgres, createServerBody(o, access.network))
	if err != nil {
		return undoGroup(err)
	}
	out := map[string]any{
		"id": ref.path(), "username": o.adminUser, "password": o.adminPassword, "skuname": o.skuName,
		"location": o.location, "version": o.version, "databaseName": pgDefaultDatabase,
		"host": nil, "port": nil, "connectionString": nil,
	}
	if o.noWait {
		// The password exists nowhere else: print it now, with what is known before the server is up.
		a.log.warningf(pgLog, "Make a note of your password. If you forget, you would have to reset your password with \"pgflex postgres flexible-server update -n %s -g %s -p <new-password>\".", o.name, o.group)
		return a.Print(out)
	}
	final, err := a.wait(ctx, c, http.MethodPut, c.ARMURL(ref.path(), APIVersionPostgres), resp)
	if err != nil {
		var ae *ARMError
		if errors.As(err, &ae) {
			return undoGroup(err) // the operation failed: the service rolled the server back
		}
		return err
	}
	srv, err := decodeServer(final.Body)
	if err != nil {
		return err
	}
	// az adds the rule once the server exists, before the database.
	if access.callerAddress {
		ip, err := callerAddress(ctx, srv.host(), postgresPort(c))
		if err != nil {
			return fmt.Errorf("no firewall rule was created for this machine (give --public-access an address or a range): %w", err)
		}
		a.log.warningf(pgLog, "Detected current client IP : %s", ip)
		access.start, access.end = ip, ip
	}
	if access.start != "" {
		_, name, err := a.putFirewallRule(ctx, c, ref, "", access.start, access.end, false)
		if err != nil {
			return err
		}
		out["firewallName"] = name
	}
	database := pgDefaultDatabase
	if o.databaseName != "" {
		database = o.databaseName
		a.log.warningf(pgLog, "Creating PostgreSQL database '%s'...", database)
		if err := a.createDatabase(ctx, c, ref, database, "utf8", "en_US.utf8"); err != nil {
			return err
		}
	}
	a.log.warningf(pgLog, "Make a note of your password. If you forget, you would have to reset your password with \"pgflex postgres flexible-server update -n %s -g %s -p <new-password>\".", o.name, o.group)
	a.log.warningf(pgLog, "Try using 'pgflex postgres flexible-server connect' command to test out connection.")
	out["id"], out["location"], out["version"] = srv.ID, srv.Location, srv.Properties.Version
	out["skuname"], out["username"] = srv.SKU.Name, srv.Properties.AdministratorLogin
	port := postgresPort(c)
	out["host"], out["port"], out["databaseName"] = srv.host(), port, database
	out["connectionString"] = postgresURI(srv.host(), strconv.Itoa(port), srv.Properties.AdministratorLogin, o.adminPassword, database)
	return a.Print(out)
}

// createServerBody is the PUT az's _create_server sends (createMode Create).
func createServerBody(o *pgCreateArgs, publicNetwork string) map[string]any {
	props := map[string]any{
		"administratorLogin":         o.adminUser,
		"administratorLoginPassword": o.adminPassword,
		"version":                    o.version,
		"storage":                    map[string]any{"storageSizeGB": o.storageGB, "autoGrow": "Disabled"},
		"backup":                     map[string]any{"backupRetentionDays": o.retention, "geoRedundantBackup": o.geo},
		"network":                    map[string]any{"publicNetworkAccess": publicNetwork},
		"highAvailability":           map[string]any{"mode": "Disabled"},
		"authConfig":                 map[string]any{"activeDirectoryAuth": "Disabled", "passwordAuth": "Enabled"},
		"createMode":                 "Create",
	}
	body := map[string]any{
		"location":   o.location,
		"sku":        map[string]any{"name": o.skuName, "tier": o.tier},
		"properties": props,
	}
	if identity, enc := buildIdentityAndDataEncryption(o.byok, nil); identity != nil {
		body["identity"] = identity
		props["dataEncryption"] = enc
	}
	if t := ParseTags(o.tags); t != nil {
		body["tags"] = t
	}
	return body
}

// checkServerName is az's validate_server_name: the location-scoped checkNameAvailability.
func (a *App) checkServerName(ctx context.Context, sub, location, name string) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	path := SubscriptionPath(sub) + "/providers/Microsoft.DBforPostgreSQL/locations/" + url.PathEscape(location) + "/checkNameAvailability"
	resp, err := c.ARM(ctx, http.MethodPost, path, APIVersionPostgres, map[string]any{"name": name, "type": flexibleServerType})
	if err != nil {
		return err
	}
	var r struct {
		NameAvailable bool   `json:"nameAvailable"`
		Message       string `json:"message"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		return &UserError{Msg: "The service answered the name availability check with an invalid body.", Err: err}
	}
	if !r.NameAvailable {
		return &UserError{Msg: r.Message}
	}
	return nil
}

func parseIPv4(s string) ([4]int, bool) {
	var ip [4]int
	octets := strings.Split(s, ".")
	if len(octets) != 4 {
		return ip, false
	}
	for i, o := range octets {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 || n > 255 || strings.TrimSpace(o) != o || o == "" {
			return ip, false
		}
		ip[i] = n
	}
	return ip, true
}

func pythonBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// randomResourceName is az's create_random_resource_name: the prefix padded with random
// digits to 15 characters ("server482913027").
func randomResourceName(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for b.Len() < 15 {
		b.WriteByte(byte('0' + randInt(10)))
	}
	return b.String()
}

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return int(v.Int64())
}

// Word lists for generated administrator names, in the shape of az's generate_username:
// adjective, noun, one digit ("quietotter4").
var (
	usernameAdjectives = []string{"agile", "amber", "bold", "brave", "calm", "clever", "eager", "fancy", "gentle", "happy",
		"jolly", "keen", "lively", "lucky", "merry", "nimble", "proud", "quiet", "rapid", "shy", "steady", "swift", "tidy", "witty"}
	usernameNouns = []string{"badger", "beaver", "bison", "crane", "falcon", "ferret", "finch", "gecko", "heron", "ibis",
		"koala", "lemur", "lynx", "marten", "otter", "panda", "puffin", "quail", "raven", "seal", "stork", "tapir", "wombat", "yak"}
)

func generateAdminUser() string {
	return usernameAdjectives[randInt(len(usernameAdjectives))] + usernameNouns[randInt(len(usernameNouns))] + strconv.Itoa(randInt(10))
}

// generatePassword is az's generate_password (secrets.token_urlsafe(16), '-' replaced by a
// random letter), drawn again until it meets the service's password policy for login.
func generatePassword(login string) (string, error) {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for range 100 {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		pw := []byte(base64.RawURLEncoding.EncodeToString(raw))
		for i, c := range pw {
			if c == '-' {
				pw[i] = letters[randInt(len(letters))]
			}
		}
		if meetsPasswordPolicy(login, string(pw)) {
			return string(pw), nil
		}
	}
	return "", errors.New("generate password: no candidate met the password policy")
}

// meetsPasswordPolicy is Azure's rule: 8–128 characters from three of four categories, and no
// three consecutive alphanumeric characters of the login.
func meetsPasswordPolicy(login, pw string) bool {
	if n := len([]rune(pw)); n < 8 || n > 128 {
		return false
	}
	var classes [4]bool
	for _, c := range pw {
		switch {
		case unicode.IsUpper(c):
			classes[0] = true
		case unicode.IsLower(c):
			classes[1] = true
		case unicode.IsDigit(c):
			classes[2] = true
		default:
			classes[3] = true
		}
	}
	n := 0
	for _, ok := range classes {
		if ok {
			n++
		}
	}
	if n < 3 {
		return false
	}
	lp := strings.ToLower(pw)
	for _, part := range strings.FieldsFunc(strings.ToLower(login), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		for i := 0; i+3 <= len(part); i++ {
			if strings.Contains(lp, part[i:i+3]) {
				return false
			}
		}
	}
	return true
}
