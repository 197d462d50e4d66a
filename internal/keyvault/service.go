package keyvault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
)

// ResourceType is the ARM type of a vault.
const ResourceType = "Microsoft.KeyVault/vaults"

// HSMResourceType is the ARM type of a Managed HSM.
const HSMResourceType = "Microsoft.KeyVault/managedHSMs"

// HSMAPIVersions are the Microsoft.KeyVault/managedHSMs api-versions accepted (armkeyvault
// v1.5.0 sends 2024-11-01).
var HSMAPIVersions = []string{"2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"}

// APIVersions are the Microsoft.KeyVault/vaults api-versions accepted.
var APIVersions = []string{"2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"}

// TokenVerifier checks a bearer token for one of the audiences and returns its claims and
// principal; *auth.Issuer is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string, audiences ...string) (auth.Claims, *auth.Principal, error)
}

// Options are what the key store needs from the daemon.
type Options struct {
	Store store.Store
	Box   *seal.Box // the root key: every private key is sealed under it
	// Tokens verifies data-plane bearer tokens.
	Tokens TokenVerifier
	// Roles decides RBAC-authorized vaults. Nil until internal/rbac is wired: then every
	// operation on a vault with enableRbacAuthorization is refused (fail closed).
	Roles RoleChecker
	// Endpoint is the daemon's base URL (https://127.0.0.1:8443): the bearer challenge names
	// {Endpoint}/{tenantId} as the authority, and vault URIs take its port.
	Endpoint string
	// KeyVaultSuffix is the DNS suffix of vault hosts, e.g. vault.localhost.
	KeyVaultSuffix string
	// ManagedHSMSuffix is the DNS suffix of Managed HSM hosts, e.g. managedhsm.localhost. Empty
	// means no Managed HSM data plane (the ARM resource can still be managed).
	ManagedHSMSuffix string
	// HSMRoles is the catalog of Managed HSM local-RBAC roles (internal/rbac's); without it
	// every Managed HSM operation is refused (fail closed).
	HSMRoles HSMRoleCatalog
	// Operations runs ARM long-running operations (the purge of a deleted Managed HSM, which
	// Azure's clients poll); nil answers them synchronously.
	Operations *arm.Operations
	// TenantID is the directory's tenant.
	TenantID string
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaintenanceInterval is how often the rotation and purge loop runs; 0 means a minute.
	MaintenanceInterval time.Duration
}

// Service is the key store.
type Service struct {
	st        store.Store
	box       *seal.Box
	tokens    TokenVerifier
	roles     RoleChecker
	hsmRoles  map[string]rbac.RoleDefinition // by lower-case GUID
	ops       *arm.Operations
	endpoint  string
	port      string
	suffix    string
	hsmSuffix string
	tenantID  string
	log       *slog.Logger
	now       func() time.Time
	interval  time.Duration

	wake chan struct{} // nudges the maintenance loop
	keys *keyCache     // unsealed private keys, by store key

	svcMu sync.Mutex // serialises the lazy creation of service keys
}

// New makes the key store.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Box == nil || o.Tokens == nil {
		return nil, errors.New("keyvault: store, root key and token verifier are required")
	}
	if o.KeyVaultSuffix == "" || o.Endpoint == "" || o.TenantID == "" {
		return nil, errors.New("keyvault: endpoint, key vault DNS suffix and tenant are required")
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("keyvault: endpoint %q is not a URL", o.Endpoint)
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		port = "443"
	}
	s := &Service{st: o.Store, box: o.Box, tokens: o.Tokens, roles: o.Roles, ops: o.Operations, endpoint: o.Endpoint,
		port: port, suffix: o.KeyVaultSuffix, hsmSuffix: o.ManagedHSMSuffix, tenantID: o.TenantID, log: o.Log, now: o.Now,
		interval: o.MaintenanceInterval, wake: make(chan struct{}, 1), keys: newKeyCache(256),
		hsmRoles: map[string]rbac.RoleDefinition{}}
	if o.HSMRoles != nil {
		for _, r := range o.HSMRoles.ManagedHSMRoleDefinitions() {
			s.hsmRoles[strings.ToLower(r.ID)] = r
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.interval <= 0 {
		s.interval = time.Minute
	}
	if s.ops != nil {
		s.ops.RegisterResumer(kindPurgeHSM, s.resumePurgeHSM)
	}
	return s, nil
}

// hostPort is the host (and port, unless it is HTTPS's default) of a vault.
func (s *Service) hostPort(name string) string { return s.hostPortIn(name, s.suffix) }

func (s *Service) hostPortIn(name, suffix string) string {
	h := name + "." + suffix
	if s.port != "443" {
		h += ":" + s.port
	}
	return h
}

// storeHost is the host (and port) of a key store of either kind.
func (s *Service) storeHost(v *Vault) string {
	if v.IsManagedHSM() {
		return s.hostPortIn(strings.ToLower(v.Name), s.hsmSuffix)
	}
	return s.hostPort(strings.ToLower(v.Name))
}

// VaultURI is the data-plane URI of a vault, as ARM's vaultUri reports it.
func (s *Service) VaultURI(name string) string {
	return "https://" + s.hostPort(strings.ToLower(name)) + "/"
}

// HSMURI is the data-plane URI of a Managed HSM, as ARM's hsmUri reports it.
func (s *Service) HSMURI(name string) string {
	return "https://" + s.hostPortIn(strings.ToLower(name), s.hsmSuffix) + "/"
}

// Audience is the key-store token audience, https://{suffix}.
func (s *Service) Audience() string { return "https://" + s.suffix }

// HSMAudience is the Managed HSM token audience, https://{managedHsmSuffix}.
func (s *Service) HSMAudience() string { return "https://" + s.hsmSuffix }

// ChallengeResource is the resource the bearer challenge names: the audience with the
// daemon's port, because azkeys accepts a challenge only when the resource's host:port is a
// parent domain of the vault's host:port. Tokens for either form are accepted.
func (s *Service) ChallengeResource() string { return s.withPort(s.Audience()) }

// HSMChallengeResource is ChallengeResource for Managed HSM hosts.
func (s *Service) HSMChallengeResource() string { return s.withPort(s.HSMAudience()) }

func (s *Service) withPort(aud string) string {
	if s.port == "443" {
		return aud
	}
	return aud + ":" + s.port
}

// audiencesOf are the token audiences a key store accepts: its kind's audience, bare or with
// the daemon's port.
func (s *Service) audiencesOf(v *Vault) (audience, challenge string) {
	if v.IsManagedHSM() {
		return s.HSMAudience(), s.HSMChallengeResource()
	}
	return s.Audience(), s.ChallengeResource()
}

// RegisterRoutes adds the Microsoft.KeyVault routes to the ARM router.
func (s *Service) RegisterRoutes(rt *arm.Router) {
	vault := "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults/{vaultName}"
	route := func(method, pattern string, h arm.HandlerFunc) {
		rt.Handle(arm.Route{Method: method, Pattern: pattern, ResourceType: ResourceType, APIVersions: APIVersions, Handler: h})
	}
	route(http.MethodPut, vault, s.putVault)
	route(http.MethodPatch, vault, s.patchVault)
	route(http.MethodGet, vault, s.getVault)
	route(http.MethodDelete, vault, s.deleteVault)
	route(http.MethodPut, vault+"/accessPolicies/{operationKind}", s.updateAccessPolicy)
	route(http.MethodGet, vault+"/auditEvents", s.listAuditEvents)
	route(http.MethodGet, "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults", s.listVaultsByGroup)
	route(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/vaults", s.listVaultsBySubscription)
	route(http.MethodPost, "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/checkNameAvailability", s.checkNameAvailability)
	deleted := "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{vaultName}"
	route(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/deletedVaults", s.listDeletedVaults)
	route(http.MethodGet, deleted, s.getDeletedVault)
	route(http.MethodPost, deleted+"/purge", s.purgeDeletedVault)

	hsmRoute := func(method, pattern string, h arm.HandlerFunc) {
		rt.Handle(arm.Route{Method: method, Pattern: pattern, ResourceType: HSMResourceType, APIVersions: HSMAPIVersions, Handler: h})
	}
	hsm := "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/managedHSMs/{name}"
	hsmRoute(http.MethodPut, hsm, s.putHSM)
	hsmRoute(http.MethodGet, hsm, s.getHSM)
	hsmRoute(http.MethodDelete, hsm, s.deleteHSM)
	hsmRoute(http.MethodGet, hsm+"/auditEvents", s.listHSMAuditEvents)
	hsmRoute(http.MethodGet, "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/managedHSMs", s.listHSMsByGroup)
	hsmRoute(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/managedHSMs", s.listHSMsBySubscription)
	deletedHSM := "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/locations/{location}/deletedManagedHSMs/{name}"
	hsmRoute(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/deletedManagedHSMs", s.listDeletedHSMs)
	hsmRoute(http.MethodGet, deletedHSM, s.getDeletedHSM)
	hsmRoute(http.MethodPost, deletedHSM+"/purge", s.purgeDeletedHSM)
}

// Member is the resource-group cascade hook: deleting a group soft-deletes its vaults and
// Managed HSMs.
func (s *Service) Member() resources.Member {
	return resources.Member{Name: "Microsoft.KeyVault", Order: 50, DeleteAllInGroup: s.deleteAllInGroup, List: s.listGeneric}
}

// listGeneric reports the live vaults and Managed HSMs of a subscription for Microsoft.Resources'
// generic list, which az keyvault list and az keyvault show -n (without a group) read.
func (s *Service) listGeneric(ctx context.Context, sub string) ([]resources.GenericResource, error) {
	var out []resources.GenericResource
	err := s.st.View(ctx, func(tx store.Tx) error {
		all, err := listKeyStoreRecords(tx)
		if err != nil {
			return err
		}
		for i := range all {
			v := &all[i]
			if v.Deleted != nil || !strings.EqualFold(v.SubscriptionID, sub) {
				continue
			}
			id := v.ResourceID()
			out = append(out, resources.GenericResource{ID: id.String(), Name: v.Name, Type: id.Type(),
				Location: v.Location, Tags: v.Tags})
		}
		return nil
	})
	return out, err
}
