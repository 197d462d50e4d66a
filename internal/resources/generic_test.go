package resources

import "testing"

func TestParseGenericFilter(t *testing.T) {
	vault := GenericResource{ID: "/subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/v1", Name: "v1",
		Type: "Microsoft.KeyVault/vaults", Location: "eastus"}
	for _, c := range []struct {
		filter    string
		ok, match bool
	}{
		{"resourceType eq 'Microsoft.KeyVault/vaults'", true, true},
		{"resourceType eq 'microsoft.keyvault/VAULTS'", true, true},
		{"resourceType eq 'Microsoft.KeyVault/managedHSMs'", true, false},
		{"resourceGroup eq 'rg'", true, true},
		{"resourceGroup eq 'other'", true, false},
		{"resourceGroup eq 'rg' and resourceType eq 'Microsoft.KeyVault/vaults'", true, true},
		{"resourceGroup eq 'rg' AND name eq 'v2'", true, false},
		{"location eq 'eastus' and name eq 'V1'", true, true},
		{"tagName eq 'env'", false, false},
		{"substringof('v', name)", false, false},
		{"resourceType eq Microsoft.KeyVault/vaults", false, false},
		{"resourceType eq 'a' or name eq 'v1'", false, false},
	} {
		m, ok := parseGenericFilter(c.filter)
		if ok != c.ok || (ok && m(vault) != c.match) {
			t.Errorf("%q: ok %v (want %v), match %v (want %v)", c.filter, ok, c.ok, ok && m(vault), c.match)
		}
	}
}
