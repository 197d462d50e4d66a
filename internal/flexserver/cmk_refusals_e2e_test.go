package flexserver_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/testkit"
)

// seedKeyNameNotFound is the seed document's message for a missing key or missing permission.
func seedKeyNameNotFound(keyURI string) string {
	return fmt.Sprintf("The operation could not be completed because the Azure Key Vault Key name '%s' does not exist or User Assigned Identity does not have Get access to the Key (/azure/postgresql/flexible-server/concepts-data-encryption#requirements-for-configuring-data-encryption-for-azure-database-for-postgresql-flexible-server).", keyURI)
}

// cmkBody is a raw create request: a primary key and identity, optionally a geo key and
// identity (geo-redundant backup on), and the identities listed in the identity block.
func cmkBody(primaryKey, primaryID, geoKey, geoID string, listed ...string) map[string]any {
	enc := map[string]any{"type": "AzureKeyVault", "primaryKeyURI": primaryKey, "primaryUserAssignedIdentityId": primaryID}
	backup := "Disabled"
	if geoKey != "" || geoID != "" {
		enc["geoBackupKeyURI"], enc["geoBackupUserAssignedIdentityId"] = geoKey, geoID
		backup = "Enabled"
	}
	uai := map[string]any{}
	for _, id := range listed {
		uai[id] = map[string]any{}
	}
	return map[string]any{"location": "eastus", "sku": map[string]any{"name": "Standard_B1ms", "tier": "Burstable"},
		"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": uai},
		"properties": map[string]any{"administratorLogin": "pgadmin", "administratorLoginPassword": adminPassword, "version": "15",
			"storage": map[string]any{"storageSizeGB": 32}, "backup": map[string]any{"geoRedundantBackup": backup},
			"createMode": "Create", "dataEncryption": enc}}
}

// refusals is the negative matrix: every request is refused at once with an ARM error that
// says what is wrong, and nothing is created — no server record, no name taken, no files, no
// data-plane process.
func (s *cmkSuite) refusals(t *testing.T) {
	p, g, wo, na := s.primary, s.geo, s.wrapOnly, s.noAccess
	missingID := strings.Replace(p.id, "id-primary", "id-missing", 1)
	vaultHost := s.pinnedV1[:strings.Index(s.pinnedV1, "/keys/")]
	noVault := strings.Replace(s.pinnedV1, "cmk-east.", "cmk-nowhere.", 1)
	noKey := vaultHost + "/keys/nokey"
	noVersion := base(s.pinnedV1) + "/0123456789abcdef0123456789abcdef"

	// The key store refuses EC and 1024-bit keys (it holds RSA 2048/3072/4096 only), so no
	// server can be pointed at one: the only way left is a key that does not exist.
	east := s.keyClient(vaultHost, s.cred)
	_, err := east.CreateKey(s.ctx, "ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	if re := (*azcore.ResponseError)(nil); !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "BadParameter" {
		t.Fatalf("EC key: %v", err)
	}
	_, err = east.CreateKey(s.ctx, "small", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](1024)}, nil)
	if re := (*azcore.ResponseError)(nil); !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "BadParameter" {
		t.Fatalf("1024-bit key: %v", err)
	}

	cases := []struct {
		name   string
		api    string
		body   map[string]any
		status int
		code   string
		msg    string // substring, or the exact message when exact
		exact  bool
	}{
		{"key in another region", "", cmkBody(s.centralKey, p.id, "", "", p.id), 400, "InvalidParameterValue",
			"is in region 'centralus'; it must be in the server's region, 'eastus'", false},
		{"geo key not in the paired region", "", cmkBody(s.pinnedV1, p.id, s.centralKey, g.id, p.id, g.id), 400, "InvalidParameterValue",
			"it must be in the server's paired region (where geo-redundant backups are stored), 'westus'", false},
		{"geo key in the server's own region", "", cmkBody(s.pinnedV1, p.id, s.autoNewest, g.id, p.id, g.id), 400, "InvalidParameterValue",
			"paired region", false},
		{"1024-bit key (refused by the key store, so absent)", "", cmkBody(vaultHost+"/keys/small", p.id, "", "", p.id), 400,
			"AzureKeyVaultKeyNameNotFound", seedKeyNameNotFound(vaultHost + "/keys/small"), true},
		{"disabled key", "", cmkBody(s.disabledKey, p.id, "", "", p.id), 400, "InvalidParameterValue", "the key is disabled", false},
		{"expired key", "", cmkBody(s.expiredKey, p.id, "", "", p.id), 400, "InvalidParameterValue", "the key expired at", false},
		{"key not yet active", "", cmkBody(s.notYetKey, p.id, "", "", p.id), 400, "InvalidParameterValue", "the key is not active until", false},
		{"key that may not wrap", "", cmkBody(s.signOnlyKey, p.id, "", "", p.id), 400, "InvalidParameterValue", "does not permit the wrapKey operation", false},
		{"vault without purge protection", "", cmkBody(s.noPurgeKey, p.id, "", "", p.id), 400, "InvalidParameterValue",
			"The Key Vault 'cmk-nopp' must have soft delete and purge protection enabled", false},
		{"managed HSM without purge protection", "", cmkBody(s.noPurgeHSMKey, p.id, "", "", p.id), 400, "InvalidParameterValue",
			"The Managed HSM 'cmkhsm-nopp' must have soft delete and purge protection enabled", false},
		{"identity without unwrapKey", "", cmkBody(s.pinnedV1, wo.id, "", "", wo.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(s.pinnedV1), true},
		{"identity without any access", "", cmkBody(s.pinnedV1, na.id, "", "", na.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(s.pinnedV1), true},
		{"identity without a role on the managed HSM", "", cmkBody(s.hsmKey, na.id, "", "", na.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(s.hsmKey), true},
		{"geo identity without access to the geo key", "", cmkBody(s.pinnedV1, p.id, s.geoKey, na.id, p.id, na.id), 400,
			"AzureKeyVaultKeyNameNotFound", seedKeyNameNotFound(s.geoKey), true},
		{"missing identity", "", cmkBody(s.pinnedV1, missingID, "", "", missingID), 400, "UserAssignedIdentityNotFound",
			"The user-assigned managed identity '" + missingID + "' does not exist.", false},
		{"identity not listed in the identity block", "", cmkBody(s.pinnedV1, p.id, "", ""), 400, "IdentityNotAssigned",
			"must also be listed in identity.userAssignedIdentities", false},
		{"same identity for primary and geo", "", cmkBody(s.pinnedV1, p.id, s.geoKey, strings.ToUpper(p.id), p.id), 400,
			"CMKInvalidEncryptionParameters", "Primary user assigned identity and backup identity cannot be same.", false},
		{"geo-redundant backup without a geo key", "", cmkBody(s.pinnedV1, p.id, "", g.id, p.id, g.id), 400, "CMKInvalidEncryptionParameters",
			"The input server encryption parameters are invalid. Geo-Backup Encryption user assigned identity and key is required to encrypt Geo-Redundant CMK enabled server. Please retry operation with valid input parameters. ", true},
		{"geo key without geo-redundant backup", "", func() map[string]any {
			b := cmkBody(s.pinnedV1, p.id, s.geoKey, g.id, p.id, g.id)
			b["properties"].(map[string]any)["backup"] = map[string]any{"geoRedundantBackup": "Disabled"}
			return b
		}(), 400, "GeoRedundantBackupNotEnabled",
			"Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.", true},
		{"primary key without identity", "", cmkBody(s.pinnedV1, "", "", "", p.id), 400, "CMKInvalidEncryptionParameters",
			"needs both primaryKeyURI and primaryUserAssignedIdentityId", false},
		{"malformed key URI", "", cmkBody("https://cmk-east.vault.localhost/secrets/pinned", p.id, "", "", p.id), 400,
			"InvalidParameterValue", "is not a key identifier", false},
		{"key URI that is not https", "", cmkBody("http://cmk-east.vault.localhost/keys/pinned", p.id, "", "", p.id), 400,
			"InvalidParameterValue", "is not a key identifier", false},
		{"key URI without the key store's port", "", cmkBody(withoutPort(s.pinnedV1), p.id, "", "", p.id), 400,
			"InvalidParameterValue", "but not its address: key identifiers of this key store start with https://cmk-east.vault.localhost:", false},
		{"key in a vault that does not exist", "", cmkBody(noVault, p.id, "", "", p.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(noVault), true},
		{"key that does not exist", "", cmkBody(noKey, p.id, "", "", p.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(noKey), true},
		{"key version that does not exist", "", cmkBody(noVersion, p.id, "", "", p.id), 400, "AzureKeyVaultKeyNameNotFound",
			seedKeyNameNotFound(noVersion), true},
		{"geo-redundant CMK on api-version 2022-12-01", "2022-12-01", cmkBody(s.pinnedV1, p.id, s.geoKey, g.id, p.id, g.id), 400,
			"CMKNotSupportedForGeoRedundantBackupEnabledServer", "Customer Managed Key encryption is not supported for Geo redundant backup enabled server.", true},
	}
	// A key store in another subscription cannot be set up here: the daemon has one
	// subscription and no API creates another. TestCheckCustomerKeyStore (encryption_test.go)
	// covers that refusal with a key-store directory that reports one.
	dirs := len(serverDirs(t, s.d))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := c.api
			if api == "" {
				api = "2025-08-01"
			}
			r := s.d.ARM(t, http.MethodPut, serverPath(s.d, "rg", "pg-refused")+"?api-version="+api, c.body)
			if r.Status != c.status || r.ErrorCode() != c.code {
				t.Fatalf("%d %s, want %d %s: %s", r.Status, r.ErrorCode(), c.status, c.code, r.Raw)
			}
			t.Logf("%d %s: %s", r.Status, r.ErrorCode(), r.ErrorMessage())
			if c.exact && r.ErrorMessage() != c.msg || !c.exact && !strings.Contains(r.ErrorMessage(), c.msg) {
				t.Fatalf("message %q\nwant %s %q", r.ErrorMessage(), map[bool]string{true: "exactly", false: "containing"}[c.exact], c.msg)
			}
			if got := s.d.ARM(t, http.MethodGet, serverPath(s.d, "rg", "pg-refused")+"?api-version=2025-08-01", nil); got.Status != 404 {
				t.Fatalf("a refused create left a server: %d %s", got.Status, got.Raw)
			}
		})
	}
	name := s.d.ARM(t, http.MethodPost, "/subscriptions/"+s.sub+"/providers/Microsoft.DBforPostgreSQL/checkNameAvailability?api-version=2025-08-01",
		map[string]any{"name": "pg-refused", "type": "Microsoft.DBforPostgreSQL/flexibleServers"})
	if name.Body["nameAvailable"] != true {
		t.Fatalf("the name of refused creates is taken: %s", name.Raw)
	}
	if n := len(serverDirs(t, s.d)); n != dirs {
		t.Fatalf("refused creates left %d server directories", n-dirs)
	}
	if mounts := testkit.MountsUnder(t, s.runDir); len(mounts) > 0 {
		t.Fatalf("refused creates left mounts: %v", mounts)
	}
}

// withoutPort drops the port from a key id's host, as a user copying only the host would.
func withoutPort(kid string) string {
	rest := strings.TrimPrefix(kid, "https://")
	host, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return "https://" + host + "/" + path
}
