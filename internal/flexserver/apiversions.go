package flexserver

import "slices"

// apiShape is what one Microsoft.DBforPostgreSQL api-version puts in its responses: the one
// place that knows how the versions differ. Renderers take a shape, never compare version
// strings. Each field names the swagger (Azure/azure-rest-api-specs,
// specification/postgresql/resource-manager/Microsoft.DBforPostgreSQL) that set it; see
// NOTES-i12-shapes.md for the audit behind the table.
type apiShape struct {
	version string
	// legacyCapabilities: .../capabilities answers CapabilityProperties (stable/2022-12-01
	// Capabilities.json: zone, supportedHAMode, boolean geoBackupSupported,
	// supportedFlexibleServerEditions with versions and vCores inside each edition). Later
	// versions answer FlexibleServerCapability (supportedServerEditions, Enabled/Disabled
	// strings, versions beside the editions).
	legacyCapabilities bool
	// capabilityFeatures: FlexibleServerCapability, ServerSkuCapability and
	// ServerVersionCapability carry supportedFeatures (2025-01-01-preview and 2025-08-01).
	capabilityFeatures bool
	// serverCapabilities: GET .../flexibleServers/{name}/capabilities exists
	// (2023-03-01-preview on).
	serverCapabilities bool
	// geoBackupEncryption: dataEncryption has geoBackupKeyURI, geoBackupUserAssignedIdentityId,
	// primaryEncryptionKeyStatus and geoBackupEncryptionKeyStatus, and a CMK server may have
	// geo-redundant backup (2023-03-01-preview on; 2022-12-01 refuses the combination with
	// CMKNotSupportedForGeoRedundantBackupEnabledServer).
	geoBackupEncryption bool
	// replicaObject: properties.replica {role, capacity} beside replicationRole and
	// replicaCapacity (2023-06-01-preview on).
	replicaObject bool
	// onDemandBackups: PUT and DELETE .../backups/{name} exist (2024-03-01-preview on; before,
	// backups are read-only).
	onDemandBackups bool
}

// apiShapes are the api-versions pgflex accepts for flexibleServers and its children, oldest
// first.
var apiShapes = []apiShape{
	{version: "2022-12-01", legacyCapabilities: true},
	{version: "2023-03-01-preview", serverCapabilities: true, geoBackupEncryption: true},
	{version: "2023-06-01-preview", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true},
	{version: "2023-12-01-preview", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true},
	{version: "2024-03-01-preview", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true, onDemandBackups: true},
	{version: "2024-08-01", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true, onDemandBackups: true},
	{version: "2024-11-01-preview", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true, onDemandBackups: true},
	{version: "2025-01-01-preview", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true, capabilityFeatures: true, onDemandBackups: true},
	{version: "2025-08-01", serverCapabilities: true, geoBackupEncryption: true, replicaObject: true, capabilityFeatures: true, onDemandBackups: true},
}

// APIVersions are the accepted api-versions of flexibleServers and its children.
var APIVersions = versionsWhere(func(apiShape) bool { return true })

// versionsWhere lists the api-versions whose shape satisfies keep.
func versionsWhere(keep func(apiShape) bool) []string {
	var out []string
	for _, s := range apiShapes {
		if keep(s) {
			out = append(out, s.version)
		}
	}
	return out
}

// shapeOf is the shape of an accepted api-version. The router has already refused any other,
// so an unknown one (a caller outside a request, such as a resumed operation) gets the newest.
func shapeOf(v string) apiShape {
	if i := slices.IndexFunc(apiShapes, func(s apiShape) bool { return s.version == v }); i >= 0 {
		return apiShapes[i]
	}
	return apiShapes[len(apiShapes)-1]
}
