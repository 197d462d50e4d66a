package flexserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/regions"
)

// IdentityInfo is what the provider needs of a user-assigned managed identity.
type IdentityInfo struct {
	ID          arm.ResourceID
	PrincipalID string
	ClientID    string
	Location    string
}

// ErrIdentityNotFound is returned by an IdentityDirectory for an identity that does not exist.
var ErrIdentityNotFound = errors.New("identity not found")

// IdentityDirectory resolves user-assigned identities (Microsoft.ManagedIdentity).
type IdentityDirectory interface {
	LookupIdentity(ctx context.Context, id arm.ResourceID) (IdentityInfo, error)
}

// KeyStoreInfo describes a key store (a vault or a Managed HSM) that holds customer keys.
type KeyStoreInfo struct {
	ID              arm.ResourceID
	Kind            string // "Key Vault" or "Managed HSM"
	Location        string
	SoftDelete      bool
	PurgeProtection bool
	// URI is where the key store answers (https://{name}.{suffix}:{port}).
	URI string
}

// ErrKeyStoreNotFound is returned by a KeyStoreDirectory for a URL no key store answers to.
var ErrKeyStoreNotFound = errors.New("key store not found")

// KeyStoreDirectory finds the key store behind a vault URL (https://{name}.{suffix}[:port]).
type KeyStoreDirectory interface {
	LookupKeyStore(ctx context.Context, vaultURL string) (KeyStoreInfo, error)
}

// IdentityTokens issues a key-store token for a managed identity's principal: pgflex's data
// plane acting as the server's identity, as Azure's service does.
type IdentityTokens func(ctx context.Context, principalID, vaultURL string) (string, error)

// keyNameNotFound is the seed document's error for a missing key or a missing permission.
func keyNameNotFound(keyURI string) *arm.Error {
	return arm.BadRequest("AzureKeyVaultKeyNameNotFound",
		"The operation could not be completed because the Azure Key Vault Key name '%s' does not exist or User Assigned Identity does not have Get access to the Key (/azure/postgresql/flexible-server/concepts-data-encryption#requirements-for-configuring-data-encryption-for-azure-database-for-postgresql-flexible-server).",
		keyURI)
}

// keyStoreUnreachable is answered when the key store could not be asked (not a refusal).
func keyStoreUnreachable(keyURI string, err error) *arm.Error {
	return arm.Errorf(http.StatusServiceUnavailable, "AzureKeyVaultConnectionFailed",
		"The key store holding '%s' could not be reached to validate the key; retry the operation. (%v)", keyURI, err)
}

// customerWrapper wraps with keyURI as the identity (which must be assigned to srv).
func (s *Service) customerWrapper(srv *Server, keyURI, identityID string) (dataenc.CustomerManaged, error) {
	ref, ok := srv.Identities[strings.ToLower(identityID)]
	if !ok {
		return dataenc.CustomerManaged{}, arm.BadRequest("IdentityNotAssigned",
			"The identity '%s' used for data encryption is not assigned to server '%s'; list it in identity.userAssignedIdentities.", identityID, srv.Name)
	}
	principal := ref.PrincipalID
	return dataenc.CustomerManaged{HTTP: s.keyHTTP, KeyURI: keyURI, Token: func(ctx context.Context, vaultURL string) (string, error) {
		return s.tokens(ctx, principal, vaultURL)
	}}, nil
}

// keyRole is the primary key or the geo-backup key.
type keyRole struct {
	name           string // for messages
	uriTarget      string
	identityTarget string
}

var (
	primaryRole = keyRole{"primary", "properties.dataEncryption.primaryKeyURI", "properties.dataEncryption.primaryUserAssignedIdentityId"}
	geoRole     = keyRole{"geo-backup", "properties.dataEncryption.geoBackupKeyURI", "properties.dataEncryption.geoBackupUserAssignedIdentityId"}
)

// checkCustomerKey validates a key and identity for srv as the service does before it uses
// them: the key store must be in the right subscription and region with soft delete and purge
// protection; the identity must be able to get the key, which must be an enabled RSA key of an
// accepted size inside its validity window. It returns the wrapper to use.
func (s *Service) checkCustomerKey(ctx context.Context, srv *Server, keyURI, identityID string, role keyRole) (dataenc.CustomerManaged, error) {
	vaultURL, _, _, err := dataenc.ParseKeyID(keyURI)
	if err != nil {
		// ParseKeyID says "malformed key identifier: '{uri}' {why}": keep the why, once.
		why := strings.TrimPrefix(err.Error(), fmt.Sprintf("%v: '%s' ", dataenc.ErrMalformedKeyID, keyURI))
		return dataenc.CustomerManaged{}, invalidValue(role.uriTarget,
			"The %s key URI '%s' is not a key identifier: it %s. Use the key's id (kid) as the key store reports it: https://{vault or managed HSM host}/keys/{name}[/{version}].", role.name, keyURI, why)
	}
	ks, err := s.keyStores.LookupKeyStore(ctx, vaultURL)
	if errors.Is(err, ErrKeyStoreNotFound) {
		return dataenc.CustomerManaged{}, keyNameNotFound(keyURI)
	}
	if err != nil {
		return dataenc.CustomerManaged{}, err
	}
	if ks.URI != "" && !strings.EqualFold(vaultURL, ks.URI) {
		// The host names a key store of ours but not where it answers (typically the port is
		// missing): every call would fail, and retrying would not help.
		return dataenc.CustomerManaged{}, invalidValue(role.uriTarget,
			"The %s key URI '%s' names %s '%s' but not its address: key identifiers of this key store start with %s. Use the key's id (kid) as the key store reports it.",
			role.name, keyURI, ks.Kind, ks.ID.Name(), ks.URI)
	}
	if !strings.EqualFold(ks.ID.SubscriptionID, srv.SubscriptionID) {
		return dataenc.CustomerManaged{}, invalidValue(role.uriTarget,
			"The %s '%s' holding the %s key is in subscription '%s'; it must be in the server's subscription '%s'.",
			ks.Kind, ks.ID.Name(), role.name, ks.ID.SubscriptionID, srv.SubscriptionID)
	}
	wantRegion := srv.Location
	if role == geoRole {
		wantRegion, _ = regions.PairOf(srv.Location)
	}
	if ks.Location != wantRegion {
		where := "the server's region"
		if role == geoRole {
			where = "the server's paired region (where geo-redundant backups are stored)"
		}
		return dataenc.CustomerManaged{}, invalidValue(role.uriTarget,
			"The %s '%s' holding the %s key is in region '%s'; it must be in %s, '%s'.", ks.Kind, ks.ID.Name(), role.name, ks.Location, where, wantRegion)
	}
	if !ks.SoftDelete || !ks.PurgeProtection {
		return dataenc.CustomerManaged{}, invalidValue(role.uriTarget,
			"The %s '%s' must have soft delete and purge protection enabled to hold a data encryption key. Enable purge protection on it (it cannot be turned off again) and retry.", ks.Kind, ks.ID.Name())
	}
	w, err := s.customerWrapper(srv, keyURI, identityID)
	if err != nil {
		return w, err
	}
	info, err := w.Get(ctx)
	if err != nil {
		if dataenc.IsRefusal(err) {
			return w, keyNameNotFound(keyURI)
		}
		return w, keyStoreUnreachable(keyURI, err)
	}
	if why := info.Usable(s.now()); why != "" {
		return w, invalidValue(role.uriTarget, "The %s key '%s' cannot be used for data encryption: %s.", role.name, keyURI, why)
	}
	return w, nil
}

// wrapRoundTrip wraps dek with w and unwraps it again, so that a missing wrapKey or unwrapKey
// permission is found before the key is relied on.
func wrapRoundTrip(ctx context.Context, w dataenc.Wrapper, dek []byte, keyURI string) (*dataenc.Envelope, error) {
	env, err := w.Wrap(ctx, dek)
	if err != nil {
		if dataenc.IsRefusal(err) {
			return nil, keyNameNotFound(keyURI)
		}
		return nil, keyStoreUnreachable(keyURI, err)
	}
	back, err := w.Unwrap(ctx, env)
	if err != nil {
		if dataenc.IsRefusal(err) {
			return nil, keyNameNotFound(keyURI)
		}
		return nil, keyStoreUnreachable(keyURI, err)
	}
	defer clear(back)
	if !bytes.Equal(back, dek) {
		return nil, fmt.Errorf("key %s unwrapped a different DEK than it wrapped", keyURI)
	}
	return env, nil
}

// resolveIdentities turns the request's identity block into references, checking that each
// identity exists. Null entries (removals) are returned separately.
func (s *Service) resolveIdentities(ctx context.Context, body *identityBody) (add map[string]IdentityRef, remove []string, err error) {
	add = map[string]IdentityRef{}
	if body == nil {
		return add, nil, nil
	}
	if t := strings.ToLower(body.Type); t != "" && t != "userassigned" && t != "none" && t != "systemassigned,userassigned" {
		return nil, nil, invalidValue("identity.type", "The identity type '%s' is not supported; flexible servers use UserAssigned identities for data encryption.", body.Type)
	}
	none := strings.EqualFold(body.Type, identityTypeNone)
	for raw, v := range body.UserAssignedIdentities {
		if v == nil {
			remove = append(remove, raw)
			continue
		}
		if none {
			return nil, nil, invalidValue("identity.userAssignedIdentities",
				"The identity type None removes every user-assigned identity; it cannot assign '%s' at the same time. Use type UserAssigned to assign identities.", raw)
		}
		id, perr := arm.ParseResourceID(raw)
		if perr != nil || !id.IsType("Microsoft.ManagedIdentity/userAssignedIdentities") {
			return nil, nil, invalidValue("identity.userAssignedIdentities", "'%s' is not the resource id of a user-assigned managed identity.", raw)
		}
		info, lerr := s.identities.LookupIdentity(ctx, id)
		if errors.Is(lerr, ErrIdentityNotFound) {
			return nil, nil, arm.BadRequest("UserAssignedIdentityNotFound",
				"The user-assigned managed identity '%s' does not exist. Create it (pgflex identity create) or pass an existing one.", raw)
		}
		if lerr != nil {
			return nil, nil, lerr
		}
		add[strings.ToLower(raw)] = IdentityRef{ID: raw, PrincipalID: info.PrincipalID, ClientID: info.ClientID, location: info.Location}
	}
	return add, remove, nil
}

// encryptionRequest validates a create request's dataEncryption block for a CMK server, fills
// srv.Encryption and srv.Identities, and returns the wrappers for the primary and geo keys.
func (s *Service) checkCMKCreate(ctx context.Context, srv *Server, body *serverBody, apiVersion string) (primary dataenc.Wrapper, geo dataenc.Wrapper, err error) {
	enc := body.Properties.DataEncryption
	geoEnabled := srv.GeoRedundantBackup == "Enabled"
	if !shapeOf(apiVersion).geoBackupEncryption && geoEnabled {
		return nil, nil, arm.BadRequest("CMKNotSupportedForGeoRedundantBackupEnabledServer",
			"Customer Managed Key encryption is not supported for Geo redundant backup enabled server.")
	}
	if enc.PrimaryKeyURI == "" || enc.PrimaryIdentityID == "" {
		return nil, nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"The input server encryption parameters are invalid. A customer-managed key needs both primaryKeyURI and primaryUserAssignedIdentityId. Please retry operation with valid input parameters.")
	}
	if geoEnabled && (enc.GeoKeyURI == "" || enc.GeoIdentityID == "") {
		return nil, nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"The input server encryption parameters are invalid. Geo-Backup Encryption user assigned identity and key is required to encrypt Geo-Redundant CMK enabled server. Please retry operation with valid input parameters. ")
	}
	if !geoEnabled && (enc.GeoKeyURI != "" || enc.GeoIdentityID != "") {
		return nil, nil, arm.BadRequest("GeoRedundantBackupNotEnabled",
			"Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.")
	}
	if geoEnabled && strings.EqualFold(enc.PrimaryIdentityID, enc.GeoIdentityID) {
		return nil, nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"Primary user assigned identity and backup identity cannot be same. Please provide different identities for primaryUserAssignedIdentityId and geoBackupUserAssignedIdentityId.")
	}
	add, _, err := s.resolveIdentities(ctx, body.Identity)
	if err != nil {
		return nil, nil, err
	}
	for _, idv := range []string{enc.PrimaryIdentityID, enc.GeoIdentityID} {
		if idv == "" {
			continue
		}
		if _, ok := add[strings.ToLower(idv)]; !ok {
			return nil, nil, arm.BadRequest("IdentityNotAssigned",
				"The identity '%s' used for data encryption must also be listed in identity.userAssignedIdentities.", idv)
		}
	}
	srv.Identities = add
	srv.Encryption = Encryption{Type: EncAzureKeyVault, PrimaryKeyURI: enc.PrimaryKeyURI, PrimaryIdentityID: enc.PrimaryIdentityID}
	pw, err := s.checkCustomerKey(ctx, srv, enc.PrimaryKeyURI, enc.PrimaryIdentityID, primaryRole)
	if err != nil {
		return nil, nil, err
	}
	srv.Encryption.PrimaryKeyStatus = KeyValid
	if geoEnabled {
		srv.Encryption.GeoKeyURI, srv.Encryption.GeoIdentityID = enc.GeoKeyURI, enc.GeoIdentityID
		gw, err := s.checkCustomerKey(ctx, srv, enc.GeoKeyURI, enc.GeoIdentityID, geoRole)
		if err != nil {
			return nil, nil, err
		}
		srv.Encryption.GeoKeyStatus = KeyValid
		geo = gw
	}
	s.warnIdentityRegions(srv)
	return pw, geo, nil
}

// warnIdentityRegions logs identities outside the region they serve: accepted, as Azure does,
// but not recommended.
func (s *Service) warnIdentityRegions(srv *Server) {
	pair, _ := regions.PairOf(srv.Location)
	for _, c := range []struct{ id, region string }{{srv.Encryption.PrimaryIdentityID, srv.Location}, {srv.Encryption.GeoIdentityID, pair}} {
		if ref, ok := srv.Identities[strings.ToLower(c.id)]; ok && c.id != "" && ref.location != "" && ref.location != c.region {
			s.log.Warn("identity used for data encryption is outside the region it serves", "server", srv.Name,
				"identity", c.id, "identity_region", ref.location, "recommended_region", c.region)
		}
	}
}

// encryptionUpdate is a validated change of a CMK server's keys: the new configuration and the
// DEKs rewrapped under the new keys.
type encryptionUpdate struct {
	enc            Encryption
	envelope       *dataenc.Envelope
	backupEnvelope *dataenc.Envelope
	geoEnvelope    *dataenc.Envelope
}

// prepareEncryptionUpdate validates a PATCH of dataEncryption on a CMK server (identities in
// the request are already assigned to cur) and rewraps the DEKs under the new keys. Nothing is
// stored here: the caller commits the result.
func (s *Service) prepareEncryptionUpdate(ctx context.Context, cur *Server, req *Encryption) (*encryptionUpdate, error) {
	if normalizeEncType(req.Type) == EncSystemManaged || (req.Type == "" && req.PrimaryKeyURI == "" && req.GeoKeyURI == "" && req.PrimaryIdentityID == "" && req.GeoIdentityID == "") {
		return nil, nil
	}
	if !cur.isCMK() {
		return nil, arm.BadRequest("DataEncryptionTypeChangeNotAllowed",
			"You cannot enable data encryption on a server that was not created with data encryption. The server '%s' uses the service-managed key; to use a customer-managed key, restore a backup into a new server configured with it.", cur.Name)
	}
	next := cur.Encryption
	geoEnabled := cur.GeoRedundantBackup == "Enabled"
	if (req.GeoKeyURI != "" || req.GeoIdentityID != "") && !geoEnabled {
		return nil, arm.BadRequest("GeoRedundantBackupNotEnabled",
			"Geo-redundant backup is not enabled. You cannot provide Geo-location user assigned identity and keyvault key.")
	}
	if (req.PrimaryKeyURI == "") != (req.PrimaryIdentityID == "") {
		return nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"User assigned identity and keyvault key need to be provided together: set both primaryUserAssignedIdentityId and primaryKeyURI.")
	}
	if (req.GeoKeyURI == "") != (req.GeoIdentityID == "") {
		return nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"User assigned identity and keyvault key need to be provided together: set both geoBackupUserAssignedIdentityId and geoBackupKeyURI.")
	}
	if req.PrimaryKeyURI != "" {
		next.PrimaryKeyURI, next.PrimaryIdentityID = req.PrimaryKeyURI, req.PrimaryIdentityID
	}
	if req.GeoKeyURI != "" {
		next.GeoKeyURI, next.GeoIdentityID = req.GeoKeyURI, req.GeoIdentityID
	}
	if geoEnabled && strings.EqualFold(next.PrimaryIdentityID, next.GeoIdentityID) {
		return nil, arm.BadRequest("CMKInvalidEncryptionParameters",
			"Primary user assigned identity and backup identity cannot be same. Please provide different identities for primaryUserAssignedIdentityId and geoBackupUserAssignedIdentityId.")
	}
	out := &encryptionUpdate{enc: next, envelope: cur.Envelope, backupEnvelope: cur.BackupEnvelope, geoEnvelope: cur.GeoEnvelope}
	var err error
	if req.PrimaryKeyURI != "" {
		if out.envelope, err = s.rewrap(ctx, cur, cur.Envelope, cur.Encryption.PrimaryIdentityID, next.PrimaryKeyURI, next.PrimaryIdentityID, primaryRole); err != nil {
			return nil, err
		}
		// Repository 1's backup DEK follows the primary key too.
		if cur.BackupEnvelope != nil {
			if out.backupEnvelope, err = s.rewrap(ctx, cur, cur.BackupEnvelope, cur.Encryption.PrimaryIdentityID, next.PrimaryKeyURI, next.PrimaryIdentityID, primaryRole); err != nil {
				return nil, err
			}
		}
		out.enc.PrimaryKeyStatus = KeyValid
	}
	if req.GeoKeyURI != "" && cur.GeoEnvelope != nil {
		if out.geoEnvelope, err = s.rewrap(ctx, cur, cur.GeoEnvelope, cur.Encryption.GeoIdentityID, next.GeoKeyURI, next.GeoIdentityID, geoRole); err != nil {
			return nil, err
		}
		out.enc.GeoKeyStatus = KeyValid
	}
	return out, nil
}

// rewrap unwraps env (made by the key it names) and wraps the DEK under newKey as newIdentity.
// The new identity is tried first for the unwrap: when the old identity was deleted (a cause
// of Inaccessible) the new one, granted on the same key, is the only way left to it.
func (s *Service) rewrap(ctx context.Context, srv *Server, env *dataenc.Envelope, oldIdentity, newKey, newIdentity string, role keyRole) (*dataenc.Envelope, error) {
	nw, err := s.checkCustomerKey(ctx, srv, newKey, newIdentity, role)
	if err != nil {
		return nil, err
	}
	if env == nil {
		return nil, fmt.Errorf("server %s has no wrapped %s DEK to rewrap", srv.Name, role.name)
	}
	var dek []byte
	for _, idv := range []string{newIdentity, oldIdentity} {
		w, werr := s.customerWrapper(srv, env.KeyID, idv)
		if werr != nil {
			continue
		}
		if dek, err = w.Unwrap(ctx, env); err == nil {
			break
		}
	}
	if dek == nil {
		return nil, arm.BadRequest("CurrentKeyUnusable",
			"The %s DEK of server '%s' is wrapped by '%s', which neither the new identity nor the current one can unwrap now (%v). Restore access to that key version (enable it, extend its expiry, recover it or grant unwrapKey), then retry the update.",
			role.name, srv.Name, env.KeyID, err)
	}
	defer clear(dek)
	return wrapRoundTrip(ctx, nw, dek, newKey)
}

// identitiesToRemove lists the identities a request's identity block takes off srv: the entries
// it sets to null, or, for type None, every user-assigned identity the server has (az sends
// {"type":"None"} when it removes the last one).
func identitiesToRemove(srv *Server, b *identityBody, nulls []string) []string {
	if b == nil || !strings.EqualFold(b.Type, identityTypeNone) {
		return nulls
	}
	ids := make([]string, 0, len(srv.Identities))
	for _, ref := range srv.Identities {
		ids = append(ids, ref.ID)
	}
	sort.Strings(ids)
	return ids
}

// checkRemovable refuses taking off an identity that data encryption uses (the primary one
// named first, as az checks it); nothing changes.
func checkRemovable(srv *Server, ids []string) error {
	for _, use := range []struct{ id, what string }{{srv.Encryption.PrimaryIdentityID, "data encryption"},
		{srv.Encryption.GeoIdentityID, "geo backup data encryption"}} {
		for _, raw := range ids {
			if use.id != "" && strings.EqualFold(raw, use.id) {
				return arm.BadRequest("IdentityInUse", "Cannot remove identity %s because it's used for %s.", raw, use.what)
			}
		}
	}
	return nil
}

// removeIdentities drops identities from a server, refusing (and changing nothing) if any is in
// use for data encryption.
func removeIdentities(srv *Server, ids []string) error {
	if err := checkRemovable(srv, ids); err != nil {
		return err
	}
	for _, raw := range ids {
		delete(srv.Identities, strings.ToLower(raw))
	}
	return nil
}

// parseIdentityID parses an identity resource id.
func parseIdentityID(raw string) (arm.ResourceID, error) {
	id, err := arm.ParseResourceID(raw)
	if err != nil {
		return id, err
	}
	if !id.IsType("Microsoft.ManagedIdentity/userAssignedIdentities") {
		return id, fmt.Errorf("%s is not a user-assigned identity id", raw)
	}
	return id, nil
}
