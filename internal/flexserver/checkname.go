package flexserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// checkNameAvailability answers whether a server name can be used (names are global).
func (s *Service) checkNameAvailability(w http.ResponseWriter, r *arm.Request) {
	var body struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if body.Type != "" && !strings.EqualFold(body.Type, ResourceType) {
		arm.WriteError(w, r, arm.InvalidParameter("type", "The type '%s' is not supported; use %s.", body.Type, ResourceType))
		return
	}
	out := map[string]any{"name": body.Name, "type": ResourceType, "nameAvailable": true, "message": ""}
	if err := ValidateServerName(body.Name); err != nil {
		out["nameAvailable"], out["reason"], out["message"] = false, "Invalid", arm.AsError(err).Message
		arm.WriteJSON(w, http.StatusOK, out)
		return
	}
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		_, err := tx.Get(nameKey(body.Name))
		return err
	})
	switch {
	case err == nil:
		out["nameAvailable"], out["reason"], out["message"] = false, "AlreadyExists", "Specified server name is already used."
	case !errors.Is(err, store.ErrNotFound):
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, out)
}

// capabilities lists what a location offers, in Azure's shape (the CLI reads geoBackupSupported).
func (s *Service) capabilities(w http.ResponseWriter, r *arm.Request) {
	reg, ok := regions.Lookup(r.Param("locationName"))
	if !ok {
		arm.WriteError(w, r, arm.BadRequest("NoRegisteredProviderFound",
			"No registered resource provider found for location '%s'. The supported locations are '%s'.", r.Param("locationName"), strings.Join(regions.Names(), ", ")))
		return
	}
	geo := "Disabled"
	if reg.Paired != "" {
		geo = "Enabled"
	}
	var storage []map[string]any
	for _, gb := range StorageSizesGB {
		storage = append(storage, map[string]any{"storageSizeMb": gb * 1024, "supportedIops": storageIOPS(gb), "defaultIopsTier": storageTier(gb)})
	}
	var editions []map[string]any
	for _, tier := range tierNames() {
		var skus []map[string]any
		for _, sku := range skuCatalog[tier] {
			skus = append(skus, map[string]any{"name": sku.Name, "vCores": sku.VCores, "supportedMemoryPerVcoreMb": sku.MemoryPerVCoreM,
				"supportedZones": []string{}, "supportedHaMode": []string{}})
		}
		editions = append(editions, map[string]any{"name": tier, "defaultSkuName": skuCatalog[tier][0].Name,
			"supportedStorageEditions": []map[string]any{{"name": "ManagedDisk", "defaultStorageSizeMb": defaultStorageGB * 1024, "supportedStorageMb": storage}},
			"supportedServerSkus":      skus})
	}
	var versions []map[string]any
	for _, v := range s.dp.SupportedVersions() {
		versions = append(versions, map[string]any{"name": v, "supportedVersionsToUpgrade": []string{}})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{"value": []map[string]any{{
		"name":                                 "FlexibleServerCapabilities",
		"supportedServerEditions":              editions,
		"supportedServerVersions":              versions,
		"geoBackupSupported":                   geo,
		"zoneRedundantHaSupported":             "Disabled",
		"zoneRedundantHaAndGeoBackupSupported": "Disabled",
		"storageAutoGrowthSupported":           "Enabled",
		"onlineResizeSupported":                "Enabled",
		"restricted":                           "Disabled",
		"supportedFeatures": []map[string]string{{"name": "GeoBackup", "status": geo}, {"name": "FastProvisioning", "status": "Disabled"},
			{"name": "ZoneRedundantHa", "status": "Disabled"}},
	}}})
}
