package flexserver_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// The customer-managed-key acceptance suite of issue 5, against one real daemon: a real key
// store (vaults in eastus, its pair westus, and centralus; a Managed HSM), real identities, and
// servers that really run PostgreSQL on encrypted volumes. Azure's own SDK clients drive it.

// cmkIdentity is a user-assigned managed identity.
type cmkIdentity struct{ id, principal, client string }

// cmkSuite is the shared world of the suite.
type cmkSuite struct {
	t      *testing.T
	ctx    context.Context
	d      *testenv.Daemon
	runDir string
	sub    string
	tenant string
	admin  string // the administrator's object id
	cred   *azcred.ClientSecretCredential
	opts   *arm.ClientOptions

	servers  *armpostgresqlflexibleservers.ServersClient
	creating map[string]*runtime.Poller[armpostgresqlflexibleservers.ServersClientCreateOrUpdateResponse]
	launched time.Time
	vaults   *armkeyvault.VaultsClient
	ids      *armmsi.UserAssignedIdentitiesClient

	// identities: primary and geo keys, one that may wrap but not unwrap, one with no access
	primary, geo, wrapOnly, noAccess cmkIdentity
	// key ids (versioned unless said otherwise)
	pinnedV1, autoBase, autoNewest, geoKey, centralKey, noPurgeKey, hsmKey   string
	disabledKey, expiredKey, notYetKey, signOnlyKey, noPurgeHSMKey, movedKey string
}

func newCMKSuite(t *testing.T) *cmkSuite {
	t.Helper()
	runDir := testenv.RuntimeDir(t)
	// A short key-check interval so that the key monitor looks at the keys during the suite
	// (the pinned-rotation case waits for one of its checks).
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--key-check-interval", "1s"}})
	s := &cmkSuite{t: t, ctx: context.Background(), d: d, runDir: runDir, sub: d.Profile().SubscriptionID, tenant: d.Profile().TenantID,
		creating: map[string]*runtime.Poller[armpostgresqlflexibleservers.ServersClientCreateOrUpdateResponse]{}}
	s.admin = testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default"))
	s.cred, s.opts = d.SDK()
	var err error
	if s.servers, err = armpostgresqlflexibleservers.NewServersClient(s.sub, s.cred, s.opts); err != nil {
		t.Fatal(err)
	}
	if s.vaults, err = armkeyvault.NewVaultsClient(s.sub, s.cred, s.opts); err != nil {
		t.Fatal(err)
	}
	if s.ids, err = armmsi.NewUserAssignedIdentitiesClient(s.sub, s.cred, s.opts); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *cmkSuite) identity(name, location string) cmkIdentity {
	s.t.Helper()
	res, err := s.ids.CreateOrUpdate(s.ctx, "rg", name, armmsi.Identity{Location: to.Ptr(location)}, nil)
	if err != nil {
		s.t.Fatalf("create identity %s: %v", name, err)
	}
	return cmkIdentity{id: *res.ID, principal: *res.Properties.PrincipalID, client: *res.Properties.ClientID}
}

// policy is an access-policy entry granting key permissions.
func (s *cmkSuite) policy(oid string, perms ...string) *armkeyvault.AccessPolicyEntry {
	var keys []*armkeyvault.KeyPermissions
	for _, p := range perms {
		keys = append(keys, to.Ptr(armkeyvault.KeyPermissions(p)))
	}
	return &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(s.tenant), ObjectID: to.Ptr(oid), Permissions: &armkeyvault.Permissions{Keys: keys}}
}

// vault creates a vault in location; the administrator may do anything with its keys, the
// policies given add the identities' grants.
func (s *cmkSuite) vault(name, location string, purgeProtection bool, policies ...*armkeyvault.AccessPolicyEntry) *azkeys.Client {
	s.t.Helper()
	props := &armkeyvault.VaultProperties{TenantID: to.Ptr(s.tenant),
		SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
		SoftDeleteRetentionInDays: to.Ptr[int32](7),
		AccessPolicies:            append([]*armkeyvault.AccessPolicyEntry{s.policy(s.admin, "all")}, policies...)}
	if purgeProtection {
		props.EnablePurgeProtection = to.Ptr(true)
	}
	poller, err := s.vaults.BeginCreateOrUpdate(s.ctx, "rg", name, armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(location), Properties: props}, nil)
	if err != nil {
		s.t.Fatalf("create vault %s: %v", name, err)
	}
	v, err := poller.PollUntilDone(s.ctx, nil)
	if err != nil {
		s.t.Fatalf("create vault %s: %v", name, err)
	}
	return s.keyClient(strings.TrimSuffix(*v.Properties.VaultURI, "/"), s.cred)
}

func (s *cmkSuite) keyClient(url string, cred azcore.TokenCredential) *azkeys.Client {
	s.t.Helper()
	c, err := azkeys.NewClient(url, cred, &azkeys.ClientOptions{ClientOptions: s.opts.ClientOptions})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// key creates an RSA key and returns its versioned id.
func (s *cmkSuite) key(c *azkeys.Client, name string, p azkeys.CreateKeyParameters) string {
	s.t.Helper()
	if p.Kty == nil {
		p.Kty = to.Ptr(azkeys.KeyTypeRSA)
	}
	k, err := c.CreateKey(s.ctx, name, p, nil)
	if err != nil {
		s.t.Fatalf("create key %s: %v", name, err)
	}
	return string(*k.Key.KID)
}

// cmkServer is a create request for a CMK server (geo-redundant when geoKey is set).
func (s *cmkSuite) cmkServer(primaryKey string, primary cmkIdentity, geoKey string, geo cmkIdentity) armpostgresqlflexibleservers.Server {
	ids := map[string]*armpostgresqlflexibleservers.UserIdentity{primary.id: {}}
	enc := &armpostgresqlflexibleservers.DataEncryption{Type: to.Ptr(armpostgresqlflexibleservers.DataEncryptionTypeAzureKeyVault),
		PrimaryKeyURI: to.Ptr(primaryKey), PrimaryUserAssignedIdentityID: to.Ptr(primary.id)}
	backup := armpostgresqlflexibleservers.GeographicallyRedundantBackupDisabled
	if geoKey != "" {
		ids[geo.id] = &armpostgresqlflexibleservers.UserIdentity{}
		enc.GeoBackupKeyURI, enc.GeoBackupUserAssignedIdentityID = to.Ptr(geoKey), to.Ptr(geo.id)
		backup = armpostgresqlflexibleservers.GeographicallyRedundantBackupEnabled
	}
	return armpostgresqlflexibleservers.Server{Location: to.Ptr("eastus"),
		SKU:      &armpostgresqlflexibleservers.SKU{Name: to.Ptr("Standard_B1ms"), Tier: to.Ptr(armpostgresqlflexibleservers.SKUTierBurstable)},
		Identity: &armpostgresqlflexibleservers.UserAssignedIdentity{Type: to.Ptr(armpostgresqlflexibleservers.IdentityTypeUserAssigned), UserAssignedIdentities: ids},
		Properties: &armpostgresqlflexibleservers.ServerProperties{
			AdministratorLogin: to.Ptr("pgadmin"), AdministratorLoginPassword: to.Ptr(adminPassword),
			Version:        to.Ptr(armpostgresqlflexibleservers.PostgresMajorVersion("15")),
			Storage:        &armpostgresqlflexibleservers.Storage{StorageSizeGB: to.Ptr[int32](32)},
			Backup:         &armpostgresqlflexibleservers.Backup{GeoRedundantBackup: to.Ptr(backup)},
			CreateMode:     to.Ptr(armpostgresqlflexibleservers.CreateModeCreate),
			DataEncryption: enc,
		}}
}

// launch starts creating a server with the SDK (the create runs on while the suite goes on:
// servers are created side by side to keep the suite short).
func (s *cmkSuite) launch(name string, body armpostgresqlflexibleservers.Server) {
	s.t.Helper()
	poller, err := s.servers.BeginCreateOrUpdate(s.ctx, "rg", name, body, nil)
	if err != nil {
		s.t.Fatalf("create %s: %v", name, err)
	}
	s.creating[name] = poller
}

// created waits until the server launch started is Ready and returns what the SDK's poller
// returned (the final GET).
func (s *cmkSuite) created(t *testing.T, name string) armpostgresqlflexibleservers.Server {
	t.Helper()
	res, err := s.creating[name].PollUntilDone(s.ctx, &runtimePollOptions)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Logf("%s created %s after the launch", name, time.Since(s.launched).Round(time.Millisecond))
	return res.Server
}

// auditEvent is one entry of a key store's audit trail (pgflex's auditEvents extension).
type auditEvent struct {
	Time       time.Time `json:"time"`
	KeyName    string    `json:"keyName"`
	KeyVersion string    `json:"keyVersion"`
	Operation  string    `json:"operationName"`
	Caller     string    `json:"callerObjectId"`
	Status     int       `json:"httpStatusCode"`
	// ClientInfo is the caller's User-Agent: the data plane's names the server and the reason.
	ClientInfo string `json:"clientInfo"`
}

// audit reads the audit trail of one key of a key store (its ARM id), every page.
func (s *cmkSuite) audit(storeID, key string) []auditEvent {
	s.t.Helper()
	return auditTrail(s.t, s.d, storeID, key)
}

// auditTrail reads the audit trail of one key of a key store (its ARM id), every page.
func auditTrail(t testing.TB, d *testenv.Daemon, storeID, key string) []auditEvent {
	t.Helper()
	var out []auditEvent
	for next := storeID + "/auditEvents?api-version=2023-07-01&keyName=" + key; next != ""; {
		r := d.ARM(t, http.MethodGet, next, nil)
		if r.Status != 200 {
			t.Fatalf("audit of %s: %d %s", key, r.Status, r.Raw)
		}
		var page struct {
			Value    []auditEvent `json:"value"`
			NextLink string       `json:"nextLink"`
		}
		if err := json.Unmarshal(r.Raw, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Value...)
		next = page.NextLink
	}
	return out
}

// keyOps counts the successful wrapKey and unwrapKey calls per caller (and version) since a time.
func keyOps(events []auditEvent, since time.Time) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		if e.Status == 200 && !e.Time.Before(since) && (e.Operation == "KeyWrap" || e.Operation == "KeyUnwrap") {
			n[e.Operation+" "+e.Caller+" "+e.KeyVersion]++
			n[e.Operation+" "+e.Caller]++
		}
	}
	return n
}

// afterLastRotation is the part of a key's audit trail (oldest first) after its last rotation.
func afterLastRotation(events []auditEvent) ([]auditEvent, bool) {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Operation == "KeyRotate" && events[i].Status == 200 {
			return events[i+1:], true
		}
	}
	return nil, false
}

// waitChecksAfterRotation waits until the key's audit trail shows n successful reads of the key
// by the principal (a server's identity: the key monitor's checks) after the key's last
// rotation. The monitor checks a server's keys one check after another, and a check acts on
// what it read before the next begins: after two, the first check after the rotation is over.
func waitChecksAfterRotation(t testing.TB, d *testenv.Daemon, storeID, key, principal string, n int) {
	t.Helper()
	testkit.Eventually(t, time.Minute, fmt.Sprintf("%d checks of %s by %s after its rotation", n, key, principal), func() error {
		after, ok := afterLastRotation(auditTrail(t, d, storeID, key))
		if !ok {
			return errors.New("no rotation in the audit trail")
		}
		gets := 0
		for _, e := range after {
			if e.Operation == "KeyGet" && e.Caller == principal && e.Status == 200 {
				gets++
			}
		}
		if gets < n {
			return fmt.Errorf("%d so far", gets)
		}
		return nil
	})
}

// rewrapsAfterRotation counts the principal's wraps and unwraps after the key's last rotation.
func rewrapsAfterRotation(events []auditEvent, principal string) int {
	after, _ := afterLastRotation(events)
	n := 0
	for _, e := range after {
		if (e.Operation == "KeyWrap" || e.Operation == "KeyUnwrap") && e.Caller == principal {
			n++
		}
	}
	return n
}

// header reads the wrapped-DEK header beside the volume of the server whose key is keyName.
func (s *cmkSuite) header(keyName string) map[string]any {
	s.t.Helper()
	h, _ := s.headerAndUID(keyName)
	return h
}

// headerAndUID is header, and the uid of the server (the name of its directories).
func (s *cmkSuite) headerAndUID(keyName string) (map[string]any, string) {
	s.t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.d.DataDir, "servers", "*", "header.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			s.t.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(b, &h); err != nil {
			s.t.Fatalf("%s: %v", f, err)
		}
		if strings.HasSuffix(fmt.Sprint(h["keyId"]), "/keys/"+keyName) {
			return h, filepath.Base(filepath.Dir(f))
		}
	}
	s.t.Fatalf("no DEK header names key %s among %v", keyName, files)
	return nil, ""
}

func version(kid string) string { return kid[strings.LastIndex(kid, "/")+1:] }
func base(kid string) string    { return kid[:strings.LastIndex(kid, "/")] }

func (s *cmkSuite) storeID(typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/rg/providers/Microsoft.KeyVault/%s/%s", s.sub, typ, name)
}

// managedHSMs creates two Managed HSMs in eastus, with and without purge protection, each with
// an RSA-HSM key on which the primary identity holds Managed HSM Crypto Service Encryption User
// (granted on the HSM's own host, its local RBAC); it returns the two keys' ids.
func (s *cmkSuite) managedHSMs() (key, noPurgeKey string) {
	s.t.Helper()
	hsms, err := armkeyvault.NewManagedHsmsClient(s.sub, s.cred, s.opts)
	if err != nil {
		s.t.Fatal(err)
	}
	hsmToken := s.d.Token(s.t, "https://"+s.d.Profile().ManagedHSMDNSSuffix+"/.default")
	var kids []string
	for _, h := range []struct {
		name  string
		purge bool
	}{{"cmkhsm", true}, {"cmkhsm-nopp", false}} {
		poller, err := hsms.BeginCreateOrUpdate(s.ctx, "rg", h.name, armkeyvault.ManagedHsm{Location: to.Ptr("eastus"),
			SKU: &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
			Properties: &armkeyvault.ManagedHsmProperties{TenantID: to.Ptr(s.tenant), InitialAdminObjectIDs: []*string{to.Ptr(s.admin)},
				SoftDeleteRetentionInDays: to.Ptr[int32](7), EnablePurgeProtection: to.Ptr(h.purge)}}, nil)
		if err != nil {
			s.t.Fatalf("create managed HSM %s: %v", h.name, err)
		}
		res, err := poller.PollUntilDone(s.ctx, nil)
		if err != nil {
			s.t.Fatalf("create managed HSM %s: %v", h.name, err)
		}
		uri := strings.TrimSuffix(*res.Properties.HsmURI, "/")
		kid := s.key(s.keyClient(uri, s.cred), "hsmkey", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)})
		r := s.d.Do(s.t, http.MethodPut, uri+"//keys/hsmkey/providers/Microsoft.Authorization/roleAssignments/"+newGUID()+"?api-version=7.4", hsmToken,
			map[string]any{"properties": map[string]any{"principalId": s.primary.principal,
				"roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/33413926-3206-4cdd-b39a-83574fe37a17"}})
		if r.Status != 201 {
			s.t.Fatalf("assign Managed HSM Crypto Service Encryption User on %s: %d %s", h.name, r.Status, r.Raw)
		}
		kids = append(kids, kid)
	}
	return kids[0], kids[1]
}

func newGUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// TestCustomerManagedKeys is the acceptance suite of issue 5 (see the subtests).
func TestCustomerManagedKeys(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	began := time.Now()
	s := newCMKSuite(t)
	createGroup(t, s.d, "rg", "eastus")
	s.primary = s.identity("id-primary", "eastus")
	// Outside the region it serves (westus): accepted, with a warning in the log.
	s.geo = s.identity("id-geo", "centralus")
	s.wrapOnly = s.identity("id-wraponly", "eastus")
	s.noAccess = s.identity("id-noaccess", "eastus")
	serviceUse := []string{"get", "list", "wrapKey", "unwrapKey"}
	east := s.vault("cmk-east", "eastus", true, s.policy(s.primary.principal, serviceUse...), s.policy(s.wrapOnly.principal, "get", "wrapKey"))
	west := s.vault("cmk-west", "westus", true, s.policy(s.geo.principal, serviceUse...), s.policy(s.primary.principal, serviceUse...))
	central := s.vault("cmk-central", "centralus", true, s.policy(s.primary.principal, serviceUse...), s.policy(s.geo.principal, serviceUse...))
	noPurge := s.vault("cmk-nopp", "eastus", false, s.policy(s.primary.principal, serviceUse...))
	s.pinnedV1 = s.key(east, "pinned", azkeys.CreateKeyParameters{})
	autoV1 := s.key(east, "auto", azkeys.CreateKeyParameters{KeySize: to.Ptr[int32](3072)})
	s.autoNewest = s.key(east, "auto", azkeys.CreateKeyParameters{KeySize: to.Ptr[int32](3072)}) // a second version, the newest
	s.autoBase = base(s.autoNewest)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	s.disabledKey = s.key(east, "disabled", azkeys.CreateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}})
	s.expiredKey = s.key(east, "expired", azkeys.CreateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}})
	s.notYetKey = s.key(east, "notyet", azkeys.CreateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{NotBefore: &future}})
	s.signOnlyKey = s.key(east, "signonly", azkeys.CreateKeyParameters{KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)}})
	s.geoKey = s.key(west, "geo", azkeys.CreateKeyParameters{})
	s.centralKey = s.key(central, "central", azkeys.CreateKeyParameters{})
	s.noPurgeKey = s.key(noPurge, "nopp", azkeys.CreateKeyParameters{})
	s.movedKey = s.key(east, "moved", azkeys.CreateKeyParameters{KeySize: to.Ptr[int32](4096)})
	s.hsmKey, s.noPurgeHSMKey = s.managedHSMs()
	t.Logf("setup: %s", time.Since(began).Round(time.Millisecond))

	t.Run("refusals", s.refusals)
	// The four servers are created side by side; each subtest waits for its own.
	s.launched = time.Now()
	s.launch("pg-pinned", s.cmkServer(s.pinnedV1, s.primary, "", cmkIdentity{}))
	s.launch("pg-geo", s.cmkServer(s.autoBase, s.primary, s.geoKey, s.geo))
	s.launch("pg-hsm", s.cmkServer(s.hsmKey, s.primary, "", cmkIdentity{}))
	s.launch("pg-smk", s.smkServer(s.noAccess, s.wrapOnly))
	t.Run("pinned key: create, rotate, update, restart", func(t *testing.T) { s.pinned(t, east) })
	t.Run("geo-redundant backup with a versionless primary key", func(t *testing.T) { s.geoVersionless(t, autoV1) })
	t.Run("update refusals change nothing", s.updateRefusals)
	t.Run("every api-version's shape", s.shapesPerVersion)
	t.Run("identity removal", s.identityRemoval)
	t.Run("managed HSM key", s.managedHSMKey)
	t.Logf("suite: %s", time.Since(began).Round(time.Millisecond))
}
