package flexserver

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/regions"
)

// serverBody is the PUT/PATCH request body. Pointers tell "absent" from "zero".
type serverBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        *SKU              `json:"sku"`
	Identity   *identityBody     `json:"identity"`
	Properties *serverProps      `json:"properties"`
}

type identityBody struct {
	Type string `json:"type"`
	// A null value removes that identity on PATCH, as `az ... identity remove` sends it.
	UserAssignedIdentities map[string]*struct{} `json:"userAssignedIdentities"`
}

type serverProps struct {
	AdministratorLogin         *string `json:"administratorLogin"`
	AdministratorLoginPassword *string `json:"administratorLoginPassword"`
	Version                    *string `json:"version"`
	Storage                    *struct {
		StorageSizeGB *int    `json:"storageSizeGB"`
		AutoGrow      *string `json:"autoGrow"`
		Tier          *string `json:"tier"`
	} `json:"storage"`
	Backup *struct {
		BackupRetentionDays *int    `json:"backupRetentionDays"`
		GeoRedundantBackup  *string `json:"geoRedundantBackup"`
	} `json:"backup"`
	Network *struct {
		PublicNetworkAccess         *string `json:"publicNetworkAccess"`
		DelegatedSubnetResourceID   *string `json:"delegatedSubnetResourceId"`
		PrivateDNSZoneArmResourceID *string `json:"privateDnsZoneArmResourceId"`
	} `json:"network"`
	HighAvailability *struct {
		Mode *string `json:"mode"`
	} `json:"highAvailability"`
	DataEncryption         *Encryption `json:"dataEncryption"`
	CreateMode             *string     `json:"createMode"`
	SourceServerResourceID *string     `json:"sourceServerResourceId"`
	PointInTimeUTC         *string     `json:"pointInTimeUTC"`
	AvailabilityZone       *string     `json:"availabilityZone"`
}

// Defaults applied on create when the request leaves a property out (az's defaults).
const (
	defaultVersion       = "15"
	defaultStorageGB     = 128
	defaultRetentionDays = 7
	defaultSKU           = "Standard_D2s_v3"
	defaultTier          = "GeneralPurpose"
)

// StorageSizesGB are the disk sizes Azure offers.
var StorageSizesGB = []int{32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767}

// skuCatalog maps each tier to its compute sizes.
var skuCatalog = map[string][]skuInfo{
	"Burstable": {{"Standard_B1ms", 1, 2048}, {"Standard_B2s", 2, 2048}, {"Standard_B2ms", 2, 4096}, {"Standard_B4ms", 4, 4096}},
	"GeneralPurpose": {{"Standard_D2s_v3", 2, 4096}, {"Standard_D4s_v3", 4, 4096}, {"Standard_D8s_v3", 8, 4096},
		{"Standard_D2ds_v4", 2, 4096}, {"Standard_D4ds_v4", 4, 4096}, {"Standard_D2ds_v5", 2, 4096}, {"Standard_D4ds_v5", 4, 4096}},
	"MemoryOptimized": {{"Standard_E2s_v3", 2, 8192}, {"Standard_E4s_v3", 4, 8192}, {"Standard_E2ds_v4", 2, 8192},
		{"Standard_E4ds_v4", 4, 8192}, {"Standard_E2ds_v5", 2, 8192}},
}

type skuInfo struct {
	Name            string
	VCores          int
	MemoryPerVCoreM int
}

func lookupSKU(name string) (tier string, info skuInfo, ok bool) {
	for t, list := range skuCatalog {
		for _, s := range list {
			if strings.EqualFold(s.Name, name) {
				return t, s, true
			}
		}
	}
	return "", skuInfo{}, false
}

func tierNames() []string {
	return []string{"Burstable", "GeneralPurpose", "MemoryOptimized"}
}

// ValidateServerName applies Azure's flexible-server naming rules (with az's messages).
func ValidateServerName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return arm.Errorf(http.StatusBadRequest, "InvalidServerName",
			"Server name must be at least 3 characters and at most 63 characters.")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return arm.Errorf(http.StatusBadRequest, "InvalidServerName",
				"Server name must only contain lowercase letters, numbers, and hyphens. The server name must not start or end in a hyphen.")
		}
	}
	if strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return arm.Errorf(http.StatusBadRequest, "InvalidServerName",
			"Server name must only contain lowercase letters, numbers, and hyphens. The server name must not start or end in a hyphen.")
	}
	return nil
}

// ValidateAdminLogin applies Azure's rules for the administrator login name, and pgflex's
// (its service roles are reserved too): the same rule the data plane applies when it creates
// the role, so a name it would refuse is refused here, before anything is created.
func ValidateAdminLogin(login string) error {
	if why := postgres.AdminLoginProblem(login); why != "" {
		e := arm.Errorf(http.StatusBadRequest, "InvalidAdministratorLogin", "The administrator login '%s' is not valid: %s", login, why)
		e.Target = "properties.administratorLogin"
		return e
	}
	return nil
}

// passwordPolicy is Azure's text for the administrator password policy.
const passwordPolicy = "Your password must be at least 8 characters and at most 128 characters. Your password must contain characters from three of the following categories – English uppercase letters, English lowercase letters, numbers (0-9), and non-alphanumeric characters (!, $, #, %, etc.). Your password cannot contain all or part of the login name. Part of a login name is defined as three or more consecutive alphanumeric characters."

// ValidatePassword applies Azure's password policy.
func ValidatePassword(login, password string) error {
	bad := func() error {
		e := arm.Errorf(http.StatusBadRequest, "PasswordNotComplex",
			"The password does not meet policy requirements because it is not complex enough. %s", passwordPolicy)
		e.Target = "properties.administratorLoginPassword"
		return e
	}
	if n := len([]rune(password)); n < 8 || n > 128 {
		return bad()
	}
	// The administrator role gets a SCRAM verifier that pgflex computes without SASLprep, which
	// clients apply to non-ASCII passwords: such a password would be accepted here and then fail
	// deep in the create (or never log in), so it is refused up front.
	for _, c := range password {
		if c < 0x20 || c > 0x7e {
			e := arm.BadRequest("PasswordNotComplex",
				"The password can contain only printable ASCII characters: English letters, digits, spaces and punctuation. %s", passwordPolicy)
			e.Target = "properties.administratorLoginPassword"
			return e
		}
	}
	var upper, lower, digit, other bool
	for _, c := range password {
		switch {
		case unicode.IsUpper(c):
			upper = true
		case unicode.IsLower(c):
			lower = true
		case unicode.IsDigit(c):
			digit = true
		default:
			other = true
		}
	}
	n := 0
	for _, b := range []bool{upper, lower, digit, other} {
		if b {
			n++
		}
	}
	if n < 3 {
		return bad()
	}
	// No run of three or more alphanumeric characters of the login may appear in the password.
	lp, ll := strings.ToLower(password), strings.ToLower(login)
	for _, part := range strings.FieldsFunc(ll, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		for i := 0; i+3 <= len(part); i++ {
			if strings.Contains(lp, part[i:i+3]) {
				return bad()
			}
		}
	}
	return nil
}

// invalidValue is the 400 for a property value outside what Azure accepts.
func invalidValue(target, format string, args ...any) *arm.Error {
	return arm.InvalidParameter(target, format, args...)
}

// validateCreate checks a create request and fills in Azure's defaults. versions are the
// PostgreSQL major versions this host can run.
func validateCreate(s *Server, body *serverBody, versions []string) error {
	if body.Location == nil || *body.Location == "" {
		return arm.BadRequest("LocationRequired", "The location property is required for this definition.")
	}
	reg, ok := regions.Lookup(*body.Location)
	if !ok {
		return arm.BadRequest("NoRegisteredProviderFound",
			"No registered resource provider found for location '%s' and type '%s'. The supported locations are '%s'.",
			*body.Location, ResourceType, strings.Join(regions.Names(), ", "))
	}
	s.Location = reg.Name
	p := body.Properties
	if p == nil {
		return arm.BadRequest("InvalidRequestContent", "The request content must have a 'properties' object.")
	}
	if p.CreateMode != nil && !strings.EqualFold(*p.CreateMode, "Default") && !strings.EqualFold(*p.CreateMode, "Create") {
		return invalidValue("properties.createMode", "The createMode '%s' is not supported here; use Default or Create.", *p.CreateMode)
	}
	if p.AdministratorLogin == nil || *p.AdministratorLogin == "" {
		e := arm.BadRequest("AdministratorLoginRequired", "The administrator login is required to create a server.")
		e.Target = "properties.administratorLogin"
		return e
	}
	if err := ValidateAdminLogin(*p.AdministratorLogin); err != nil {
		return err
	}
	s.AdministratorLogin = *p.AdministratorLogin
	if p.AdministratorLoginPassword == nil || *p.AdministratorLoginPassword == "" {
		e := arm.BadRequest("AdministratorPasswordRequired", "The administrator login password is required to create a server.")
		e.Target = "properties.administratorLoginPassword"
		return e
	}
	if err := ValidatePassword(s.AdministratorLogin, *p.AdministratorLoginPassword); err != nil {
		return err
	}
	s.Version = defaultVersion
	if p.Version != nil && *p.Version != "" {
		s.Version = *p.Version
	}
	if !slices.Contains(versions, s.Version) {
		return invalidValue("properties.version", "The PostgreSQL version '%s' is not supported on this host. Supported versions: %s.",
			s.Version, strings.Join(versions, ", "))
	}
	s.SKU = SKU{Name: defaultSKU, Tier: defaultTier}
	if body.SKU != nil {
		if err := validateSKU(body.SKU); err != nil {
			return err
		}
		tier, info, _ := lookupSKU(body.SKU.Name)
		s.SKU = SKU{Name: info.Name, Tier: tier}
	}
	s.StorageSizeGB, s.AutoGrow = defaultStorageGB, "Disabled"
	if p.Storage != nil {
		if p.Storage.StorageSizeGB != nil {
			s.StorageSizeGB = *p.Storage.StorageSizeGB
		}
		if p.Storage.AutoGrow != nil {
			s.AutoGrow = *p.Storage.AutoGrow
		}
	}
	if err := validateStorage(s.StorageSizeGB, s.AutoGrow); err != nil {
		return err
	}
	s.BackupRetentionDays, s.GeoRedundantBackup = defaultRetentionDays, "Disabled"
	if p.Backup != nil {
		if p.Backup.BackupRetentionDays != nil {
			s.BackupRetentionDays = *p.Backup.BackupRetentionDays
		}
		if p.Backup.GeoRedundantBackup != nil {
			s.GeoRedundantBackup = *p.Backup.GeoRedundantBackup
		}
	}
	if err := validateRetention(s.BackupRetentionDays); err != nil {
		return err
	}
	switch {
	case strings.EqualFold(s.GeoRedundantBackup, "Enabled"):
		s.GeoRedundantBackup = "Enabled"
		if reg.Paired == "" {
			return invalidValue("properties.backup.geoRedundantBackup",
				"Geo-redundant backup is not supported in region '%s' because it has no paired region.", reg.Name)
		}
	case strings.EqualFold(s.GeoRedundantBackup, "Disabled"):
		s.GeoRedundantBackup = "Disabled"
	default:
		return invalidValue("properties.backup.geoRedundantBackup", "The value '%s' is not valid for geoRedundantBackup; use Enabled or Disabled.", s.GeoRedundantBackup)
	}
	s.PublicNetworkAccess = "Enabled"
	if p.Network != nil {
		if p.Network.DelegatedSubnetResourceID != nil && *p.Network.DelegatedSubnetResourceID != "" {
			return invalidValue("properties.network.delegatedSubnetResourceId",
				"Private access (virtual network integration) is not available on this host; servers listen on the host's own address.")
		}
		if p.Network.PublicNetworkAccess != nil {
			s.PublicNetworkAccess = *p.Network.PublicNetworkAccess
		}
	}
	if s.PublicNetworkAccess != "Enabled" && s.PublicNetworkAccess != "Disabled" {
		return invalidValue("properties.network.publicNetworkAccess", "The value '%s' is not valid for publicNetworkAccess; use Enabled or Disabled.", s.PublicNetworkAccess)
	}
	s.HAMode = "Disabled"
	if p.HighAvailability != nil && p.HighAvailability.Mode != nil && !strings.EqualFold(*p.HighAvailability.Mode, "Disabled") {
		return invalidValue("properties.highAvailability.mode",
			"High availability mode '%s' is not available on this single-host deployment; use Disabled.", *p.HighAvailability.Mode)
	}
	if p.AvailabilityZone != nil {
		s.AvailabilityZone = *p.AvailabilityZone
	}
	if err := ValidateTagsForServer(body.Tags); err != nil {
		return err
	}
	s.Tags = body.Tags
	return nil
}

func validateSKU(sku *SKU) error {
	tier, info, ok := lookupSKU(sku.Name)
	if !ok {
		return invalidValue("sku.name", "The SKU '%s' is not supported. Supported SKUs: %s.", sku.Name, strings.Join(allSKUs(), ", "))
	}
	if sku.Tier != "" && !strings.EqualFold(sku.Tier, tier) {
		return invalidValue("sku.tier", "The SKU '%s' belongs to the %s tier, not to '%s'. Tiers: %s.", info.Name, tier, sku.Tier, strings.Join(tierNames(), ", "))
	}
	return nil
}

func allSKUs() []string {
	var out []string
	for _, t := range tierNames() {
		for _, s := range skuCatalog[t] {
			out = append(out, s.Name)
		}
	}
	return out
}

func validateStorage(gb int, autoGrow string) error {
	if !slices.Contains(StorageSizesGB, gb) {
		var allowed []string
		for _, v := range StorageSizesGB {
			allowed = append(allowed, strconv.Itoa(v))
		}
		return invalidValue("properties.storage.storageSizeGB",
			"The storage size %d GiB is not supported. Allowed values: %s.", gb, strings.Join(allowed, ", "))
	}
	if autoGrow != "Enabled" && autoGrow != "Disabled" {
		return invalidValue("properties.storage.autoGrow", "The value '%s' is not valid for autoGrow; use Enabled or Disabled.", autoGrow)
	}
	return nil
}

func validateRetention(days int) error {
	if days < 7 || days > 35 {
		return invalidValue("properties.backup.backupRetentionDays",
			"The backup retention period %d is out of range: it must be between 7 and 35 days.", days)
	}
	return nil
}

// ValidateTagsForServer applies Azure's tag limits.
func ValidateTagsForServer(tags map[string]string) error {
	if len(tags) > 50 {
		return arm.BadRequest("InvalidTag", "A resource can have at most 50 tags; %d were given.", len(tags))
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || len(v) > 256 || strings.ContainsAny(k, "<>%&\\?/") {
			return arm.BadRequest("InvalidTagNameCharacters", "The tag '%s' is invalid: names are 1 to 512 characters without <>%%&\\?/, values at most 256.", k)
		}
	}
	return nil
}

// conflictOnPut compares a PUT for an existing server with what it is: ARM's
// PropertyChangeNotAllowed for each create-only property the request would change.
func conflictOnPut(s *Server, body *serverBody) error {
	p := body.Properties
	change := func(prop string) error {
		e := arm.BadRequest("PropertyChangeNotAllowed", "Changing property '%s' is not allowed.", prop)
		e.Target = prop
		return e
	}
	if body.Location != nil {
		if reg, ok := regions.Lookup(*body.Location); !ok || reg.Name != s.Location {
			return change("location")
		}
	}
	if p == nil {
		return nil
	}
	if p.AdministratorLogin != nil && *p.AdministratorLogin != s.AdministratorLogin {
		return change("properties.administratorLogin")
	}
	if p.Version != nil && *p.Version != "" && *p.Version != s.Version {
		return change("properties.version")
	}
	if p.Backup != nil && p.Backup.GeoRedundantBackup != nil && !strings.EqualFold(*p.Backup.GeoRedundantBackup, s.GeoRedundantBackup) {
		return change("properties.backup.geoRedundantBackup")
	}
	if p.DataEncryption != nil && p.DataEncryption.Type != "" && normalizeEncType(p.DataEncryption.Type) != s.Encryption.Type {
		return change("properties.dataEncryption.type")
	}
	return nil
}

func normalizeEncType(t string) string {
	switch {
	case strings.EqualFold(t, EncSystemManaged), strings.EqualFold(t, encSystemAssignedLegacy):
		return EncSystemManaged
	case strings.EqualFold(t, EncAzureKeyVault):
		return EncAzureKeyVault
	}
	return t
}
