package cli

import "strings"

// Customer-managed keys ("bring your own key") on the CLI side: how --identity and
// --backup-identity are resolved, which combinations of the four flags are refused before any
// call, and what the request then carries. The rules and texts are those of az's "mid"
// generation (CLI 2.5x–2.7x), which the seed document quotes.

// az's texts, verbatim.
const (
	msgInvalidIdentity      = "Invalid identity name or ID."
	msgIdentityKeyTogether  = "User assigned identity and keyvault key need to be provided together. Please provide --identity and --key together."
	msgBackupKeyTogether    = "User assigned identity and keyvault key need to be provided together. Please provide --backup-identity and --backup-key together."
	msgSameIdentity         = "Primary user assigned identity and backup identity cannot be same. Please provide different identities for --identity and --backup-identity."
	msgNotCreatedWithCMK    = "You cannot enable data encryption on a server that was not created with data encryption."
	msgGeoNotEnabled        = "Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key."
	msgGeoNeedsBothKeys     = "Please provide both primary as well as geo-back user assigned identity and keyvault key to enable Data encryption for geo-redundant backup."
	msgGeoRegionUnsupported = "The region of the server does not support geo-restore feature."
)

const identityProviderType = "Microsoft.ManagedIdentity/userAssignedIdentities"

// resolveIdentity is az's _validate_identity: an ARM resource id is taken verbatim, a bare
// name becomes the id of that user-assigned identity in the given group of the current
// subscription, anything else is refused.
func resolveIdentity(value, sub, group string) (string, error) {
	if isResourceID(value) {
		return value, nil
	}
	if value == "" || strings.Contains(value, "/") {
		return "", &UserError{Msg: msgInvalidIdentity}
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/" + identityProviderType + "/" + value, nil
}

// isResourceID is azure-mgmt-core's is_valid_resource_id for resource ids:
// /subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}[/{type}/{name}...].
func isResourceID(s string) bool {
	if !strings.HasPrefix(s, "/") {
		return false
	}
	segs := strings.Split(strings.TrimSuffix(s[1:], "/"), "/")
	if len(segs) < 8 || len(segs)%2 != 0 {
		return false
	}
	for _, seg := range segs {
		if seg == "" {
			return false
		}
	}
	return strings.EqualFold(segs[0], "subscriptions") && strings.EqualFold(segs[2], "resourceGroups") &&
		strings.EqualFold(segs[4], "providers")
}

// byokArgs are the data-encryption flags as given (identities already resolved); "" is absent.
type byokArgs struct {
	Identity, Key, BackupIdentity, BackupKey string
}

func (b byokArgs) any() bool {
	return b.Identity != "" || b.Key != "" || b.BackupIdentity != "" || b.BackupKey != ""
}

// validateBYOK is az's pg_byok_validator. geo is the geo-redundant backup setting the server
// will have or has ("Enabled", "Disabled", or "" for not given); current is the server an
// update acts on, nil on create. It runs before anything is sent.
func validateBYOK(b byokArgs, geo string, current *pgServer) error {
	fail := func(msg string) error { return &UserError{Msg: msg} }
	if err := checkBYOKPairs(b); err != nil {
		return err
	}
	if current != nil && !current.isCMK() && (b.Key != "" || b.BackupKey != "") {
		return fail(msgNotCreatedWithCMK)
	}
	if geo == "" || strings.EqualFold(geo, "Disabled") {
		if b.BackupIdentity != "" || b.BackupKey != "" {
			return fail(msgGeoNotEnabled)
		}
		return nil
	}
	if current == nil && (b.Key == "") != (b.BackupKey == "") {
		return fail(msgGeoNeedsBothKeys)
	}
	if current != nil && (b.Identity == "") != (b.BackupIdentity == "") {
		// Only one side changes: the other keeps the server's current identity, and the two
		// must still differ.
		primary, geoID := b.Identity, b.BackupIdentity
		if de := current.Properties.DataEncryption; de != nil {
			if primary == "" {
				primary = de.PrimaryUserAssignedIdentityID
			}
			if geoID == "" {
				geoID = de.GeoBackupUserAssignedIdentityID
			}
		}
		if strings.EqualFold(primary, geoID) {
			return fail(msgSameIdentity)
		}
	}
	return nil
}

// checkBYOKPairs is the part of validateBYOK that needs nothing but the flags: each identity
// goes with its key, and the two identities differ.
func checkBYOKPairs(b byokArgs) error {
	if (b.Identity == "") != (b.Key == "") {
		return &UserError{Msg: msgIdentityKeyTogether}
	}
	if (b.BackupIdentity == "") != (b.BackupKey == "") {
		return &UserError{Msg: msgBackupKeyTogether}
	}
	if b.Identity != "" && b.BackupIdentity != "" && strings.EqualFold(b.Identity, b.BackupIdentity) {
		return &UserError{Msg: msgSameIdentity}
	}
	return nil
}

// buildIdentityAndDataEncryption is az's build_identity_and_data_encryption: the identity
// block and properties.dataEncryption, only when both the primary identity and key are known;
// otherwise both nil (create: the service's SystemManaged default; update: unchanged). On an
// update that passes only the backup flags, the primary pair is copied from the server so that
// the PATCH still carries a complete block.
func buildIdentityAndDataEncryption(b byokArgs, current *pgServer) (identity, dataEncryption map[string]any) {
	primaryID, primaryKey := b.Identity, b.Key
	if current != nil && b.Identity == "" && b.BackupIdentity != "" && current.Properties.DataEncryption != nil {
		primaryID = current.Properties.DataEncryption.PrimaryUserAssignedIdentityID
		primaryKey = current.Properties.DataEncryption.PrimaryKeyURI
	}
	if primaryID == "" || primaryKey == "" {
		return nil, nil
	}
	identities := map[string]any{primaryID: map[string]any{}}
	dataEncryption = map[string]any{
		"type":                          "AzureKeyVault",
		"primaryUserAssignedIdentityId": primaryID,
		"primaryKeyURI":                 primaryKey,
	}
	if b.BackupIdentity != "" {
		identities[b.BackupIdentity] = map[string]any{}
		dataEncryption["geoBackupUserAssignedIdentityId"] = b.BackupIdentity
	}
	if b.BackupKey != "" {
		dataEncryption["geoBackupKeyURI"] = b.BackupKey
	}
	return map[string]any{"type": "UserAssigned", "userAssignedIdentities": identities}, dataEncryption
}

// resolveBYOKIdentities resolves --identity and --backup-identity in the server's group.
func resolveBYOKIdentities(b *byokArgs, sub, group string) error {
	for _, p := range []*string{&b.Identity, &b.BackupIdentity} {
		if *p == "" {
			continue
		}
		id, err := resolveIdentity(*p, sub, group)
		if err != nil {
			return err
		}
		*p = id
	}
	return nil
}
