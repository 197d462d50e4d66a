package flexserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataenc"
)

// fakeKeyStores answers LookupKeyStore from a table of vault URLs.
type fakeKeyStores map[string]KeyStoreInfo

func (f fakeKeyStores) LookupKeyStore(_ context.Context, vaultURL string) (KeyStoreInfo, error) {
	ks, ok := f[vaultURL]
	if !ok {
		return KeyStoreInfo{}, fmt.Errorf("%w: %s", ErrKeyStoreNotFound, vaultURL)
	}
	return ks, nil
}

// TestCheckCustomerKeyStore covers the checks made of a customer key's store before the key
// itself is asked for, among them the one no end-to-end test can reach: a single daemon has one
// subscription, and no API creates a second, so a key store in another subscription exists only
// here. A key that passes every store check goes on to the identity, which this server lacks
// (IdentityNotAssigned), so nothing here calls a key store.
func TestCheckCustomerKeyStore(t *testing.T) {
	const sub, otherSub = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	store := func(kind, sub, name, location string, purge bool) KeyStoreInfo {
		typ := "vaults"
		if kind == "Managed HSM" {
			typ = "managedHSMs"
		}
		return KeyStoreInfo{ID: arm.NewResourceID(sub, "rg", "Microsoft.KeyVault", typ, name), Kind: kind, Location: location,
			SoftDelete: true, PurgeProtection: purge}
	}
	stores := fakeKeyStores{
		"https://east.vault.localhost:8443":      store("Key Vault", sub, "east", "eastus", true),
		"https://west.vault.localhost:8443":      store("Key Vault", sub, "west", "westus", true),
		"https://elsewhere.vault.localhost:8443": store("Key Vault", otherSub, "elsewhere", "eastus", true),
		"https://nopp.vault.localhost:8443":      store("Key Vault", sub, "nopp", "eastus", false),
		"https://hsm.managedhsm.localhost:8443":  store("Managed HSM", sub, "hsm", "eastus", true),
	}
	s := &Service{keyStores: stores, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	srv := &Server{SubscriptionID: sub, ResourceGroup: "rg", Name: "pg", Location: "eastus", Identities: map[string]IdentityRef{}}
	const version = "/0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		name, key string
		role      keyRole
		code, msg string
	}{
		{"key store in another subscription", "https://elsewhere.vault.localhost:8443/keys/k", primaryRole, "InvalidParameterValue",
			"The Key Vault 'elsewhere' holding the primary key is in subscription '" + otherSub + "'; it must be in the server's subscription '" + sub + "'."},
		{"key store in another region", "https://west.vault.localhost:8443/keys/k" + version, primaryRole, "InvalidParameterValue",
			"is in region 'westus'; it must be in the server's region, 'eastus'"},
		{"geo key store not in the paired region", "https://east.vault.localhost:8443/keys/k", geoRole, "InvalidParameterValue",
			"it must be in the server's paired region (where geo-redundant backups are stored), 'westus'"},
		{"no purge protection", "https://nopp.vault.localhost:8443/keys/k", primaryRole, "InvalidParameterValue",
			"The Key Vault 'nopp' must have soft delete and purge protection enabled"},
		{"no such key store", "https://gone.vault.localhost:8443/keys/k", primaryRole, "AzureKeyVaultKeyNameNotFound",
			"Key name 'https://gone.vault.localhost:8443/keys/k' does not exist"},
		{"not https", "http://east.vault.localhost:8443/keys/k", primaryRole, "InvalidParameterValue",
			"is not a key identifier: it must start with https://."},
		{"not a key", "https://east.vault.localhost:8443/secrets/k", primaryRole, "InvalidParameterValue", "is not a key identifier"},
		{"bad version", "https://east.vault.localhost:8443/keys/k/v1", geoRole, "InvalidParameterValue",
			"it has a version that is not 32 hexadecimal characters"},
		// Past the store checks: the identity is the next thing checked.
		{"vault in the server's region", "https://east.vault.localhost:8443/keys/k" + version, primaryRole, "IdentityNotAssigned", ""},
		{"managed HSM in the server's region", "https://hsm.managedhsm.localhost:8443/keys/k", primaryRole, "IdentityNotAssigned", ""},
		{"geo vault in the paired region", "https://west.vault.localhost:8443/keys/k", geoRole, "IdentityNotAssigned", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.checkCustomerKey(context.Background(), srv, c.key, "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id", c.role)
			ae := arm.AsError(err)
			if ae == nil || ae.Code != c.code || !strings.Contains(ae.Message, c.msg) {
				t.Fatalf("err = %v, want %s containing %q", err, c.code, c.msg)
			}
			if c.code == "InvalidParameterValue" && ae.Target != c.role.uriTarget {
				t.Fatalf("target = %q, want %q", ae.Target, c.role.uriTarget)
			}
		})
	}
}

// TestCustomerKeyUsable covers the key checks of a CMK create or update for the key types the
// embedded key store cannot hold (it creates RSA 2048/3072/4096 only, so an EC or 1024-bit key
// never reaches a server end to end) and the other reasons a key is refused.
func TestCustomerKeyUsable(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	ops := []string{"wrapKey", "unwrapKey"}
	for _, c := range []struct {
		name string
		key  dataenc.KeyInfo
		why  string // "" when usable
	}{
		{"RSA 2048", dataenc.KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops}, ""},
		{"RSA-HSM 4096 (Managed HSM)", dataenc.KeyInfo{KeyType: "RSA-HSM", Bits: 4096, Enabled: true, KeyOps: ops}, ""},
		{"inside its validity window", dataenc.KeyInfo{KeyType: "RSA", Bits: 3072, Enabled: true, KeyOps: ops, NotBefore: &past, Expires: &future}, ""},
		{"EC", dataenc.KeyInfo{KeyType: "EC", Bits: 0, Enabled: true, KeyOps: ops}, "the key type is EC; data encryption needs an RSA key"},
		{"EC-HSM", dataenc.KeyInfo{KeyType: "EC-HSM", Enabled: true, KeyOps: ops}, "the key type is EC-HSM"},
		{"oct-HSM", dataenc.KeyInfo{KeyType: "oct-HSM", Enabled: true, KeyOps: ops}, "the key type is oct-HSM"},
		{"RSA 1024", dataenc.KeyInfo{KeyType: "RSA", Bits: 1024, Enabled: true, KeyOps: ops}, "the key has 1024 bits; data encryption needs 2048, 3072 or 4096"},
		{"disabled", dataenc.KeyInfo{KeyType: "RSA", Bits: 2048, KeyOps: ops}, "the key is disabled"},
		{"expired", dataenc.KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops, Expires: &past}, "the key expired at"},
		{"not yet active", dataenc.KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: ops, NotBefore: &future}, "the key is not active until"},
		{"no unwrapKey in key_ops", dataenc.KeyInfo{KeyType: "RSA", Bits: 2048, Enabled: true, KeyOps: []string{"wrapKey"}}, "does not permit the unwrapKey operation"},
	} {
		got := c.key.Usable(now)
		if (c.why == "") != (got == "") || !strings.Contains(got, c.why) {
			t.Errorf("%s: Usable = %q, want %q", c.name, got, c.why)
		}
	}
}
