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

// hsmBody is the body of PUT on a Managed HSM.
type hsmBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        *SKU              `json:"sku"`
	Properties *struct {
		TenantID                  *string      `json:"tenantId"`
		InitialAdminObjectIDs     []string     `json:"initialAdminObjectIds"`
		EnableSoftDelete          *bool        `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays *int         `json:"softDeleteRetentionInDays"`
		EnablePurgeProtection     *bool        `json:"enablePurgeProtection"`
		CreateMode                *string      `json:"createMode"`
		NetworkACLs               *NetworkACLs `json:"networkAcls"`
		PublicNetworkAccess       *string      `json:"publicNetworkAccess"`
	} `json:"properties"`
}

// hsmProps computes a Managed HSM's properties from a PUT body: on create (cur nil) with
// Azure's defaults, on update over cur, refusing changes to what cannot change.
func hsmProps(b *hsmBody, cur *Vault) (VaultProperties, []string, error) {
	var p VaultProperties
	var admins []string
	if cur != nil {
		p, admins = cur.Props, cur.InitialAdmins
	} else {
		p.SoftDeleteRetentionInDays = defaultRetentionDays
		p.PublicNetworkAccess = "Enabled"
		// Local RBAC is a Managed HSM's only authorization.
		p.EnableRbacAuthorization = true
	}
	if b.SKU != nil || cur == nil {
		sku := SKU{}
		if b.SKU != nil {
			sku = *b.SKU
		}
		if err := normalizeHSMSKU(&sku); err != nil {
			return p, nil, err
		}
		p.SKU = sku
	}
	bp := b.Properties
	if bp.TenantID != nil {
		if !IsGUID(*bp.TenantID) {
			return p, nil, arm.InvalidParameter("properties.tenantId", "The tenant id '%s' is invalid: it must be a GUID.", *bp.TenantID)
		}
		if cur != nil && !strings.EqualFold(*bp.TenantID, cur.Props.TenantID) {
			return p, nil, arm.BadRequest("BadRequest", "The tenant of a managed HSM cannot be changed.")
		}
		p.TenantID = strings.ToLower(*bp.TenantID)
	}
	if p.TenantID == "" {
		return p, nil, arm.InvalidParameter("properties.tenantId", "The managed HSM's tenantId is required.")
	}
	if bp.InitialAdminObjectIDs != nil {
		if cur != nil && !sameFold(bp.InitialAdminObjectIDs, cur.InitialAdmins) {
			return p, nil, arm.BadRequest("BadRequest", "The initial administrators of a managed HSM are set at creation and cannot be changed; assign roles with its local RBAC instead.")
		}
		admins = nil
		for _, a := range bp.InitialAdminObjectIDs {
			if !IsGUID(a) {
				return p, nil, arm.InvalidParameter("properties.initialAdminObjectIds", "The initial administrator object id '%s' is invalid: it must be a GUID.", a)
			}
			admins = append(admins, strings.ToLower(a))
		}
	}
	if len(admins) == 0 {
		return p, nil, arm.InvalidParameter("properties.initialAdminObjectIds",
			"At least one initial administrator (properties.initialAdminObjectIds) is required to create a managed HSM.")
	}
	if bp.EnableSoftDelete != nil && !*bp.EnableSoftDelete {
		return p, nil, arm.BadRequest("BadRequest", `The property "enableSoftDelete" cannot be set to false: soft delete is always on for a managed HSM.`)
	}
	if bp.SoftDeleteRetentionInDays != nil {
		d := *bp.SoftDeleteRetentionInDays
		if d < minRetentionDays || d > maxRetentionDays {
			return p, nil, arm.InvalidParameter("properties.softDeleteRetentionInDays",
				"The value of softDeleteRetentionInDays is invalid: it must be a number of days from %d to %d, and %d was given.", minRetentionDays, maxRetentionDays, d)
		}
		if cur != nil && d != cur.Props.SoftDeleteRetentionInDays {
			return p, nil, arm.BadRequest("BadRequest", `The property "softDeleteRetentionInDays" cannot be changed once the managed HSM is created (it is %d days).`, cur.Props.SoftDeleteRetentionInDays)
		}
		p.SoftDeleteRetentionInDays = d
	}
	if bp.EnablePurgeProtection != nil {
		if !*bp.EnablePurgeProtection {
			if cur != nil && cur.PurgeProtected() {
				return p, nil, arm.BadRequest("BadRequest", `The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a managed HSM is an irreversible action.`)
			}
		} else {
			t := true
			p.EnablePurgeProtection = &t
		}
	}
	if bp.NetworkACLs != nil {
		n := *bp.NetworkACLs
		if err := validateNetworkACLs(&n); err != nil {
			return p, nil, err
		}
		p.NetworkACLs = &n
	}
	if bp.PublicNetworkAccess != nil {
		v, err := normalizePublicNetworkAccess(*bp.PublicNetworkAccess)
		if err != nil {
			return p, nil, err
		}
		p.PublicNetworkAccess = v
	}
	return p, admins, nil
}

func sameFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// putHSM creates a Managed HSM, updates its settable properties, or recovers a soft-deleted
// one (createMode recover). The initial administrators get the Managed HSM Administrator and
// Crypto User roles at "/": pgflex HSMs are active at once, so they can use keys straight away.
func (s *Service) putHSM(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("name")
	if err := ValidateHSMName(name); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body hsmBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Properties == nil {
		arm.WriteError(w, r, arm.InvalidParameter("properties", "The managed HSM's properties are required."))
		return
	}
	recover := false
	if m := body.Properties.CreateMode; m != nil && !strings.EqualFold(*m, "default") {
		if !strings.EqualFold(*m, "recover") {
			arm.WriteError(w, r, arm.InvalidParameter("properties.createMode", "The createMode '%s' is invalid. Allowed values are 'default' and 'recover'.", *m))
			return
		}
		recover = true
	}
	if body.Location == nil || *body.Location == "" {
		arm.WriteError(w, r, arm.BadRequest("LocationRequired", "The location property is required for this definition."))
		return
	}
	reg, ok := regions.Lookup(*body.Location)
	if !ok {
		arm.WriteError(w, r, arm.BadRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			*body.Location, HSMResourceType, strings.Join(regions.Names(), ",")))
		return
	}
	if err := resources.ValidateTags(body.Tags); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	now := s.now().UTC()
	created := false
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		v, err = getRecord(tx, KindManagedHSM, name)
		switch {
		case errors.Is(err, store.ErrNotFound) && recover:
			return deletedHSMNotFound(name, reg.Name)
		case errors.Is(err, store.ErrNotFound):
			if _, err := resources.CheckGroupInTx(tx, sub, rg); err != nil {
				return err
			}
			props, admins, err := hsmProps(&body, nil)
			if err != nil {
				return err
			}
			created = true
			v = &Vault{ID: arm.NewGUID(), Kind: KindManagedHSM, Name: name, SubscriptionID: sub, ResourceGroup: rg,
				Location: reg.Name, Tags: body.Tags, Props: props, InitialAdmins: admins, Created: now,
				CreatedBy: r.Principal.ObjectID, Updated: now}
			for _, a := range admins {
				for _, role := range []string{hsmRoleAdministrator, hsmRoleCryptoUser} {
					if err := putHSMAssignment(tx, v.ID, &hsmAssignment{Name: arm.NewGUID(), Scope: "/", RoleID: role,
						PrincipalID: a, Created: now, CreatedBy: r.Principal.ObjectID}); err != nil {
						return err
					}
				}
			}
		case err != nil:
			return err
		case !strings.EqualFold(v.SubscriptionID, sub) || !strings.EqualFold(v.ResourceGroup, rg):
			return hsmAlreadyExists(name)
		case v.Deleted != nil && !recover:
			return arm.Conflict("ConflictError",
				"A managed HSM with the same name already exists in deleted state. You need to either recover (createMode recover) or purge the existing managed HSM.")
		case v.Location != reg.Name:
			return arm.Conflict("InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				v.Name, v.Location, v.ResourceGroup, reg.Name)
		case recover:
			if v.Deleted == nil {
				return nil // recovering a live HSM changes nothing
			}
			if _, err := resources.CheckGroupInTx(tx, sub, rg); err != nil {
				return err
			}
			v.Deleted = nil
			v.Updated = now
		default:
			props, admins, err := hsmProps(&body, v)
			if err != nil {
				return err
			}
			v.Props, v.InitialAdmins, v.Tags, v.Updated = props, admins, body.Tags, now
		}
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("managed HSM written", "hsm", v.Name, "created", created, "recovered", recover)
	// 200 for a create too: Azure's create is a long-running PUT answering 200 or 202 (never
	// 201), and this one is done at once.
	arm.WriteJSON(w, http.StatusOK, s.hsmView(v))
}
