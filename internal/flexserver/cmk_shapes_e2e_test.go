package flexserver_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armpostgresqlflexibleservers4 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"

	"github.com/pgflex/pgflex/internal/testkit"
)

// smkServer is a create request for a server under the service-managed key with user-assigned
// identities that data encryption does not use.
func (s *cmkSuite) smkServer(ids ...cmkIdentity) armpostgresqlflexibleservers.Server {
	uai := map[string]*armpostgresqlflexibleservers.UserIdentity{}
	for _, id := range ids {
		uai[id.id] = &armpostgresqlflexibleservers.UserIdentity{}
	}
	return armpostgresqlflexibleservers.Server{Location: to.Ptr("eastus"),
		SKU:      &armpostgresqlflexibleservers.SKU{Name: to.Ptr("Standard_B1ms"), Tier: to.Ptr(armpostgresqlflexibleservers.SKUTierBurstable)},
		Identity: &armpostgresqlflexibleservers.UserAssignedIdentity{Type: to.Ptr(armpostgresqlflexibleservers.IdentityTypeUserAssigned), UserAssignedIdentities: uai},
		Properties: &armpostgresqlflexibleservers.ServerProperties{
			AdministratorLogin: to.Ptr("pgadmin"), AdministratorLoginPassword: to.Ptr(adminPassword),
			Version: to.Ptr(armpostgresqlflexibleservers.PostgresMajorVersion("15")),
			Storage: &armpostgresqlflexibleservers.Storage{StorageSizeGB: to.Ptr[int32](32)},
		}}
}

// az245Server runs az 2.45's own code (testdata/az245_server.py) on a server read at 2022-12-01.
func (s *cmkSuite) az245Server(t *testing.T, name string) map[string]any {
	t.Helper()
	r := s.d.ARM(t, http.MethodGet, serverPath(s.d, "rg", name)+"?api-version=2022-12-01", nil)
	if r.Status != 200 {
		t.Fatalf("get %s at 2022-12-01 = %d %s", name, r.Status, r.Raw)
	}
	return runAz245(t, "az245_server.py", r.Raw)
}

// shapesPerVersion reads a CMK server with geo-redundant backup and an SMK server at every
// api-version pgflex accepts, each with the client that speaks it (az 2.45's Python models and
// code for 2022-12-01, Azure's SDK for Go v4 for the previews and 2024-08-01, v5 for the 2025
// versions), and checks what each version must and must not carry.
func (s *cmkSuite) shapesPerVersion(t *testing.T) {
	s.created(t, "pg-smk") // the identity removal below needs it, whatever happens here
	testkit.Require(t, testkit.AzurePython)

	// 2022-12-01, as az 2.45 reads it.
	type typed = []any
	cases := []struct {
		server string
		want   map[string]typed
		byok   string
	}{
		{"pg-geo", map[string]typed{
			"sku.tier": {"str", "Burstable"}, "sku.name": {"str", "Standard_B1ms"}, "storage.storage_size_gb": {"int", float64(32)},
			"replication_role": {"str", "Primary"}, "replication_role.lower": nil, "backup.geo_redundant_backup": {"str", "Enabled"},
			"backup.backup_retention_days": {"int", float64(7)}, "high_availability.mode": {"str", "Disabled"},
			"data_encryption.type": {"str", "AzureKeyVault"}, "data_encryption.primary_key_uri": {"str", s.autoBase},
			"data_encryption.primary_user_assigned_identity_id": {"str", s.primary.id}, "identity.type": {"str", "UserAssigned"},
			"maintenance_window.day_of_week": {"int", float64(0)}, "version": {"str", "15"}, "state": {"str", "Ready"},
			"availability_zone": {"str", ""}, "network.public_network_access": {"str", "Enabled"},
		}, "Data encryption is not supported for geo-redundant backup."},
		{"pg-smk", map[string]typed{
			"sku.tier": {"str", "Burstable"}, "backup.geo_redundant_backup": {"str", "Disabled"}, "data_encryption.type": {"str", "SystemManaged"},
			"data_encryption.primary_key_uri": {"NoneType", nil}, "identity.type": {"str", "UserAssigned"}, "replication_role": {"str", "Primary"},
		}, "You cannot enable data encryption on a server that was not created with data encryption."},
	}
	for _, c := range cases {
		got := s.az245Server(t, c.server)
		for path, want := range c.want {
			if want == nil {
				continue
			}
			if g, _ := got[path].([]any); !reflect.DeepEqual(g, want) {
				t.Errorf("az 2.45 reads %s.%s = %v, want %v", c.server, path, got[path], want)
			}
		}
		if got["byok_update_with_key"] != c.byok {
			t.Errorf("az 2.45's pg_byok_validator on %s: %v, want %q", c.server, got["byok_update_with_key"], c.byok)
		}
		if ie := got["get_identity_and_data_encryption"].([]any); ie[0] != true || ie[1] != (c.server == "pg-geo") {
			t.Errorf("az 2.45's get_identity_and_data_encryption on %s: %v", c.server, ie)
		}
		if ids := got["identity.user_assigned_identities"].(map[string]any); ids[s.primary.id] == nil && c.server == "pg-geo" {
			t.Errorf("az 2.45 reads %s's identities %v", c.server, ids)
		}
	}
	legacy := props(s.getAt(t, "pg-geo", "2022-12-01"))
	enc := legacy["dataEncryption"].(map[string]any)
	for _, later := range []string{"geoBackupKeyURI", "geoBackupUserAssignedIdentityId", "primaryEncryptionKeyStatus", "geoBackupEncryptionKeyStatus"} {
		if _, has := enc[later]; has {
			t.Errorf("2022-12-01 dataEncryption has %s: %v", later, enc)
		}
	}
	if _, has := legacy["replica"]; has {
		t.Errorf("2022-12-01 server has properties.replica")
	}

	// The later versions, as Azure's SDK for Go reads them.
	for _, v := range []string{"2023-03-01-preview", "2023-06-01-preview", "2023-12-01-preview", "2024-03-01-preview", "2024-08-01", "2024-11-01-preview"} {
		c, err := armpostgresqlflexibleservers4.NewServersClient(s.sub, s.cred, sdkAt(s.d, v))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(s.ctx, "rg", "pg-geo", nil)
		if err != nil {
			t.Fatalf("v4 at %s: %v", v, err)
		}
		de := got.Properties.DataEncryption
		if *de.Type != armpostgresqlflexibleservers4.ArmServerKeyTypeAzureKeyVault || *de.GeoBackupKeyURI != s.geoKey ||
			*de.GeoBackupUserAssignedIdentityID != s.geo.id || *de.PrimaryEncryptionKeyStatus != armpostgresqlflexibleservers4.KeyStatusEnumValid ||
			*got.Identity.Type != armpostgresqlflexibleservers4.IdentityTypeUserAssigned || got.Identity.UserAssignedIdentities[s.geo.id] == nil {
			t.Errorf("v4 at %s: dataEncryption %+v identity %+v", v, de, got.Identity)
		}
		wantReplica := v != "2023-03-01-preview"
		if (got.Properties.Replica != nil) != wantReplica || (wantReplica && *got.Properties.Replica.Role != armpostgresqlflexibleservers4.ReplicationRolePrimary) {
			t.Errorf("v4 at %s: replica %+v", v, got.Properties.Replica)
		}
		smk, err := c.Get(s.ctx, "rg", "pg-smk", nil)
		if err != nil || *smk.Properties.DataEncryption.Type != armpostgresqlflexibleservers4.ArmServerKeyTypeSystemManaged {
			t.Errorf("v4 at %s: SMK server %v %v", v, err, smk.Properties)
		}
		dbs := armpostgresqlflexibleservers4.NewDatabasesClient
		dc, _ := dbs(s.sub, s.cred, sdkAt(s.d, v))
		if page, err := dc.NewListByServerPager("rg", "pg-smk", nil).NextPage(s.ctx); err != nil || len(page.Value) == 0 || page.Value[0].Properties.Charset == nil {
			t.Errorf("v4 at %s: databases %v %+v", v, err, page.Value)
		}
	}
	for _, v := range []string{"2025-01-01-preview", "2025-08-01"} {
		c, err := armpostgresqlflexibleservers.NewServersClient(s.sub, s.cred, sdkAt(s.d, v))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Get(s.ctx, "rg", "pg-geo", nil)
		if err != nil {
			t.Fatalf("v5 at %s: %v", v, err)
		}
		if de := got.Properties.DataEncryption; *de.Type != armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault || *de.GeoBackupKeyURI != s.geoKey ||
			*de.GeoBackupEncryptionKeyStatus != armpostgresqlflexibleservers.EncryptionKeyStatusValid || got.Properties.Replica == nil {
			t.Errorf("v5 at %s: %+v", v, got.Properties)
		}
		bc, _ := armpostgresqlflexibleservers.NewBackupsAutomaticAndOnDemandClient(s.sub, s.cred, sdkAt(s.d, v))
		if page, err := bc.NewListByServerPager("rg", "pg-smk", nil).NextPage(s.ctx); err != nil || len(page.Value) == 0 || page.Value[0].Properties.CompletedTime == nil {
			t.Errorf("v5 at %s: backups %v %+v", v, err, page.Value)
		}
	}
	// The server's own capabilities (2023-03-01-preview on): its location's.
	sc, _ := armpostgresqlflexibleservers4.NewServerCapabilitiesClient(s.sub, s.cred, sdkAt(s.d, "2024-08-01"))
	page, err := sc.NewListPager("rg", "pg-geo", nil).NextPage(s.ctx)
	if err != nil || len(page.Value) != 1 || *page.Value[0].GeoBackupSupported != armpostgresqlflexibleservers4.GeoBackupSupportedEnumEnabled {
		t.Errorf("server capabilities: %v %+v", err, page.Value)
	}
}

// getAt reads a server raw at an api-version.
func (s *cmkSuite) getAt(t *testing.T, name, version string) map[string]any {
	t.Helper()
	r := s.d.ARM(t, http.MethodGet, serverPath(s.d, "rg", name)+"?api-version="+version, nil)
	if r.Status != 200 {
		t.Fatalf("get %s at %s = %d %s", name, version, r.Status, r.Raw)
	}
	return r.Body
}

// patchAt sends a PATCH as az 2.45 does (api-version 2022-12-01) and waits for its operation;
// it returns the refusal when there is one.
func (s *cmkSuite) patchAt(t *testing.T, name string, body map[string]any) (status int, code, msg string) {
	t.Helper()
	r := s.d.ARM(t, http.MethodPatch, serverPath(s.d, "rg", name)+"?api-version=2022-12-01", body)
	if r.Status != http.StatusAccepted {
		return r.Status, r.ErrorCode(), r.ErrorMessage()
	}
	op := s.d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), 2*time.Minute)
	if op["status"] != "Succeeded" {
		t.Fatalf("PATCH %s: operation %v", name, op)
	}
	return r.Status, "", ""
}

// identityRemoval: what `az postgres flexible-server identity remove` sends. The last identity
// goes with {"type":"None"}, others with a null entry; an identity data encryption uses is
// refused, and a refused PATCH changes nothing, not even the identities it would have added.
func (s *cmkSuite) identityRemoval(t *testing.T) {
	uaiOf := func(srv map[string]any) map[string]any {
		m, _ := srv["identity"].(map[string]any)["userAssignedIdentities"].(map[string]any)
		return m
	}
	before := s.getAt(t, "pg-geo", "2025-08-01")
	refusals := []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"type None on a CMK server", map[string]any{"identity": map[string]any{"type": "None"}},
			"Cannot remove identity " + s.primary.id + " because it's used for data encryption."},
		{"assign one and remove the primary", map[string]any{"identity": map[string]any{"type": "UserAssigned",
			"userAssignedIdentities": map[string]any{s.noAccess.id: map[string]any{}, s.primary.id: nil}}},
			"Cannot remove identity " + s.primary.id + " because it's used for data encryption."},
		{"type None assigning one", map[string]any{"identity": map[string]any{"type": "None",
			"userAssignedIdentities": map[string]any{s.noAccess.id: map[string]any{}}}},
			"The identity type None removes every user-assigned identity"},
	}
	for _, c := range refusals {
		status, code, msg := s.patchAt(t, "pg-geo", c.body)
		if status != 400 || (code != "IdentityInUse" && code != "InvalidParameterValue") || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s %q, want 400 %q", c.name, status, code, msg, c.msg)
		}
		after := s.getAt(t, "pg-geo", "2025-08-01")
		if !reflect.DeepEqual(after["identity"], before["identity"]) || !reflect.DeepEqual(props(after)["dataEncryption"], props(before)["dataEncryption"]) ||
			props(after)["state"] != "Ready" {
			t.Errorf("%s changed the server:\nbefore %v %v\nafter  %v %v", c.name, before["identity"], props(before)["dataEncryption"],
				after["identity"], props(after)["state"])
		}
	}

	// A null entry removes one identity that nothing uses; the others stay.
	if uaiOf(before)[s.wrapOnly.id] == nil {
		t.Fatalf("pg-geo should have %s assigned (by the update refusals): %v", s.wrapOnly.id, uaiOf(before))
	}
	if status, code, msg := s.patchAt(t, "pg-geo", map[string]any{"identity": map[string]any{"type": "UserAssigned",
		"userAssignedIdentities": map[string]any{s.wrapOnly.id: nil}}}); status != http.StatusAccepted {
		t.Fatalf("remove an unused identity: %d %s %s", status, code, msg)
	}
	uai := uaiOf(s.getAt(t, "pg-geo", "2025-08-01"))
	if uai[s.wrapOnly.id] != nil || uai[s.primary.id] == nil || uai[s.geo.id] == nil || len(uai) != 2 {
		t.Errorf("after removing %s: %v", s.wrapOnly.id, uai)
	}

	// {"type":"None"} removes every identity of a server whose encryption uses none.
	if n := len(uaiOf(s.getAt(t, "pg-smk", "2025-08-01"))); n != 2 {
		t.Fatalf("pg-smk has %d identities, want 2", n)
	}
	if status, code, msg := s.patchAt(t, "pg-smk", map[string]any{"identity": map[string]any{"type": "None"}}); status != http.StatusAccepted {
		t.Fatalf("type None: %d %s %s", status, code, msg)
	}
	got, err := s.servers.Get(s.ctx, "rg", "pg-smk", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity == nil || *got.Identity.Type != armpostgresqlflexibleservers.IdentityTypeNone || len(got.Identity.UserAssignedIdentities) != 0 ||
		*got.Properties.State != armpostgresqlflexibleservers.ServerStateReady {
		t.Errorf("after type None: identity %+v state %s", got.Identity, *got.Properties.State)
	}
	t.Run("as az 2.45 reads it", func(t *testing.T) {
		testkit.Require(t, testkit.AzurePython)
		if az := s.az245Server(t, "pg-smk"); !reflect.DeepEqual(az["identity.type"], []any{"str", "None"}) ||
			len(az["identity.user_assigned_identities"].(map[string]any)) != 0 {
			t.Errorf("az 2.45 reads the identity as %v %v", az["identity.type"], az["identity.user_assigned_identities"])
		}
	})
}
