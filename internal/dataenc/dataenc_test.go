package dataenc

import (
	"errors"
	"testing"
	"time"
)

func TestParseKeyID(t *testing.T) {
	const v = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		in                   string
		vault, name, version string
		ok                   bool
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

func TestKeyInfoUsable(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	ops := []string{"wrapKey", "unwrapKey", "get"}
	tests := []struct {
		name string
		k    KeyInfo
		ok   bool
	}{
		{"rsa 2048", KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops}, true},
		{"rsa-hsm 4096 in window", KeyInfo{KeyType: "RSA-HSM", Bits: 4096, Enabled: true, KeyOps: ops, NotBefore: &past, Expires: &future}, true},
		{"ec", KeyInfo{KeyType: "EC", Bits: 256, Enabled: true, KeyOps: ops}, false},
		{"rsa 1024", KeyInfo{KeyType: "RSA", Bits: 1024, Enabled: true, KeyOps: ops}, false},
		{"disabled", KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: false, KeyOps: ops}, false},
		{"not yet active", KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops, NotBefore: &future}, false},
		{"expired", KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops, Expires: &past}, false},
		{"no unwrap op", KeyInfo{KeyType: "RSA", Bits: 3072, Enabled: true, KeyOps: []string{"wrapKey"}}, false},
	}
	for _, tc := range tests {
		if why := tc.k.Usable(now); (why == "") != tc.ok {
			t.Errorf("%s: Usable = %q, want ok=%v", tc.name, why, tc.ok)
		}
	}
}
