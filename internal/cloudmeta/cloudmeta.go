// Package cloudmeta publishes what a client needs to treat a pgflex daemon as an Azure cloud:
// ARM's own discovery document, GET /metadata/endpoints?api-version=..., in the shapes Azure
// (2019-05-01 and later: a list of clouds) and Azure Stack (2015-01-01) answer with, and its
// conversion into the file `az cloud register --cloud-config` reads. The daemon is the only
// source of these values; `pgflex cloud show-config` only converts what it publishes.
package cloudmeta

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// Name is the cloud's name in the metadata, and the name the README registers it under.
const Name = "pgflex"

// Path is the metadata route on the resource-manager endpoint.
const Path = "/metadata/endpoints"

// APIVersions are the api-versions the route answers: 2015-01-01 in Azure Stack's shape (what
// az cloud register reads when only --endpoint-resource-manager is given), the later ones as
// Azure's list of clouds.
var APIVersions = []string{"2015-01-01", "2019-05-01", "2020-06-01", "2022-09-01"}

// Metadata is one pgflex cloud.
type Metadata struct {
	// ResourceManager is the daemon's endpoint with a trailing slash.
	ResourceManager string
	// LoginEndpoint is the ADFS-style authority, {endpoint}/adfs.
	LoginEndpoint string
	// Audiences are the resource-manager token audiences; the first is the one az asks for.
	Audiences []string
	// MicrosoftGraph is Graph's resource id and base URL, with a trailing slash.
	MicrosoftGraph string
	// KeyVaultDNS and ManagedHSMDNS are the key-store host suffixes (with the daemon's port
	// when it is not 443, since vault URLs are built from them), without a leading dot.
	KeyVaultDNS, ManagedHSMDNS string
	// PostgresDNS is the servers' host-name suffix, without a leading dot; empty if unset.
	PostgresDNS string
}

// ARM is the cloud in the shape of Azure's metadata/endpoints list (api-version 2019-05-01
// and later).
func (m Metadata) ARM() map[string]any {
	suffixes := map[string]any{"keyVaultDns": m.KeyVaultDNS, "mhsmDns": m.ManagedHSMDNS}
	if m.PostgresDNS != "" {
		suffixes["postgresqlServerEndpoint"] = m.PostgresDNS
	}
	return map[string]any{
		"name":                     Name,
		"resourceManager":          m.ResourceManager,
		"authentication":           map[string]any{"loginEndpoint": m.LoginEndpoint, "audiences": m.Audiences, "tenant": "adfs", "identityProvider": "ADFS"},
		"graph":                    m.MicrosoftGraph,
		"graphAudience":            m.MicrosoftGraph,
		"microsoftGraphResourceId": m.MicrosoftGraph,
		"suffixes":                 suffixes,
	}
}

// Stack is the cloud in Azure Stack's single-cloud shape (api-version 2015-01-01).
func (m Metadata) Stack() map[string]any {
	return map[string]any{
		"galleryEndpoint": "",
		"graphEndpoint":   m.MicrosoftGraph,
		"portalEndpoint":  "",
		"authentication":  map[string]any{"loginEndpoint": m.LoginEndpoint, "audiences": m.Audiences},
	}
}

// RegisterRoutes adds the metadata route, which needs no token (as Azure's).
func (m Metadata) RegisterRoutes(rt *arm.Router) {
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: Path, ResourceType: "Microsoft.Resources/metadata",
		APIVersions: APIVersions, Public: true, Handler: func(w http.ResponseWriter, r *arm.Request) {
			if r.APIVersion == "2015-01-01" {
				arm.WriteJSON(w, http.StatusOK, m.Stack())
				return
			}
			arm.WriteJSON(w, http.StatusOK, []any{m.ARM()})
		}})
}

// CLIConfig converts one cloud of the metadata list (ARM's shape, as decoded JSON) into the
// JSON `az cloud register --cloud-config` reads: az's endpoint and suffix names, in camelCase,
// with suffixes starting with a dot as az keeps them.
func CLIConfig(cloud map[string]any) (map[string]any, error) {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	authn, _ := cloud["authentication"].(map[string]any)
	if authn == nil {
		return nil, fmt.Errorf("the cloud metadata has no authentication section")
	}
	var audience string
	if auds, _ := authn["audiences"].([]any); len(auds) > 0 {
		audience, _ = auds[0].(string)
	}
	endpoints := map[string]any{
		"resourceManager":                str(cloud, "resourceManager"),
		"activeDirectory":                str(authn, "loginEndpoint"),
		"activeDirectoryResourceId":      audience,
		"management":                     audience,
		"activeDirectoryGraphResourceId": str(cloud, "graphAudience"),
		"microsoftGraphResourceId":       str(cloud, "microsoftGraphResourceId"),
	}
	for k, v := range endpoints {
		if v == "" {
			return nil, fmt.Errorf("the cloud metadata does not name the %s endpoint", k)
		}
	}
	suffixes := map[string]any{}
	sfx, _ := cloud["suffixes"].(map[string]any)
	for arm, az := range map[string]string{"keyVaultDns": "keyvaultDns", "mhsmDns": "mhsmDns", "postgresqlServerEndpoint": "postgresqlServerEndpoint"} {
		if v := str(sfx, arm); v != "" {
			suffixes[az] = "." + strings.TrimPrefix(v, ".")
		}
	}
	return map[string]any{"endpoints": endpoints, "suffixes": suffixes}, nil
}
