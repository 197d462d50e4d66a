package keyvault

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// Vault is a key store's stored record: a vault, or a Managed HSM (Kind). Names are global
// within a kind (one namespace across subscriptions, active and soft-deleted), so the record is
// keyed by kind and name alone. Both kinds serve the same keys REST API; they differ in their
// host suffix, token audience and authorization (a Managed HSM knows local RBAC only).
type Vault struct {
	// ID is the vault's internal identity: a GUID that outlives name reuse after a purge and
	// keys the vault's keys and audit trail.
	ID string `json:"internalId"`
	// Kind is "" for a vault, KindManagedHSM for a Managed HSM.
	Kind           string            `json:"kind,omitempty"`
	Name           string            `json:"name"` // casing as created
	SubscriptionID string            `json:"subscriptionId"`
	ResourceGroup  string            `json:"resourceGroup"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	Props          VaultProperties   `json:"properties"`
	// InitialAdmins are a Managed HSM's initialAdminObjectIds.
	InitialAdmins []string       `json:"initialAdminObjectIds,omitempty"`
	Created       time.Time      `json:"created"`
	CreatedBy     string         `json:"createdBy,omitempty"`
	Updated       time.Time      `json:"updated"`
	Deleted       *VaultDeletion `json:"deleted,omitempty"`
}

// VaultDeletion is the soft-deleted state of a vault.
type VaultDeletion struct {
	DeletionDate       time.Time `json:"deletionDate"`
	ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"`
}

// SKU is a vault's pricing tier.
type SKU struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

// NetworkACLs are a vault's firewall rules. pgflex records them; the daemon listens on one
// address, so they are not enforced.
type NetworkACLs struct {
	Bypass              string     `json:"bypass,omitempty"`
	DefaultAction       string     `json:"defaultAction,omitempty"`
	IPRules             []IPRule   `json:"ipRules"`
	VirtualNetworkRules []VNetRule `json:"virtualNetworkRules"`
}

// IPRule is one allowed address range.
type IPRule struct {
	Value string `json:"value"`
}

// VNetRule is one allowed subnet.
type VNetRule struct {
	ID                               string `json:"id"`
	IgnoreMissingVnetServiceEndpoint bool   `json:"ignoreMissingVnetServiceEndpoint,omitempty"`
}

// VaultProperties are the settable properties of a vault.
type VaultProperties struct {
	SKU                          SKU            `json:"sku"`
	TenantID                     string         `json:"tenantId"`
	AccessPolicies               []AccessPolicy `json:"accessPolicies"`
	EnabledForDeployment         bool           `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool           `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool           `json:"enabledForTemplateDeployment"`
	SoftDeleteRetentionInDays    int            `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection        *bool          `json:"enablePurgeProtection,omitempty"`
	EnableRbacAuthorization      bool           `json:"enableRbacAuthorization"`
	NetworkACLs                  *NetworkACLs   `json:"networkAcls,omitempty"`
	PublicNetworkAccess          string         `json:"publicNetworkAccess"`
}

// PurgeProtected reports whether purge protection is on.
func (v *Vault) PurgeProtected() bool {
	return v.Props.EnablePurgeProtection != nil && *v.Props.EnablePurgeProtection
}

// KindManagedHSM marks a Managed HSM's record.
const KindManagedHSM = "managedHSM"

// IsManagedHSM reports whether the record is a Managed HSM.
func (v *Vault) IsManagedHSM() bool { return v.Kind == KindManagedHSM }

// KindName is how messages name the key store's kind: "Key Vault" or "Managed HSM".
func (v *Vault) KindName() string {
	if v.IsManagedHSM() {
		return "Managed HSM"
	}
	return "Key Vault"
}

// ResourceID is the key store's ARM id.
func (v *Vault) ResourceID() arm.ResourceID {
	typ := "vaults"
	if v.IsManagedHSM() {
		typ = "managedHSMs"
	}
	return arm.NewResourceID(v.SubscriptionID, v.ResourceGroup, "Microsoft.KeyVault", typ, v.Name)
}

// RecoveryLevel is the recoveryLevel key attributes report, from retention and purge protection.
func (v *Vault) RecoveryLevel() string {
	lvl := "Recoverable"
	if v.Props.SoftDeleteRetentionInDays < 90 {
		lvl = "CustomizedRecoverable"
	}
	if !v.PurgeProtected() {
		lvl += "+Purgeable"
	}
	return lvl
}

const (
	defaultRetentionDays = 90
	minRetentionDays     = 7
	maxRetentionDays     = 90
	maxAccessPolicies    = 1024
)

func vaultKey(name string) string { return "kv/vault/" + strings.ToLower(name) }

// hsmKey is a Managed HSM's record key: HSM names are a namespace of their own, as their hosts
// are ({name}.managedhsm... versus {name}.vault...).
func hsmKey(name string) string { return "kv/hsm/" + strings.ToLower(name) }

// recordKey is where a key store's record lives, by kind.
func recordKey(kind, name string) string {
	if kind == KindManagedHSM {
		return hsmKey(name)
	}
	return vaultKey(name)
}

// Vault names: 3-24 characters, alphanumerics and hyphens, starting with a letter, ending with a
// letter or digit, no consecutive hyphens.
var vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

// ValidateVaultName applies Azure's vault naming rules.
func ValidateVaultName(name string) error {
	if !vaultNameRE.MatchString(name) || strings.Contains(name, "--") {
		return arm.BadRequest("VaultNameNotValid",
			"The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens. Follow this link for more information: https://go.microsoft.com/fwlink/?linkid=2147742", name)
	}
	return nil
}

func vaultAlreadyExists(name string) *arm.Error {
	return arm.Conflict("VaultAlreadyExists",
		"The vault name '%s' is already in use. Vault names are globally unique so it is possible that the name is already taken. If you are sure that the vault name was not taken then it is possible that a vault with the same name was recently deleted but not purged after being placed in a recoverable state. If the vault is in a recoverable state then the vault will need to be purged before reusing the name. For more information about VaultAlreadyExists, soft delete and purging a vault follow this link https://go.microsoft.com/fwlink/?linkid=2147740.", name)
}

func vaultInDeletedState() *arm.Error {
	return arm.Conflict("ConflictError",
		"A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault. Follow this link https://go.microsoft.com/fwlink/?linkid=2149745 for more information on soft delete.")
}

func vaultNotFound(sub, rg, name string) *arm.Error {
	return arm.ResourceNotFound(arm.NewResourceID(sub, rg, "Microsoft.KeyVault", "vaults", name))
}

func deletedVaultNotFound(name, location string) *arm.Error {
	return arm.Errorf(http.StatusNotFound, "DeletedVaultNotFound",
		"The deleted vault '%s' does not exist in location '%s'.", name, location)
}

// getVaultRecord reads the record for a vault name; store.ErrNotFound if none.
func getVaultRecord(tx store.Tx, name string) (*Vault, error) { return getRecord(tx, "", name) }

// getRecord reads the record of a key store of a kind; store.ErrNotFound if none.
func getRecord(tx store.Tx, kind, name string) (*Vault, error) {
	var v Vault
	if err := store.GetJSON(tx, recordKey(kind, name), &v); err != nil {
		return nil, err
	}
	v.Kind = kind
	return &v, nil
}

func putVaultRecord(tx store.Tx, v *Vault) error {
	return store.PutJSON(tx, recordKey(v.Kind, v.Name), v)
}

// activeVaultInGroup reads a live vault by its ARM coordinates: ARM's 404 when the name is
// unknown, soft-deleted, or belongs to another group.
func activeVaultInGroup(tx store.Tx, sub, rg, name string) (*Vault, error) {
	v, err := getVaultRecord(tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, vaultNotFound(sub, rg, name)
	}
	if err != nil {
		return nil, err
	}
	if v.Deleted != nil || !strings.EqualFold(v.SubscriptionID, sub) || !strings.EqualFold(v.ResourceGroup, rg) {
		return nil, vaultNotFound(sub, rg, name)
	}
	return v, nil
}

func listVaultRecords(tx store.Tx) ([]Vault, error) { return store.ListJSON[Vault](tx, "kv/vault/") }

func listHSMRecords(tx store.Tx) ([]Vault, error) {
	hs, err := store.ListJSON[Vault](tx, "kv/hsm/")
	for i := range hs {
		hs[i].Kind = KindManagedHSM
	}
	return hs, err
}

// listKeyStoreRecords lists vaults and Managed HSMs: what holds keys.
func listKeyStoreRecords(tx store.Tx) ([]Vault, error) {
	vs, err := listVaultRecords(tx)
	if err != nil {
		return nil, err
	}
	hs, err := listHSMRecords(tx)
	return append(vs, hs...), err
}

// vaultView is the ARM representation of a vault.
func (s *Service) vaultView(v *Vault) map[string]any {
	p := v.Props
	policies := p.AccessPolicies
	if policies == nil {
		policies = []AccessPolicy{}
	}
	tags := v.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	props := map[string]any{
		"sku":                          p.SKU,
		"tenantId":                     p.TenantID,
		"accessPolicies":               policies,
		"enabledForDeployment":         p.EnabledForDeployment,
		"enabledForDiskEncryption":     p.EnabledForDiskEncryption,
		"enabledForTemplateDeployment": p.EnabledForTemplateDeployment,
		"enableSoftDelete":             true,
		"softDeleteRetentionInDays":    p.SoftDeleteRetentionInDays,
		"enableRbacAuthorization":      p.EnableRbacAuthorization,
		"enablePurgeProtection":        p.EnablePurgeProtection,
		"vaultUri":                     s.VaultURI(v.Name),
		"provisioningState":            "Succeeded",
		"publicNetworkAccess":          p.PublicNetworkAccess,
	}
	if p.NetworkACLs != nil {
		props["networkAcls"] = p.NetworkACLs
	}
	return map[string]any{
		"id":       v.ResourceID().String(),
		"name":     v.Name,
		"type":     ResourceType,
		"location": v.Location,
		"tags":     tags,
		"systemData": map[string]any{
			"createdBy": v.CreatedBy, "createdByType": "Application", "createdAt": v.Created.Format(time.RFC3339Nano),
			"lastModifiedBy": v.CreatedBy, "lastModifiedByType": "Application", "lastModifiedAt": v.Updated.Format(time.RFC3339Nano),
		},
		"properties": props,
	}
}

// deletedVaultView is the ARM representation of a soft-deleted vault.
func (s *Service) deletedVaultView(v *Vault) map[string]any {
	tags := v.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{
		"id":   fmt.Sprintf("/subscriptions/%s/providers/Microsoft.KeyVault/locations/%s/deletedVaults/%s", v.SubscriptionID, v.Location, v.Name),
		"name": v.Name,
		"type": "Microsoft.KeyVault/deletedVaults",
		"properties": map[string]any{
			"vaultId":                v.ResourceID().String(),
			"location":               v.Location,
			"deletionDate":           v.Deleted.DeletionDate.Format(time.RFC3339),
			"scheduledPurgeDate":     v.Deleted.ScheduledPurgeDate.Format(time.RFC3339),
			"tags":                   tags,
			"purgeProtectionEnabled": v.PurgeProtected(),
		},
	}
}

// validateNetworkACLs checks and canonicalises firewall settings.
func validateNetworkACLs(n *NetworkACLs) error {
	if n == nil {
		return nil
	}
	switch {
	case n.Bypass == "":
		n.Bypass = "AzureServices"
	case strings.EqualFold(n.Bypass, "AzureServices"):
		n.Bypass = "AzureServices"
	case strings.EqualFold(n.Bypass, "None"):
		n.Bypass = "None"
	default:
		return arm.InvalidParameter("properties.networkAcls.bypass", "The value '%s' of networkAcls.bypass is invalid. Allowed values are 'AzureServices' and 'None'.", n.Bypass)
	}
	switch {
	case n.DefaultAction == "":
		n.DefaultAction = "Allow"
	case strings.EqualFold(n.DefaultAction, "Allow"):
		n.DefaultAction = "Allow"
	case strings.EqualFold(n.DefaultAction, "Deny"):
		n.DefaultAction = "Deny"
	default:
		return arm.InvalidParameter("properties.networkAcls.defaultAction", "The value '%s' of networkAcls.defaultAction is invalid. Allowed values are 'Allow' and 'Deny'.", n.DefaultAction)
	}
	for i, r := range n.IPRules {
		if net.ParseIP(r.Value) == nil {
			if _, _, err := net.ParseCIDR(r.Value); err != nil {
				return arm.InvalidParameter(fmt.Sprintf("properties.networkAcls.ipRules[%d].value", i),
					"The IP rule '%s' is not a valid IPv4 address or CIDR range.", r.Value)
			}
		}
	}
	if n.IPRules == nil {
		n.IPRules = []IPRule{}
	}
	for i, r := range n.VirtualNetworkRules {
		if _, err := arm.ParseResourceID(r.ID); err != nil {
			return arm.InvalidParameter(fmt.Sprintf("properties.networkAcls.virtualNetworkRules[%d].id", i),
				"The virtual network rule '%s' is not a subnet resource id.", r.ID)
		}
	}
	if n.VirtualNetworkRules == nil {
		n.VirtualNetworkRules = []VNetRule{}
	}
	return nil
}

func normalizePublicNetworkAccess(v string) (string, error) {
	switch {
	case v == "" || strings.EqualFold(v, "Enabled"):
		return "Enabled", nil
	case strings.EqualFold(v, "Disabled"):
		return "Disabled", nil
	}
	return "", arm.InvalidParameter("properties.publicNetworkAccess", "The value '%s' of publicNetworkAccess is invalid. Allowed values are 'Enabled' and 'Disabled'.", v)
}

func normalizeSKU(s *SKU) error {
	if s == nil {
		return arm.InvalidParameter("properties.sku", "The vault's sku is required.")
	}
	switch {
	case strings.EqualFold(s.Name, "standard"):
		s.Name = "standard"
	case strings.EqualFold(s.Name, "premium"):
		s.Name = "premium"
	default:
		return arm.InvalidParameter("properties.sku.name", "The sku name '%s' is invalid. Allowed values are 'standard' and 'premium'.", s.Name)
	}
	if s.Family == "" || strings.EqualFold(s.Family, "A") {
		s.Family = "A"
		return nil
	}
	return arm.InvalidParameter("properties.sku.family", "The sku family '%s' is invalid. The only allowed value is 'A'.", s.Family)
}
