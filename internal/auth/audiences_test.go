package auth

import "testing"

func TestAudiencesResolve(t *testing.T) {
	a := Audiences{ARM: "https://management.azure.com", KeyVault: "https://vault.localhost", ManagedHSM: "https://managedhsm.localhost"}
	for _, c := range []struct {
		scope, want string
		ok          bool
	}{
		{"https://management.azure.com/.default", a.ARM, true},
		{"https://management.core.windows.net/", a.ARM, true},
		{"https://vault.localhost/.default", a.KeyVault, true},
		{"HTTPS://VAULT.LOCALHOST", a.KeyVault, true},
		// The key store's bearer challenge names its resource with the daemon's port.
		{"https://vault.localhost:8443/.default", a.KeyVault, true},
		{"https://managedhsm.localhost:31337/.default", a.ManagedHSM, true},
		{"https://management.azure.com:8443/.default", "", false},
		{"https://vault.localhost.evil:8443/.default", "", false},
		{"https://evil.vault.localhost:8443/.default", "", false},
		{"https://vault.localhost:8443/path/.default", "", false},
		{"vault.localhost:8443", "", false},
		{"", "", false},
	} {
		got, ok := a.Resolve(c.scope)
		if got != c.want || ok != c.ok {
			t.Errorf("Resolve(%q) = %q, %v; want %q, %v", c.scope, got, ok, c.want, c.ok)
		}
	}
}
