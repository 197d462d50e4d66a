package dataenc

import (
	"errors"
	"testing"
)

func TestParseKeyID(t *testing.T) {
	const v = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		in                  string
		vault, name, version string
		ok                  bool
	}{
		{"https://v1.vault.localhost:8443/keys/k1/" + v, "https://v1.vault.localhost:8443", "k1", v, true},
		{"https://v1.vault.localhost:8443/keys/k1", "https://v1.vault.localhost:8443", "k1", "", true},
		{"https://v1.vault.localhost:8443/keys/k1/", "https://v1.vault.localhost:8443", "k1", "", true},
		{"https://hsm.managedhsm.localhost/keys/Key-2/" + v, "https://hsm.managedhsm.localhost", "Key-2", v, true},
		{"http://v1.vault.localhost/keys/k1", "", "", "", false},
		{"https://v1.vault.localhost/secrets/k1", "", "", "", false},
		{"https://v1.vault.localhost/keys/k_1", "", "", "", false},
		{"https://v1.vault.localhost/keys/k1/123", "", "", "", false},
		{"https://v1.vault.localhost/keys/k1/" + v + "/x", "", "", "", false},
		{"https:///keys/k1", "", "", "", false},
		{"not a uri", "", "", "", false},
	}
	for _, tc := range tests {
		vault, name, version, err := ParseKeyID(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKeyID(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrMalformedKeyID) {
			t.Errorf("ParseKeyID(%q) err %v is not ErrMalformedKeyID", tc.in, err)
		}
		if vault != tc.vault || name != tc.name || version != tc.version {
			t.Errorf("ParseKeyID(%q) = %q %q %q", tc.in, vault, name, version)
		}
	}
}

func TestNewDEK(t *testing.T) {
	a, _ := NewDEK()
	b, _ := NewDEK()
	if len(a) != DEKSize || string(a) == string(b) {
		t.Fatal("DEKs must be 32 random bytes")
	}
}
