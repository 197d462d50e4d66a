package keyvault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
)

// The data plane wraps a server's data encryption key with the region's service-managed key
// and keeps the key id beside the wrapped DEK; at start-up it unwraps it again. (A server with
// a customer-managed key does the same over HTTPS with azkeys, as its managed identity.)
func ExampleService_WrapWithServiceKey() {
	dir, err := os.MkdirTemp("", "keyvault-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	box, err := seal.LoadOrCreateRootKey(filepath.Join(dir, "root.key"))
	if err != nil {
		log.Fatal(err)
	}
	signing, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	const tenant = "00000000-0000-0000-0000-000000000001"
	issuer := auth.NewIssuer(signing, "https://127.0.0.1:8443", tenant, st,
		auth.Audiences{ARM: "https://management.azure.com", KeyVault: "https://vault.localhost"})
	kv, err := keyvault.New(keyvault.Options{Store: st, Box: box, Tokens: issuer,
		Endpoint: "https://127.0.0.1:8443", KeyVaultSuffix: "vault.localhost", TenantID: tenant})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	dek := make([]byte, 32)
	rand.Read(dek)
	keyID, wrapped, err := kv.WrapWithServiceKey(ctx, "eastus", dek)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("key id:", keyID[:strings.LastIndex(keyID, "/")+1]+"{version}")

	again, err := kv.UnwrapWithServiceKey(ctx, keyID, wrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unwrapped the same DEK:", bytes.Equal(again, dek))
	// Output:
	// key id: https://pgflex--service.vault.localhost:8443/keys/smk-eastus/{version}
	// unwrapped the same DEK: true
}
