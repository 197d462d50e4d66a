package flexserver

import (
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
)

// What a location offers, as GET .../locations/{location}/capabilities (and, from
// 2023-03-01-preview, GET .../flexibleServers/{name}/capabilities) answer it: one record of what
// this host can really do, rendered in the schema of the api-version asked for. The values are
// pgflex's own: the tiers and SKUs of skuCatalog, the disk sizes of StorageSizesGB at their
// default performance tier (pgflex offers no tier upgrades), the PostgreSQL versions the data
// plane has installed, geo-redundant backup wherever the region has a pair, and no high
// availability or availability zones (one host).

// offer is the location's capabilities, independent of any schema.
type offer struct {
	geoBackup bool
	versions  []string
}

func (s *Service) offerFor(reg regions.Region) offer {
	return offer{geoBackup: reg.Paired != "", versions: s.dp.SupportedVersions()}
}

// capabilityStatus is CapabilityBase.status of everything pgflex lists.
const capabilityStatus = "Available"

// enabled is the Enabled/Disabled spelling of the newer schemas.
func enabled(b bool) string {
	if b {
		return "Enabled"
	}
	return "Disabled"
}

// capabilities answers GET .../locations/{locationName}/capabilities.
func (s *Service) capabilities(w http.ResponseWriter, r *arm.Request) {
	reg, ok := regions.Lookup(r.Param("locationName"))
	if !ok {
		arm.WriteError(w, r, arm.BadRequest("NoRegisteredProviderFound",
			"No registered resource provider found for location '%s'. The supported locations are '%s'.", r.Param("locationName"), strings.Join(regions.Names(), ", ")))
		return
	}
	arm.WriteJSON(w, http.StatusOK, s.offerFor(reg).render(shapeOf(r.APIVersion)))
}

// serverCapabilities answers GET .../flexibleServers/{serverName}/capabilities: what the
// server's location offers it (pgflex has no per-server restrictions).
func (s *Service) serverCapabilities(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	reg, _ := regions.Lookup(srv.Location)
	arm.WriteJSON(w, http.StatusOK, s.offerFor(reg).render(shapeOf(r.APIVersion)))
}

// render is the list result in the schema of api-version shape v.
func (o offer) render(v apiShape) any {
	if v.legacyCapabilities {
		return map[string]any{"value": []legacyCapability{o.legacy()}}
	}
	return map[string]any{"value": []flexibleCapability{o.flexible(v)}}
}

// storageMB is a disk size in MB as Azure counts it (GiB × 1024).
func storageMB(gb int) int64 { return int64(gb) * 1024 }

// The 2022-12-01 schema (CapabilityProperties and what it holds). az 2.45 reads
// value[0].supportedHAMode (a list: 'ZoneRedundant' in it), value[0].geoBackupSupported (a
// boolean), and per edition name, supportedServerVersions[].name and .supportedVcores[].name,
// and supportedStorageEditions[0].supportedStorageMB[].storageSizeMB.

type legacyCapability struct {
	Zone                                 string                 `json:"zone"`
	SupportedHAMode                      []string               `json:"supportedHAMode"`
	GeoBackupSupported                   bool                   `json:"geoBackupSupported"`
	ZoneRedundantHaSupported             bool                   `json:"zoneRedundantHaSupported"`
	ZoneRedundantHaAndGeoBackupSupported bool                   `json:"zoneRedundantHaAndGeoBackupSupported"`
	SupportedFlexibleServerEditions      []legacyEdition        `json:"supportedFlexibleServerEditions"`
	SupportedHyperscaleNodeEditions      []legacyHyperscale     `json:"supportedHyperscaleNodeEditions"`
	FastProvisioningSupported            bool                   `json:"fastProvisioningSupported"`
	SupportedFastProvisioningEditions    []fastProvisioningItem `json:"supportedFastProvisioningEditions"`
	Status                               string                 `json:"status"`
}

type legacyEdition struct {
	Name                     string                 `json:"name"`
	SupportedStorageEditions []legacyStorageEdition `json:"supportedStorageEditions"`
	SupportedServerVersions  []legacyServerVersion  `json:"supportedServerVersions"`
	Status                   string                 `json:"status"`
}

// legacyHyperscale is HyperscaleNodeEditionCapability (Citus): pgflex has none.
type legacyHyperscale struct{}

// fastProvisioningItem is FastProvisioningEditionCapability: pgflex has none.
type fastProvisioningItem struct{}

type legacyStorageEdition struct {
	Name               string            `json:"name"`
	SupportedStorageMB []legacyStorageMB `json:"supportedStorageMB"`
	Status             string            `json:"status"`
}

type legacyStorageMB struct {
	SupportedIops               int64               `json:"supportedIops"`
	StorageSizeMB               int64               `json:"storageSizeMB"`
	SupportedUpgradableTierList []legacyStorageTier `json:"supportedUpgradableTierList"`
	Status                      string              `json:"status"`
}

type legacyStorageTier struct {
	Name       string `json:"name"`
	TierName   string `json:"tierName"`
	Iops       int64  `json:"iops"`
	IsBaseline bool   `json:"isBaseline"`
	Status     string `json:"status"`
}

type legacyServerVersion struct {
	Name                       string        `json:"name"`
	SupportedVersionsToUpgrade []string      `json:"supportedVersionsToUpgrade"`
	SupportedVcores            []legacyVcore `json:"supportedVcores"`
	Status                     string        `json:"status"`
}

type legacyVcore struct {
	Name                      string `json:"name"`
	VCores                    int64  `json:"vCores"`
	SupportedMemoryPerVcoreMB int64  `json:"supportedMemoryPerVcoreMB"`
	Status                    string `json:"status"`
}

func (o offer) legacy() legacyCapability {
	var storage []legacyStorageMB
	for _, gb := range StorageSizesGB {
		tier := storageTier(gb)
		storage = append(storage, legacyStorageMB{
			SupportedIops: int64(storageIOPS(gb)), StorageSizeMB: storageMB(gb),
			SupportedUpgradableTierList: []legacyStorageTier{{Name: tier, TierName: tier, Iops: int64(storageIOPS(gb)), IsBaseline: true, Status: capabilityStatus}},
			Status:                      capabilityStatus,
		})
	}
	var editions []legacyEdition
	for _, tier := range tierNames() {
		var vcores []legacyVcore
		for _, sku := range skuCatalog[tier] {
			vcores = append(vcores, legacyVcore{Name: sku.Name, VCores: int64(sku.VCores), SupportedMemoryPerVcoreMB: int64(sku.MemoryPerVCoreM), Status: capabilityStatus})
		}
		var versions []legacyServerVersion
		for _, v := range o.versions {
			versions = append(versions, legacyServerVersion{Name: v, SupportedVersionsToUpgrade: []string{}, SupportedVcores: vcores, Status: capabilityStatus})
		}
		editions = append(editions, legacyEdition{
			Name:                     tier,
			SupportedStorageEditions: []legacyStorageEdition{{Name: "ManagedDisk", SupportedStorageMB: storage, Status: capabilityStatus}},
			SupportedServerVersions:  versions,
			Status:                   capabilityStatus,
		})
	}
	return legacyCapability{
		Zone:                              "none",
		SupportedHAMode:                   []string{},
		GeoBackupSupported:                o.geoBackup,
		SupportedFlexibleServerEditions:   editions,
		SupportedHyperscaleNodeEditions:   []legacyHyperscale{},
		SupportedFastProvisioningEditions: []fastProvisioningItem{},
		Status:                            capabilityStatus,
	}
}

// The schema of 2023-03-01-preview on (FlexibleServerCapability and what it holds).

type flexibleCapability struct {
	Name                                 string                 `json:"name"`
	SupportedServerEditions              []flexibleEdition      `json:"supportedServerEditions"`
	SupportedServerVersions              []flexibleVersion      `json:"supportedServerVersions"`
	SupportedFeatures                    []supportedFeature     `json:"supportedFeatures,omitempty"`
	FastProvisioningSupported            string                 `json:"fastProvisioningSupported"`
	SupportedFastProvisioningEditions    []fastProvisioningItem `json:"supportedFastProvisioningEditions"`
	GeoBackupSupported                   string                 `json:"geoBackupSupported"`
	ZoneRedundantHaSupported             string                 `json:"zoneRedundantHaSupported"`
	ZoneRedundantHaAndGeoBackupSupported string                 `json:"zoneRedundantHaAndGeoBackupSupported"`
	StorageAutoGrowthSupported           string                 `json:"storageAutoGrowthSupported"`
	OnlineResizeSupported                string                 `json:"onlineResizeSupported"`
	Restricted                           string                 `json:"restricted"`
	Status                               string                 `json:"status"`
}

type supportedFeature struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

type flexibleEdition struct {
	Name                     string                   `json:"name"`
	DefaultSkuName           string                   `json:"defaultSkuName"`
	SupportedStorageEditions []flexibleStorageEdition `json:"supportedStorageEditions"`
	SupportedServerSkus      []flexibleSKU            `json:"supportedServerSkus"`
	Status                   string                   `json:"status"`
}

type flexibleStorageEdition struct {
	Name                 string              `json:"name"`
	DefaultStorageSizeMb int64               `json:"defaultStorageSizeMb"`
	SupportedStorageMb   []flexibleStorageMb `json:"supportedStorageMb"`
	Status               string              `json:"status"`
}

type flexibleStorageMb struct {
	SupportedIops      int32              `json:"supportedIops"`
	StorageSizeMb      int64              `json:"storageSizeMb"`
	DefaultIopsTier    string             `json:"defaultIopsTier"`
	SupportedIopsTiers []flexibleIopsTier `json:"supportedIopsTiers"`
	Status             string             `json:"status"`
}

type flexibleIopsTier struct {
	Name   string `json:"name"`
	Iops   int32  `json:"iops"`
	Status string `json:"status"`
}

type flexibleSKU struct {
	Name                      string             `json:"name"`
	VCores                    int32              `json:"vCores"`
	SupportedMemoryPerVcoreMb int64              `json:"supportedMemoryPerVcoreMb"`
	SupportedZones            []string           `json:"supportedZones"`
	SupportedHaMode           []string           `json:"supportedHaMode"`
	SupportedFeatures         []supportedFeature `json:"supportedFeatures,omitempty"`
	Status                    string             `json:"status"`
}

type flexibleVersion struct {
	Name                       string             `json:"name"`
	SupportedVersionsToUpgrade []string           `json:"supportedVersionsToUpgrade"`
	SupportedFeatures          []supportedFeature `json:"supportedFeatures,omitempty"`
	Status                     string             `json:"status"`
}

func (o offer) flexible(v apiShape) flexibleCapability {
	var features func(...supportedFeature) []supportedFeature
	if v.capabilityFeatures {
		features = func(f ...supportedFeature) []supportedFeature { return append([]supportedFeature{}, f...) }
	} else {
		features = func(...supportedFeature) []supportedFeature { return nil }
	}
	var storage []flexibleStorageMb
	for _, gb := range StorageSizesGB {
		tier, iops := storageTier(gb), int32(storageIOPS(gb))
		storage = append(storage, flexibleStorageMb{SupportedIops: iops, StorageSizeMb: storageMB(gb), DefaultIopsTier: tier,
			SupportedIopsTiers: []flexibleIopsTier{{Name: tier, Iops: iops, Status: capabilityStatus}}, Status: capabilityStatus})
	}
	var editions []flexibleEdition
	for _, tier := range tierNames() {
		var skus []flexibleSKU
		for _, sku := range skuCatalog[tier] {
			skus = append(skus, flexibleSKU{Name: sku.Name, VCores: int32(sku.VCores), SupportedMemoryPerVcoreMb: int64(sku.MemoryPerVCoreM),
				SupportedZones: []string{}, SupportedHaMode: []string{}, SupportedFeatures: features(), Status: capabilityStatus})
		}
		editions = append(editions, flexibleEdition{Name: tier, DefaultSkuName: skuCatalog[tier][0].Name,
			SupportedStorageEditions: []flexibleStorageEdition{{Name: "ManagedDisk", DefaultStorageSizeMb: storageMB(defaultStorageGB),
				SupportedStorageMb: storage, Status: capabilityStatus}},
			SupportedServerSkus: skus, Status: capabilityStatus})
	}
	var versions []flexibleVersion
	for _, ver := range o.versions {
		versions = append(versions, flexibleVersion{Name: ver, SupportedVersionsToUpgrade: []string{}, SupportedFeatures: features(), Status: capabilityStatus})
	}
	geo := enabled(o.geoBackup)
	return flexibleCapability{
		Name:                                 "FlexibleServerCapabilities",
		SupportedServerEditions:              editions,
		SupportedServerVersions:              versions,
		SupportedFeatures:                    features(supportedFeature{"GeoBackup", geo}, supportedFeature{"FastProvisioning", "Disabled"}, supportedFeature{"ZoneRedundantHa", "Disabled"}, supportedFeature{"ZoneRedundantHaAndGeoBackup", "Disabled"}, supportedFeature{"StorageAutoGrowth", "Enabled"}, supportedFeature{"OnlineResize", "Enabled"}),
		FastProvisioningSupported:            "Disabled",
		SupportedFastProvisioningEditions:    []fastProvisioningItem{},
		GeoBackupSupported:                   geo,
		ZoneRedundantHaSupported:             "Disabled",
		ZoneRedundantHaAndGeoBackupSupported: "Disabled",
		StorageAutoGrowthSupported:           "Enabled",
		OnlineResizeSupported:                "Enabled",
		Restricted:                           "Disabled",
		Status:                               capabilityStatus,
	}
}
