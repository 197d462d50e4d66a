package keyvault

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// A Managed HSM is a key store of its own kind: an ARM resource (Microsoft.KeyVault/managedHSMs)
// whose keys REST API is served on {name}.{ManagedHSMSuffix}, authorized by local RBAC only
// (role assignments kept by the HSM itself, at the scopes /, /keys and /keys/{name}). Its keys
// are the same versioned, sealed RSA keys as a vault's, reported with kty RSA-HSM.
//
// Unlike Azure's, a pgflex Managed HSM is active as soon as it is created: there is no
// security-domain download to activate it, and no hardware behind it (the keys are sealed under
// the daemon's root key like every other key).

// Managed HSM SKUs Azure offers in family B.
var hsmSKUs = []string{"Standard_B1", "Custom_B32", "Custom_B6"}

// Built-in Managed HSM roles the initial administrators receive.
const (
	hsmRoleAdministrator = "a290e904-7015-4bba-90c8-60543313cdb4"
	hsmRoleCryptoUser    = "21dbd100-6940-42c2-9190-5d6cb909625b"
)

// ValidateHSMName applies Azure's Managed HSM naming rules (those of vaults).
func ValidateHSMName(name string) error {
	if !vaultNameRE.MatchString(name) || strings.Contains(name, "--") {
		return arm.InvalidParameter("name",
			"The managed HSM name '%s' is invalid. A managed HSM's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", name)
	}
	return nil
}

func hsmNotFound(sub, rg, name string) *arm.Error {
	return arm.ResourceNotFound(arm.NewResourceID(sub, rg, "Microsoft.KeyVault", "managedHSMs", name))
}

func hsmAlreadyExists(name string) *arm.Error {
	return arm.Conflict("ConflictError",
		"The managed HSM name '%s' is already in use. Managed HSM names are globally unique; if the HSM was deleted it stays in a recoverable state until it is purged or its retention ends.", name)
}

func deletedHSMNotFound(name, location string) *arm.Error {
	return arm.Errorf(http.StatusNotFound, "ResourceNotFound",
		"The deleted managed HSM '%s' does not exist in location '%s'.", name, location)
}

// activeHSMInGroup reads a live Managed HSM by its ARM coordinates: ARM's 404 when the name is
// unknown, soft-deleted, or belongs to another group.
func activeHSMInGroup(tx store.Tx, sub, rg, name string) (*Vault, error) {
	v, err := getRecord(tx, KindManagedHSM, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, hsmNotFound(sub, rg, name)
	}
	if err != nil {
		return nil, err
	}
	if v.Deleted != nil || !strings.EqualFold(v.SubscriptionID, sub) || !strings.EqualFold(v.ResourceGroup, rg) {
		return nil, hsmNotFound(sub, rg, name)
	}
	return v, nil
}

// hsmView is the ARM representation of a Managed HSM.
func (s *Service) hsmView(v *Vault) map[string]any {
	tags := v.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	admins := v.InitialAdmins
	if admins == nil {
		admins = []string{}
	}
	props := map[string]any{
		"tenantId":                  v.Props.TenantID,
		"initialAdminObjectIds":     admins,
		"enableSoftDelete":          true,
		"softDeleteRetentionInDays": v.Props.SoftDeleteRetentionInDays,
		"enablePurgeProtection":     v.PurgeProtected(),
		"hsmUri":                    s.HSMURI(v.Name),
		"provisioningState":         "Succeeded",
		"statusMessage":             "The Managed HSM is provisioned and ready to use.",
		"publicNetworkAccess":       v.Props.PublicNetworkAccess,
		"securityDomainProperties": map[string]any{"activationStatus": "Active",
			"activationStatusMessage": "Your HSM has been activated and can be used for cryptographic operations."},
		"regions":                    []any{},
		"privateEndpointConnections": []any{},
		"scheduledPurgeDate":         nil,
	}
	if v.Props.NetworkACLs != nil {
		props["networkAcls"] = v.Props.NetworkACLs
	}
	return map[string]any{
		"id":       v.ResourceID().String(),
		"name":     v.Name,
		"type":     HSMResourceType,
		"location": v.Location,
		"sku":      map[string]any{"family": v.Props.SKU.Family, "name": v.Props.SKU.Name},
		"tags":     tags,
		"systemData": map[string]any{
			"createdBy": v.CreatedBy, "createdByType": "Application", "createdAt": v.Created.Format(time.RFC3339Nano),
			"lastModifiedBy": v.CreatedBy, "lastModifiedByType": "Application", "lastModifiedAt": v.Updated.Format(time.RFC3339Nano),
		},
		"properties": props,
	}
}

// deletedHSMView is the ARM representation of a soft-deleted Managed HSM.
func (s *Service) deletedHSMView(v *Vault) map[string]any {
	tags := v.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{
		"id":   fmt.Sprintf("/subscriptions/%s/providers/Microsoft.KeyVault/locations/%s/deletedManagedHSMs/%s", v.SubscriptionID, v.Location, v.Name),
		"name": v.Name,
		"type": "Microsoft.KeyVault/deletedManagedHSMs",
		"properties": map[string]any{
			"mhsmId":                 v.ResourceID().String(),
			"location":               v.Location,
			"deletionDate":           v.Deleted.DeletionDate.Format(time.RFC3339),
			"scheduledPurgeDate":     v.Deleted.ScheduledPurgeDate.Format(time.RFC3339),
			"tags":                   tags,
			"purgeProtectionEnabled": v.PurgeProtected(),
		},
	}
}

// normalizeHSMSKU checks a Managed HSM's sku: family B and one of Azure's B sizes.
func normalizeHSMSKU(sku *SKU) error {
	if sku == nil || sku.Name == "" {
		return arm.InvalidParameter("sku", "The managed HSM's sku is required: {\"family\": \"B\", \"name\": \"Standard_B1\"}.")
	}
	found := ""
	for _, n := range hsmSKUs {
		if strings.EqualFold(n, sku.Name) {
			found = n
		}
	}
	if found == "" {
		return arm.InvalidParameter("sku.name", "The sku name '%s' is invalid. Allowed values are %s.", sku.Name, strings.Join(hsmSKUs, ", "))
	}
	if sku.Family != "" && !strings.EqualFold(sku.Family, "B") {
		return arm.InvalidParameter("sku.family", "The sku family '%s' is invalid. The only allowed value is 'B'.", sku.Family)
	}
	sku.Name, sku.Family = found, "B"
	return nil
}
