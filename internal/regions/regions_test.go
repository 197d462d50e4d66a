package regions

import "testing"

func TestLookupAndPairs(t *testing.T) {
	tests := []struct {
		in, name, pair string
		ok, paired     bool
	}{
		{"eastus", "eastus", "westus", true, true},
		{"East US", "eastus", "westus", true, true},
		{"EASTUS2", "eastus2", "centralus", true, true},
		{"westus3", "westus3", "eastus", true, true}, // one-way pair
		{"brazilsouth", "brazilsouth", "southcentralus", true, true},
		{"italynorth", "italynorth", "", true, false},
		{"mars", "", "", false, false},
	}
	for _, tc := range tests {
		r, ok := Lookup(tc.in)
		if ok != tc.ok || r.Name != tc.name {
			t.Errorf("Lookup(%q) = %q,%v want %q,%v", tc.in, r.Name, ok, tc.name, tc.ok)
		}
		p, ok := PairOf(tc.in)
		if ok != tc.paired || p != tc.pair {
			t.Errorf("PairOf(%q) = %q,%v want %q,%v", tc.in, p, ok, tc.pair, tc.paired)
		}
	}
}

func TestCatalogIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range All() {
		if seen[r.Name] {
			t.Errorf("duplicate region %s", r.Name)
		}
		seen[r.Name] = true
	}
	for _, r := range All() {
		if r.Paired != "" && !seen[r.Paired] {
			t.Errorf("%s is paired with unknown region %s", r.Name, r.Paired)
		}
		if Normalize(r.DisplayName) != r.Name {
			t.Errorf("display name %q does not normalise to %s", r.DisplayName, r.Name)
		}
	}
}
