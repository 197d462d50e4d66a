// Package regions is the catalog of Azure region names, display names and paired regions that
// pgflex accepts as locations. On one host a region is a label plus a storage root for its
// backups; the pairs decide where geo-redundant backups go.
package regions

import (
	"sort"
	"strings"
)

// Region is one Azure region.
type Region struct {
	Name        string // ARM name, e.g. eastus
	DisplayName string // e.g. East US
	Geography   string
	// Paired is the region geo-redundant backups are copied to; empty for regions without a pair.
	Paired string
	// Restricted regions exist but are access-restricted in Azure; pgflex accepts them.
	Restricted bool
}

// catalog is Azure's region list with its pairs (regions-paired.md, 2025-01-13). A pair can be
// one-way: Brazil South backs up to South Central US, whose own pair is North Central US.
var catalog = []Region{
	{"eastasia", "East Asia", "Asia Pacific", "southeastasia", false},
	{"southeastasia", "Southeast Asia", "Asia Pacific", "eastasia", false},
	{"australiaeast", "Australia East", "Australia", "australiasoutheast", false},
	{"australiasoutheast", "Australia Southeast", "Australia", "australiaeast", false},
	{"australiacentral", "Australia Central", "Australia", "australiacentral2", false},
	{"australiacentral2", "Australia Central 2", "Australia", "australiacentral", true},
	{"brazilsouth", "Brazil South", "Brazil", "southcentralus", false},
	{"brazilsoutheast", "Brazil Southeast", "Brazil", "brazilsouth", true},
	{"canadacentral", "Canada Central", "Canada", "canadaeast", false},
	{"canadaeast", "Canada East", "Canada", "canadacentral", false},
	{"chinanorth", "China North", "China", "chinaeast", false},
	{"chinaeast", "China East", "China", "chinanorth", false},
	{"chinanorth2", "China North 2", "China", "chinaeast2", false},
	{"chinaeast2", "China East 2", "China", "chinanorth2", false},
	{"chinanorth3", "China North 3", "China", "chinaeast3", false},
	{"chinaeast3", "China East 3", "China", "chinanorth3", true},
	{"northeurope", "North Europe", "Europe", "westeurope", false},
	{"westeurope", "West Europe", "Europe", "northeurope", false},
	{"francecentral", "France Central", "France", "francesouth", false},
	{"francesouth", "France South", "France", "francecentral", true},
	{"germanywestcentral", "Germany West Central", "Germany", "germanynorth", false},
	{"germanynorth", "Germany North", "Germany", "germanywestcentral", true},
	{"centralindia", "Central India", "India", "southindia", false},
	{"southindia", "South India", "India", "centralindia", false},
	{"westindia", "West India", "India", "southindia", false},
	{"japaneast", "Japan East", "Japan", "japanwest", false},
	{"japanwest", "Japan West", "Japan", "japaneast", false},
	{"koreacentral", "Korea Central", "Korea", "koreasouth", false},
	{"koreasouth", "Korea South", "Korea", "koreacentral", true},
	{"norwayeast", "Norway East", "Norway", "norwaywest", false},
	{"norwaywest", "Norway West", "Norway", "norwayeast", true},
	{"southafricanorth", "South Africa North", "South Africa", "southafricawest", false},
	{"southafricawest", "South Africa West", "South Africa", "southafricanorth", true},
	{"swedencentral", "Sweden Central", "Sweden", "swedensouth", false},
	{"swedensouth", "Sweden South", "Sweden", "swedencentral", true},
	{"switzerlandnorth", "Switzerland North", "Switzerland", "switzerlandwest", false},
	{"switzerlandwest", "Switzerland West", "Switzerland", "switzerlandnorth", true},
	{"ukwest", "UK West", "United Kingdom", "uksouth", false},
	{"uksouth", "UK South", "United Kingdom", "ukwest", false},
	{"eastus", "East US", "United States", "westus", false},
	{"westus", "West US", "United States", "eastus", false},
	{"eastus2", "East US 2", "United States", "centralus", false},
	{"centralus", "Central US", "United States", "eastus2", false},
	{"northcentralus", "North Central US", "United States", "southcentralus", false},
	{"southcentralus", "South Central US", "United States", "northcentralus", false},
	{"westus2", "West US 2", "United States", "westcentralus", false},
	{"westcentralus", "West Central US", "United States", "westus2", false},
	{"westus3", "West US 3", "United States", "eastus", false},
	{"uaenorth", "UAE North", "UAE", "uaecentral", false},
	{"uaecentral", "UAE Central", "UAE", "uaenorth", true},
	{"usdodeast", "US DoD East", "US DoD", "usdodcentral", true},
	{"usdodcentral", "US DoD Central", "US DoD", "usdodeast", true},
	{"usgovarizona", "US Gov Arizona", "US Government", "usgovtexas", true},
	{"usgovvirginia", "US Gov Virginia", "US Government", "usgovtexas", true},
	{"usgovtexas", "US Gov Texas", "US Government", "usgovvirginia", true},
	// Regions without a pair: geo-redundant backup is not offered there.
	{"israelcentral", "Israel Central", "Israel", "", false},
	{"italynorth", "Italy North", "Italy", "", false},
	{"mexicocentral", "Mexico Central", "Mexico", "", false},
	{"newzealandnorth", "New Zealand North", "New Zealand", "", false},
	{"polandcentral", "Poland Central", "Poland", "", false},
	{"qatarcentral", "Qatar Central", "Qatar", "", false},
	{"spaincentral", "Spain Central", "Spain", "", false},
}

// Normalize turns a user's spelling ("East US", "EastUS", "eastus") into the ARM name.
func Normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
}

// Lookup finds a region by name or display name, in any casing.
func Lookup(name string) (Region, bool) {
	n := Normalize(name)
	for _, r := range catalog {
		if r.Name == n {
			return r, true
		}
	}
	return Region{}, false
}

// All returns every region, sorted by name.
func All() []Region {
	out := append([]Region(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names lists all region names, sorted, for error messages.
func Names() []string {
	var out []string
	for _, r := range All() {
		out = append(out, r.Name)
	}
	return out
}

// PairOf returns the paired region of name, if it has one.
func PairOf(name string) (string, bool) {
	r, ok := Lookup(name)
	if !ok || r.Paired == "" {
		return "", false
	}
	return r.Paired, true
}
