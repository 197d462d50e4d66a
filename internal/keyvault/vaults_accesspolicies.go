package keyvault

import (
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// maxPoliciesPerUpdate is the limit Azure documents for one accessPolicies/{kind} request.
const maxPoliciesPerUpdate = 16

// updateAccessPolicy serves PUT .../vaults/{name}/accessPolicies/{add|replace|remove}, which
// `az keyvault set-policy` and `delete-policy` use.
func (s *Service) updateAccessPolicy(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName")
	kind := strings.ToLower(r.Param("operationKind"))
	if kind != "add" && kind != "replace" && kind != "remove" {
		arm.WriteError(w, r, arm.BadRequest("InvalidOperationKind",
			"The access policy operation kind '%s' is invalid. Use add, replace or remove.", r.Param("operationKind")))
		return
	}
	var body struct {
		Properties *struct {
			AccessPolicies *[]AccessPolicy `json:"accessPolicies"`
		} `json:"properties"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Properties == nil || body.Properties.AccessPolicies == nil {
		arm.WriteError(w, r, arm.InvalidParameter("properties.accessPolicies", "The access policies to %s are required.", kind))
		return
	}
	entries, err := validateAccessPolicies("properties.accessPolicies", *body.Properties.AccessPolicies, maxPoliciesPerUpdate)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var v *Vault
	err = s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = activeVaultInGroup(tx, sub, rg, name); err != nil {
			return err
		}
		merged, err := applyPolicyOperation(v.Props.AccessPolicies, kind, entries)
		if err != nil {
			return err
		}
		if len(merged) > maxAccessPolicies {
			return arm.BadRequest("BadRequest", "The number of access policies (%d) exceeds the maximum of %d for a vault.", len(merged), maxAccessPolicies)
		}
		v.Props.AccessPolicies = merged
		v.Updated = s.now().UTC()
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("vault access policies updated", "vault", v.Name, "kind", kind, "entries", len(entries))
	arm.WriteJSON(w, http.StatusOK, map[string]any{
		"id":         v.ResourceID().String() + "/accessPolicies/" + kind,
		"name":       kind,
		"type":       "Microsoft.KeyVault/vaults/accessPolicies",
		"location":   v.Location,
		"properties": map[string]any{"accessPolicies": entries},
	})
}
