package keyvault

import (
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// patchVault updates the properties and tags a body gives, leaving the rest as they are.
func (s *Service) patchVault(w http.ResponseWriter, r *arm.Request) {
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vaultName")
	var body vaultBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Tags != nil {
		if err := resources.ValidateTags(body.Tags); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	if body.Properties != nil && body.Properties.CreateMode != nil {
		if _, err := createMode(body.Properties); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = activeVaultInGroup(tx, sub, rg, name); err != nil {
			return err
		}
		if body.Properties != nil {
			props, err := applyProps(body.Properties, &v.Props)
			if err != nil {
				return err
			}
			v.Props = props
		}
		if body.Tags != nil {
			v.Tags = body.Tags
		}
		v.Updated = s.now().UTC()
		return putVaultRecord(tx, v)
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("vault updated", "vault", v.Name)
	arm.WriteJSON(w, http.StatusOK, s.vaultView(v))
}
