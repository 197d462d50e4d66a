package flexserver_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/testkit"
)

// dataEncryption is the raw dataEncryption block of a server (with pgflex's
// primaryKeyVersionInUse).
func (s *cmkSuite) dataEncryption(t *testing.T, name string) map[string]any {
	t.Helper()
	return props(serverRaw(t, s.d, "rg", name))["dataEncryption"].(map[string]any)
}

// checkIdentities asserts the server's identity block as Azure shapes it: UserAssigned, and
// exactly these identities with their principal and client ids.
func checkIdentities(t *testing.T, got *armpostgresqlflexibleservers.UserAssignedIdentity, want ...cmkIdentity) {
	t.Helper()
	if got == nil || got.Type == nil || *got.Type != armpostgresqlflexibleservers.IdentityTypeUserAssigned || len(got.UserAssignedIdentities) != len(want) {
		t.Fatalf("identity = %+v, want UserAssigned with %d identities", got, len(want))
	}
	for _, w := range want {
		u, ok := got.UserAssignedIdentities[w.id]
		if !ok || u == nil || u.PrincipalID == nil || *u.PrincipalID != w.principal || u.ClientID == nil || *u.ClientID != w.client {
			t.Fatalf("identity %s = %+v, want principal %s client %s", w.id, u, w.principal, w.client)
		}
	}
}

// onlyIdentityWraps asserts that since a time the key's wrapKey/unwrapKey calls were all made
// by the identity (none by the administrator or anyone else), and that there were some.
func onlyIdentityWraps(t *testing.T, events []auditEvent, since time.Time, identity cmkIdentity, what string) {
	t.Helper()
	n := 0
	for _, e := range events {
		if e.Time.Before(since) || (e.Operation != "KeyWrap" && e.Operation != "KeyUnwrap") {
			continue
		}
		if e.Caller != identity.principal {
			t.Fatalf("%s: %s by %s, not by the server's identity %s", what, e.Operation, e.Caller, identity.principal)
		}
		n++
	}
	ops := keyOps(events, since)
	if ops["KeyWrap "+identity.principal] == 0 || ops["KeyUnwrap "+identity.principal] == 0 {
		t.Fatalf("%s: the identity made no successful wrapKey and unwrapKey calls (%v)", what, ops)
	}
}

// marker writes rows into a table of the server and returns a check that they are all there.
func (s *cmkSuite) marker(t *testing.T, name string) func(t *testing.T) {
	t.Helper()
	raw := serverRaw(t, s.d, "rg", name)
	conn, err := connect(t, s.d, raw, "postgres")
	if err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	defer conn.Close(s.ctx)
	mark := fmt.Sprintf("cmk-%s-%d", name, time.Now().UnixNano())
	for _, q := range []string{"CREATE TABLE cmk_marker (v text)", "INSERT INTO cmk_marker SELECT '" + mark + "' FROM generate_series(1, 1000)"} {
		if _, err := conn.Exec(s.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func(t *testing.T) {
		t.Helper()
		conn, err := connect(t, s.d, serverRaw(t, s.d, "rg", name), "postgres")
		if err != nil {
			t.Fatalf("connect to %s: %v", name, err)
		}
		defer conn.Close(s.ctx)
		var n int
		if err := conn.QueryRow(s.ctx, "SELECT count(*) FROM cmk_marker WHERE v = $1", mark).Scan(&n); err != nil || n != 1000 {
			t.Fatalf("data written before: %d rows, %v", n, err)
		}
	}
}

// pinned: a server created with a versioned key through the SDK reads back as Azure shapes it;
// the identity, not the administrator, wraps and unwraps; rotating the key changes nothing;
// PATCHing the server to the new version rewraps the DEK (store and header beside the volume);
// with the old version disabled, a stop and start unwraps with the new version and the data
// written before is there.
func (s *cmkSuite) pinned(t *testing.T, east *azkeys.Client) {
	eastID := s.storeID("vaults", "cmk-east")
	began := s.launched
	created := s.created(t, "pg-pinned")
	got, err := s.servers.Get(s.ctx, "rg", "pg-pinned", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []armpostgresqlflexibleservers.Server{created, got.Server} {
		de := srv.Properties.DataEncryption
		if *srv.Properties.State != armpostgresqlflexibleservers.ServerStateReady ||
			*de.Type != armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault || *de.PrimaryKeyURI != s.pinnedV1 ||
			*de.PrimaryUserAssignedIdentityID != s.primary.id || *de.PrimaryEncryptionKeyStatus != armpostgresqlflexibleservers.EncryptionKeyStatusValid ||
			de.GeoBackupKeyURI != nil || de.GeoBackupUserAssignedIdentityID != nil || de.GeoBackupEncryptionKeyStatus != nil ||
			*srv.Properties.Backup.GeoRedundantBackup != armpostgresqlflexibleservers.GeographicallyRedundantBackupDisabled {
			t.Fatalf("server = %+v, dataEncryption = %+v", *srv.Properties.State, de)
		}
		checkIdentities(t, srv.Identity, s.primary)
	}
	if v := s.dataEncryption(t, "pg-pinned")["primaryKeyVersionInUse"]; v != version(s.pinnedV1) {
		t.Fatalf("primaryKeyVersionInUse = %v, want %s", v, version(s.pinnedV1))
	}
	if h := s.header("pinned"); h["keyVersion"] != version(s.pinnedV1) {
		t.Fatalf("DEK header = %v", h)
	}
	onlyIdentityWraps(t, s.audit(eastID, "pinned"), began, s.primary, "create")
	check := s.marker(t, "pg-pinned")

	// Rotate the pinned key: once the key monitor has checked the key twice after the rotation
	// (so the first of those checks has acted), nothing changed.
	k2, err := east.RotateKey(s.ctx, "pinned", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := string(*k2.Key.KID)
	waitChecksAfterRotation(t, s.d, eastID, "pinned", s.primary.principal, 2)
	if de := s.dataEncryption(t, "pg-pinned"); de["primaryKeyURI"] != s.pinnedV1 || de["primaryKeyVersionInUse"] != version(s.pinnedV1) {
		t.Fatalf("after the rotation of a pinned key: %v", de)
	}
	if h := s.header("pinned"); h["keyVersion"] != version(s.pinnedV1) {
		t.Fatalf("DEK header after the rotation: %v", h)
	}
	if n := rewrapsAfterRotation(s.audit(eastID, "pinned"), s.primary.principal); n != 0 {
		t.Fatalf("the rotation of a pinned key caused %d wraps and unwraps", n)
	}

	// PATCH the server to the new version: the DEK is rewrapped, the version in use follows.
	patchedAt := time.Now()
	poller, err := s.servers.BeginUpdate(s.ctx, "rg", "pg-pinned", armpostgresqlflexibleservers.ServerForPatch{
		Identity: &armpostgresqlflexibleservers.UserAssignedIdentity{Type: to.Ptr(armpostgresqlflexibleservers.IdentityTypeUserAssigned),
			UserAssignedIdentities: map[string]*armpostgresqlflexibleservers.UserIdentity{s.primary.id: {}}},
		Properties: &armpostgresqlflexibleservers.ServerPropertiesForPatch{DataEncryption: &armpostgresqlflexibleservers.DataEncryption{
			Type: to.Ptr(armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault), PrimaryKeyURI: to.Ptr(v2),
			PrimaryUserAssignedIdentityID: to.Ptr(s.primary.id)}}}, nil)
	if err != nil {
		t.Fatalf("update to the new version: %v", err)
	}
	updated, err := poller.PollUntilDone(s.ctx, &runtimePollOptions)
	if err != nil {
		t.Fatalf("update to the new version: %v", err)
	}
	if de := updated.Properties.DataEncryption; *de.PrimaryKeyURI != v2 || *de.PrimaryEncryptionKeyStatus != armpostgresqlflexibleservers.EncryptionKeyStatusValid ||
		*updated.Properties.State != armpostgresqlflexibleservers.ServerStateReady {
		t.Fatalf("after the update: %+v", de)
	}
	if v := s.dataEncryption(t, "pg-pinned")["primaryKeyVersionInUse"]; v != version(v2) {
		t.Fatalf("primaryKeyVersionInUse after the update = %v, want %s", v, version(v2))
	}
	if h := s.header("pinned"); h["keyVersion"] != version(v2) {
		t.Fatalf("DEK header after the update: %v", h)
	}
	ops := keyOps(s.audit(eastID, "pinned"), patchedAt)
	if ops["KeyUnwrap "+s.primary.principal+" "+version(s.pinnedV1)] == 0 || ops["KeyWrap "+s.primary.principal+" "+version(v2)] == 0 {
		t.Fatalf("the rewrap did not unwrap with the old version and wrap with the new one as the identity: %v", ops)
	}
	check(t)

	// The old version is no longer needed: disable it, stop and start the server (the volume is
	// unmounted and the DEK dropped, then unwrapped again).
	if _, err := east.UpdateKey(s.ctx, "pinned", version(s.pinnedV1), azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	stop, err := s.servers.BeginStop(s.ctx, "rg", "pg-pinned", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stop.PollUntilDone(s.ctx, &runtimePollOptions); err != nil {
		t.Fatal(err)
	}
	_, uid := s.headerAndUID("pinned")
	for _, m := range testkit.MountsUnder(t, s.runDir) {
		if strings.Contains(m, uid) {
			t.Fatalf("still mounted after stop: %s", m)
		}
	}
	start, err := s.servers.BeginStart(s.ctx, "rg", "pg-pinned", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start.PollUntilDone(s.ctx, &runtimePollOptions); err != nil {
		t.Fatalf("start with the new version: %v", err)
	}
	ops = keyOps(s.audit(eastID, "pinned"), restartedAt)
	if ops["KeyUnwrap "+s.primary.principal+" "+version(v2)] == 0 || ops["KeyUnwrap "+s.primary.principal+" "+version(s.pinnedV1)] != 0 {
		t.Fatalf("the start did not unwrap with the new version (only): %v", ops)
	}
	check(t)
}

// geoVersionless: a geo-redundant CMK server through the SDK, its primary key versionless: the
// configured URI stays versionless, the newest version wraps the DEK, and the geo-backup key
// (in the paired region's vault) is used by the second identity only.
func (s *cmkSuite) geoVersionless(t *testing.T, olderAutoVersion string) {
	began := s.launched
	s.created(t, "pg-geo")
	got, err := s.servers.Get(s.ctx, "rg", "pg-geo", nil)
	if err != nil {
		t.Fatal(err)
	}
	de := got.Properties.DataEncryption
	valid := armpostgresqlflexibleservers.EncryptionKeyStatusValid
	if *got.Properties.Backup.GeoRedundantBackup != armpostgresqlflexibleservers.GeographicallyRedundantBackupEnabled ||
		*de.Type != armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault || *de.PrimaryKeyURI != s.autoBase ||
		*de.PrimaryUserAssignedIdentityID != s.primary.id || *de.GeoBackupKeyURI != s.geoKey ||
		*de.GeoBackupUserAssignedIdentityID != s.geo.id || *de.PrimaryEncryptionKeyStatus != valid || *de.GeoBackupEncryptionKeyStatus != valid {
		t.Fatalf("dataEncryption = %+v", de)
	}
	checkIdentities(t, got.Identity, s.primary, s.geo)
	if v := s.dataEncryption(t, "pg-geo")["primaryKeyVersionInUse"]; v != version(s.autoNewest) {
		t.Fatalf("primaryKeyVersionInUse = %v, want the newest version %s (not %s)", v, version(s.autoNewest), version(olderAutoVersion))
	}
	if h := s.header("auto"); h["keyVersion"] != version(s.autoNewest) {
		t.Fatalf("DEK header = %v", h)
	}
	if !strings.Contains(s.d.Logs(), `msg="identity used for data encryption is outside the region it serves" server=pg-geo`) {
		t.Fatal("no warning for the geo-backup identity outside the paired region")
	}
	onlyIdentityWraps(t, s.audit(s.storeID("vaults", "cmk-east"), "auto"), began, s.primary, "primary key")
	onlyIdentityWraps(t, s.audit(s.storeID("vaults", "cmk-west"), "geo"), began, s.geo, "geo-backup key")
	s.marker(t, "pg-geo")(t)
}

// updateRefusals: refused updates of a geo-redundant CMK server leave its encryption as it was;
// identities the request names are added all the same, as the seed document says.
func (s *cmkSuite) updateRefusals(t *testing.T) {
	before := s.dataEncryption(t, "pg-geo")
	headerBefore := s.header("auto")
	patch := func(enc map[string]any, identities ...string) map[string]any {
		b := map[string]any{"properties": map[string]any{"dataEncryption": enc}}
		if len(identities) > 0 {
			uai := map[string]any{}
			for _, id := range identities {
				uai[id] = map[string]any{}
			}
			b["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": uai}
		}
		return b
	}
	akv := func(kv ...string) map[string]any {
		m := map[string]any{"type": "AzureKeyVault"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		body map[string]any
		code string
		msg  string
	}{
		{"key in another region", patch(akv("primaryKeyURI", s.centralKey, "primaryUserAssignedIdentityId", s.primary.id)),
			"InvalidParameterValue", "it must be in the server's region, 'eastus'"},
		{"key without its identity", patch(akv("primaryKeyURI", s.pinnedV1)),
			"CMKInvalidEncryptionParameters", "User assigned identity and keyvault key need to be provided together"},
		{"geo identity without its key", patch(akv("geoBackupUserAssignedIdentityId", s.geo.id)),
			"CMKInvalidEncryptionParameters", "User assigned identity and keyvault key need to be provided together"},
		{"geo identity the same as the primary", patch(akv("geoBackupKeyURI", s.geoKey, "geoBackupUserAssignedIdentityId", s.primary.id)),
			"CMKInvalidEncryptionParameters", "Primary user assigned identity and backup identity cannot be same."},
		{"geo key not in the paired region", patch(akv("geoBackupKeyURI", s.centralKey, "geoBackupUserAssignedIdentityId", s.geo.id)),
			"InvalidParameterValue", "'westus'"},
		{"switch to the service-managed key", patch(map[string]any{"type": "SystemManaged"}),
			"DataEncryptionTypeChangeNotAllowed", "cannot be changed"},
		{"remove the primary identity", map[string]any{"identity": map[string]any{"type": "UserAssigned",
			"userAssignedIdentities": map[string]any{s.primary.id: nil}}},
			"IdentityInUse", "Cannot remove identity " + s.primary.id + " because it's used for data encryption."},
		{"remove the geo-backup identity", map[string]any{"identity": map[string]any{"type": "UserAssigned",
			"userAssignedIdentities": map[string]any{s.geo.id: nil}}},
			"IdentityInUse", "Cannot remove identity " + s.geo.id + " because it's used for geo backup data encryption."},
		// The identity may wrap but not unwrap: the seed's error, and the identity is assigned anyway.
		{"identity without unwrapKey", patch(akv("primaryKeyURI", s.autoBase, "primaryUserAssignedIdentityId", s.wrapOnly.id), s.wrapOnly.id),
			"AzureKeyVaultKeyNameNotFound", seedKeyNameNotFound(s.autoBase)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.d.ARM(t, http.MethodPatch, serverPath(s.d, "rg", "pg-geo")+"?api-version=2025-08-01", c.body)
			t.Logf("%d %s: %s", r.Status, r.ErrorCode(), r.ErrorMessage())
			if r.Status != 400 || r.ErrorCode() != c.code || !strings.Contains(r.ErrorMessage(), c.msg) {
				t.Fatalf("%d %s %q, want 400 %s containing %q", r.Status, r.ErrorCode(), r.ErrorMessage(), c.code, c.msg)
			}
			after := serverRaw(t, s.d, "rg", "pg-geo")
			if enc := props(after)["dataEncryption"]; !reflect.DeepEqual(enc, before) {
				t.Fatalf("dataEncryption changed by a refused update:\nbefore %v\nafter  %v", before, enc)
			}
			if ids := after["identity"].(map[string]any)["userAssignedIdentities"].(map[string]any); ids[s.primary.id] == nil || ids[s.geo.id] == nil {
				t.Fatalf("an identity in use was removed: %v", ids)
			}
		})
	}
	if h := s.header("auto"); !reflect.DeepEqual(h, headerBefore) {
		t.Fatalf("the DEK header changed: %v", h)
	}
	got, err := s.servers.Get(s.ctx, "rg", "pg-geo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.State != armpostgresqlflexibleservers.ServerStateReady {
		t.Fatalf("state after refused updates = %s", *got.Properties.State)
	}
	checkIdentities(t, got.Identity, s.primary, s.geo, s.wrapOnly)
}

// managedHSMKey: a CMK server whose key is in a Managed HSM, reached by local RBAC; then its
// key is moved to a vault.
func (s *cmkSuite) managedHSMKey(t *testing.T) {
	began := s.launched
	s.created(t, "pg-hsm")
	got, err := s.servers.Get(context.Background(), "rg", "pg-hsm", nil)
	if err != nil {
		t.Fatal(err)
	}
	if de := got.Properties.DataEncryption; *de.PrimaryKeyURI != s.hsmKey || *de.PrimaryEncryptionKeyStatus != armpostgresqlflexibleservers.EncryptionKeyStatusValid ||
		!strings.Contains(s.hsmKey, ".managedhsm.localhost:") {
		t.Fatalf("dataEncryption = %+v", de)
	}
	if v := s.dataEncryption(t, "pg-hsm")["primaryKeyVersionInUse"]; v != version(s.hsmKey) {
		t.Fatalf("primaryKeyVersionInUse = %v", v)
	}
	onlyIdentityWraps(t, s.audit(s.storeID("managedHSMs", "cmkhsm"), "hsmkey"), began, s.primary, "Managed HSM key")
	check := s.marker(t, "pg-hsm")
	check(t)

	// Move the key to another key store (the HSM's key to a vault's, 4096 bits): the DEK is
	// unwrapped from the HSM and wrapped by the vault key, as the identity; the data stays.
	movedAt := time.Now()
	poller, err := s.servers.BeginUpdate(s.ctx, "rg", "pg-hsm", armpostgresqlflexibleservers.ServerForPatch{
		Properties: &armpostgresqlflexibleservers.ServerPropertiesForPatch{DataEncryption: &armpostgresqlflexibleservers.DataEncryption{
			Type: to.Ptr(armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault), PrimaryKeyURI: to.Ptr(s.movedKey),
			PrimaryUserAssignedIdentityID: to.Ptr(s.primary.id)}}}, nil)
	if err != nil {
		t.Fatalf("move the key: %v", err)
	}
	if _, err := poller.PollUntilDone(s.ctx, &runtimePollOptions); err != nil {
		t.Fatalf("move the key: %v", err)
	}
	if de := s.dataEncryption(t, "pg-hsm"); de["primaryKeyURI"] != s.movedKey || de["primaryKeyVersionInUse"] != version(s.movedKey) {
		t.Fatalf("after the move: %v", de)
	}
	if h := s.header("moved"); h["keyVersion"] != version(s.movedKey) {
		t.Fatalf("DEK header after the move: %v", h)
	}
	if ops := keyOps(s.audit(s.storeID("managedHSMs", "cmkhsm"), "hsmkey"), movedAt); ops["KeyUnwrap "+s.primary.principal] == 0 {
		t.Fatalf("the move did not unwrap with the HSM key as the identity: %v", ops)
	}
	onlyIdentityWraps(t, s.audit(s.storeID("vaults", "cmk-east"), "moved"), movedAt, s.primary, "moved key")
	check(t)
}
