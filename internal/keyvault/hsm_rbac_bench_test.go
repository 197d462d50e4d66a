package keyvault_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// BenchmarkHSMUnwrap measures unwrapKey as a managed identity on a Managed HSM key (authorized
// by the HSM's local RBAC, here with 50 other assignments to read past) next to the same call
// on a vault key (authorized by an access policy), in the same run: the ratio is what local
// RBAC costs the data plane's hottest call.
//
//	go test -run '^$' -bench HSMUnwrap -benchtime 200x ./internal/keyvault/
func BenchmarkHSMUnwrap(b *testing.B) {
	ctx := context.Background()
	e := newKVEnv(b)
	e.group("rg")
	oid, appID := e.identity("rg", "uami")
	e.createVault("rg", "bench-vault", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
		p.Properties.AccessPolicies = append(p.Properties.AccessPolicies, e.policy(oid, "get", "wrapKey", "unwrapKey"))
	})
	e.createHSM("rg", "bench-hsm", e.hsmParams(true))
	hsmTok := e.token("https://" + e.prof.ManagedHSMDNSSuffix + "/.default")
	for i := 0; i < 50; i++ {
		other, _ := e.identity("rg", fmt.Sprintf("other%d", i))
		if a := e.hsmAssign("bench-hsm", "/keys", hsmRoleCryptoUser, other, hsmTok); a.status != 201 {
			b.Fatalf("assign: %d %s", a.status, a.raw)
		}
	}
	if a := e.hsmAssign("bench-hsm", "/keys/bench", hsmRoleServiceEncryption, oid, hsmTok); a.status != 201 {
		b.Fatalf("assign: %d %s", a.status, a.raw)
	}
	cred := e.d.IdentityCredential(oid, appID)
	hsmAdmin, err := azkeys.NewClient(e.hsmURL("bench-hsm"), e.cred, &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
	if err != nil {
		b.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	prepare := func(admin, asID *azkeys.Client) func() error {
		k, err := admin.CreateKey(ctx, "bench", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		v := k.Key.KID.Version()
		w, err := asID.WrapKey(ctx, "bench", v, azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil) // warm: challenge, token
		if err != nil {
			b.Fatal(err)
		}
		return func() error {
			_, err := asID.UnwrapKey(ctx, "bench", v, azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
			return err
		}
	}
	client := func(url string, c azcore.TokenCredential) *azkeys.Client {
		k, err := azkeys.NewClient(url, c, &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	vaultUnwrap := prepare(e.keys("bench-vault", nil), client(e.vaultURL("bench-vault"), cred))
	hsmUnwrap := prepare(hsmAdmin, client(e.hsmURL("bench-hsm"), cred))
	measure := func(op func() error) float64 {
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		return float64(b.N) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	vault := measure(vaultUnwrap)
	hsm := measure(hsmUnwrap)
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(vault, "vault-unwrap/s")
	b.ReportMetric(hsm, "hsm-unwrap/s")
	b.ReportMetric(vault/hsm, "hsm-cost-x")
}
