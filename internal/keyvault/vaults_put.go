package keyvault

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// vaultBody is the body of PUT and PATCH on a vault.
type vaultBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *vaultPropsBody   `json:"properties"`
}

// vaultPropsBody distinguishes absent properties (nil) from given ones, which PATCH and the
// immutability rules need.
type vaultPropsBody struct {
	SKU                          *SKU            `json:"sku"`
	TenantID                     *string         `json:"tenantId"`
	AccessPolicies               *[]AccessPolicy `json:"accessPolicies"`
	EnabledForDeployment         *bool           `json:"enabledForDeployment"`
	EnabledForDiskEncryption     *bool           `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment *bool           `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             *bool           `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    *int            `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection        *bool           `json:"enablePurgeProtection"`
	EnableRbacAuthorization      *bool           `json:"enableRbacAuthorization"`
	CreateMode                   *string         `json:"createMode"`
	NetworkACLs                  *NetworkACLs    `json:"networkAcls"`
	PublicNetworkAccess          *string         `json:"publicNetworkAccess"`
}

// applyProps computes a vault's properties from a request body: on create (cur nil) with
// Azure's defaults, on update merging what the body gives over cur while refusing changes to
// what cannot change.
func applyProps(b *vaultPropsBody, cur *VaultProperties) (VaultProperties, error) {
	var p VaultProperties
	if cur != nil {
		p = *cur
		p.AccessPolicies = append([]AccessPolicy(nil), cur.AccessPolicies...)
	} else {
		p.SoftDeleteRetentionInDays = defaultRetentionDays
		p.PublicNetworkAccess = "Enabled"
		p.AccessPolicies = []AccessPolicy{}
	}
	if b.SKU != nil {
		sku := *b.SKU
		if err := normalizeSKU(&sku); err != nil {
			return p, err
		}
		p.SKU = sku
	}
	if b.TenantID != nil {
		if !IsGUID(*b.TenantID) {
			return p, arm.InvalidParameter("properties.tenantId", "The tenant id '%s' is invalid: it must be a GUID.", *b.TenantID)
		}
		p.TenantID = strings.ToLower(*b.TenantID)
	}
	if b.EnableSoftDelete != nil && !*b.EnableSoftDelete {
		return p, arm.BadRequest("BadRequest", `The property "enableSoftDelete" cannot be set to false. Enabling the soft delete for a vault is an irreversible action.`)
	}
	if b.SoftDeleteRetentionInDays != nil {
		d := *b.SoftDeleteRetentionInDays
		if d < minRetentionDays || d > maxRetentionDays {
			return p, arm.InvalidParameter("properties.softDeleteRetentionInDays",
				"The value of softDeleteRetentionInDays is invalid: it must be a number of days from %d to %d, and %d was given.", minRetentionDays, maxRetentionDays, d)
		}
		if cur != nil && d != cur.SoftDeleteRetentionInDays {
			return p, arm.BadRequest("BadRequest", `The property "softDeleteRetentionInDays" cannot be changed once the vault is created (it is %d days).`, cur.SoftDeleteRetentionInDays)
		}
		p.SoftDeleteRetentionInDays = d
	}
	if b.EnablePurgeProtection != nil {
		if !*b.EnablePurgeProtection {
			return p, arm.BadRequest("BadRequest", `The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.`)
		}
		t := true
		p.EnablePurgeProtection = &t
	}
	if b.EnableRbacAuthorization != nil {
		p.EnableRbacAuthorization = *b.EnableRbacAuthorization
	}
	if b.EnabledForDeployment != nil {
		p.EnabledForDeployment = *b.EnabledForDeployment
	}
	if b.EnabledForDiskEncryption != nil {
		p.EnabledForDiskEncryption = *b.EnabledForDiskEncryption
	}
	if b.EnabledForTemplateDeployment != nil {
		p.EnabledForTemplateDeployment = *b.EnabledForTemplateDeployment
	}
	if b.AccessPolicies != nil {
		ap, err := validateAccessPolicies("properties.accessPolicies", *b.AccessPolicies, maxAccessPolicies)
		if err != nil {
			return p, err
		}
		p.AccessPolicies = ap
	}
	if b.NetworkACLs != nil {
		n := *b.NetworkACLs
		if err := validateNetworkACLs(&n); err != nil {
			return p, err
		}
		p.NetworkACLs = &n
	}
	if b.PublicNetworkAccess != nil {
		v, err := normalizePublicNetworkAccess(*b.PublicNetworkAccess)
		if err != nil {
			return p, err
		}
		p.PublicNetworkAccess = v
	}
	if p.SKU.Name == "" {
		return p, arm.InvalidParameter("properties.sku", "The vault's sku is required.")
	}
	if p.TenantID == "" {
		return p, arm.InvalidParameter("properties.tenantId", "The vault's tenantId is required.")
	}
	return p, nil
}

func createMode(b *vaultPropsBody) (string, error) {
	if b == nil || b.CreateMode == nil || strings.EqualFold(*b.CreateMode, "default") {
		return "default", nil
	}
	if strings.EqualFold(*b.CreateMode, "recover") {
		return "recover", nil
	}
	return "", arm.InvalidParameter("properties.createMode", "The createMode '%s' is invalid. Allowed values are 'default' and 'recover'.", *b.CreateMode)
}

// putVault creates a vault, replaces its settable properties, or recovers a soft-deleted one
// (createMode recover).
func (s *Service) putVault(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName")
	if err := ValidateVaultName(name); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body vaultBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	mode, err := createMode(body.Properties)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if mode == "recover" {
		s.recoverVault(w, r, &body)
		return
	}
	if body.Location == nil || *body.Location == "" {
		arm.WriteError(w, r, arm.BadRequest("LocationRequired", "The location property is required for this definition."))
		return
	}
	reg, ok := regions.Lookup(*body.Location)
	if !ok {
		arm.WriteError(w, r, arm.BadRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			*body.Location, ResourceType, strings.Join(regions.Names(), ",")))
		return
	}
	if err := resources.ValidateTags(body.Tags); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Properties == nil {
		arm.WriteError(w, r, arm.InvalidParameter("properties", "The vault's properties are required."))
		return
	}
	now := s.now().UTC()
	status := http.StatusOK
	var v *Vault
	err = s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = getVaultRecord(tx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := resources.CheckGroupInTx(tx, sub, rg); err != nil {
				return err
			}
			props, err := applyProps(body.Properties, nil)
			if err != nil {
				return err
			}
			status = http.StatusCreated
			v = &Vault{ID: arm.NewGUID(), Name: name, SubscriptionID: sub, ResourceGroup: rg, Location: reg.Name,
				Tags: body.Tags, Props: props, Created: now, CreatedBy: r.Principal.ObjectID, Updated: now}
		case err != nil:
			return err
		case v.Deleted != nil:
			return vaultInDeletedState()
		case !strings.EqualFold(v.SubscriptionID, sub) || !strings.EqualFold(v.ResourceGroup, rg):
			return vaultAlreadyExists(name)
		case v.Location != reg.Name:
			return arm.Conflict("InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				v.Name, v.Location, v.ResourceGroup, reg.Name)
		default:
			props, err := applyProps(body.Properties, &v.Props)
			if err != nil {
				return err
			}
			v.Props = props
			v.Tags = body.Tags
			v.Updated = now
		}
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("vault written", "vault", v.Name, "created", status == http.StatusCreated)
	arm.WriteJSON(w, status, s.vaultView(v))
}

// recoverVault undeletes a soft-deleted vault with its keys, in the group it was deleted from.
func (s *Service) recoverVault(w http.ResponseWriter, r *arm.Request, body *vaultBody) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName")
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = getVaultRecord(tx, name)
		if errors.Is(err, store.ErrNotFound) {
			loc := ""
			if body.Location != nil {
				loc = *body.Location
			}
			return deletedVaultNotFound(name, loc)
		}
		if err != nil {
			return err
		}
		if !strings.EqualFold(v.SubscriptionID, sub) {
			return vaultAlreadyExists(name)
		}
		if v.Deleted == nil {
			if !strings.EqualFold(v.ResourceGroup, rg) {
				return vaultAlreadyExists(name)
			}
			return nil // recovering a live vault changes nothing
		}
		if !strings.EqualFold(v.ResourceGroup, rg) {
			return arm.BadRequest("BadRequest",
				"The deleted vault '%s' belonged to resource group '%s'; it can only be recovered into that resource group.", v.Name, v.ResourceGroup)
		}
		if body.Location != nil && *body.Location != "" {
			if reg, ok := regions.Lookup(*body.Location); !ok || reg.Name != v.Location {
				return arm.BadRequest("BadRequest",
					"The deleted vault '%s' is in location '%s'; it can only be recovered there.", v.Name, v.Location)
			}
		}
		if _, err := resources.CheckGroupInTx(tx, sub, rg); err != nil {
			return err
		}
		v.Deleted = nil
		v.Updated = s.now().UTC()
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("vault recovered", "vault", v.Name)
	arm.WriteJSON(w, http.StatusOK, s.vaultView(v))
}
