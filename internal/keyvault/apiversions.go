package keyvault

import (
	"net/http"
	"slices"
)

// dataPlaneVersion is one Key Vault keys REST api-version and what its responses carry: the one
// place that knows how the versions differ (the KeyAttributes of each version's swagger, in
// Azure/azure-rest-api-specs specification/keyvault/data-plane/Microsoft.KeyVault, and of the
// SDKs generated from them).
type dataPlaneVersion struct {
	version string
	// recoverableDays: KeyAttributes.recoverableDays (7.1 on).
	recoverableDays bool
	// exportable: KeyAttributes.exportable (7.3-preview on, with key release).
	exportable bool
}

// dataPlaneVersions are the api-versions accepted, oldest first: the stable ones, and the
// previews Azure's SDKs send — az 2.45's azure-keyvault-keys 4.8.0b3 defaults to 7.4-preview.1,
// its azure-keyvault-administration (a Managed HSM's role assignments) to 7.2-preview; azkeys
// 0.x sent 7.3-preview, 1.1.0-beta 7.5-preview.1, 1.4.0-beta 7.6-preview.2.
var dataPlaneVersions = []dataPlaneVersion{
	{version: "7.0"},
	{version: "7.1", recoverableDays: true},
	{version: "7.2-preview", recoverableDays: true},
	{version: "7.2", recoverableDays: true},
	{version: "7.3-preview", recoverableDays: true, exportable: true},
	{version: "7.3", recoverableDays: true, exportable: true},
	{version: "7.4-preview.1", recoverableDays: true, exportable: true},
	{version: "7.4", recoverableDays: true, exportable: true},
	{version: "7.5-preview.1", recoverableDays: true, exportable: true},
	{version: "7.5", recoverableDays: true, exportable: true},
	{version: "7.6-preview.1", recoverableDays: true, exportable: true},
	{version: "7.6-preview.2", recoverableDays: true, exportable: true},
	{version: "7.6", recoverableDays: true, exportable: true},
	{version: "2025-06-01", recoverableDays: true, exportable: true},
	{version: "2025-07-01", recoverableDays: true, exportable: true},
}

// DataPlaneAPIVersions are the Key Vault keys REST api-versions accepted.
var DataPlaneAPIVersions = func() []string {
	out := make([]string, len(dataPlaneVersions))
	for i, v := range dataPlaneVersions {
		out[i] = v.version
	}
	return out
}()

// latestDataPlaneVersion is what Key Vault's refusal of an unknown version recommends: the
// newest stable one.
const latestDataPlaneVersion = "2025-07-01"

// requireAPIVersion returns the shape of the request's api-version, or Key Vault's refusal:
// 400 BadParameter "The specified version (…) is not recognized. Consider using the latest
// supported version (…)." (the service's own text).
func requireAPIVersion(r *http.Request) (dataPlaneVersion, error) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return dataPlaneVersion{}, badParameter("The api-version query parameter is required. Consider using the latest supported version (%s).", latestDataPlaneVersion)
	}
	i := slices.IndexFunc(dataPlaneVersions, func(d dataPlaneVersion) bool { return d.version == v })
	if i < 0 {
		return dataPlaneVersion{}, badParameter("The specified version (%s) is not recognized. Consider using the latest supported version (%s).", v, latestDataPlaneVersion)
	}
	return dataPlaneVersions[i], nil
}
