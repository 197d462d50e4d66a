package keyvault_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// BenchmarkWrapUnwrap measures wrapKey and unwrapKey (RSA-OAEP-256, 2048-bit key, 32-byte DEK)
// through the key store's REST API with Azure's azkeys client, next to the same RSA operation
// done in process, in the same run. The ratios are the API's overhead: TLS, HTTP, token
// verification, authorization, and the synchronous audit record (an fsync'd store write).
//
//	go test -run '^$' -bench WrapUnwrap -benchtime 200x ./internal/keyvault/
func BenchmarkWrapUnwrap(b *testing.B) {
	ctx := context.Background()
	e := newKVEnv(b)
	e.group("rg")
	e.createVault("rg", "bench-vault", nil)
	c := e.keys("bench-vault", nil)
	created, err := c.CreateKey(ctx, "bench", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	version := created.Key.KID.Version()
	pub := publicKey(created.Key)
	local, err := rsa.GenerateKey(rand.Reader, 2048) // same size: the same RSA work
	if err != nil {
		b.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	w, err := c.WrapKey(ctx, "bench", version, azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil) // warm: challenge, token
	if err != nil {
		b.Fatal(err)
	}
	localWrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &local.PublicKey, dek, nil)

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
	restWrap := measure(func() error {
		_, err := c.WrapKey(ctx, "bench", version, azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
		return err
	})
	restUnwrap := measure(func() error {
		_, err := c.UnwrapKey(ctx, "bench", version, azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
		return err
	})
	localWrap := measure(func() error {
		_, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
		return err
	})
	localUnwrap := measure(func() error {
		_, err := rsa.DecryptOAEP(sha256.New(), nil, local, localWrapped, nil)
		return err
	})
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(restWrap, "rest-wrap/s")
	b.ReportMetric(localWrap, "local-wrap/s")
	b.ReportMetric(localWrap/restWrap, "wrap-overhead-x")
	b.ReportMetric(restUnwrap, "rest-unwrap/s")
	b.ReportMetric(localUnwrap, "local-unwrap/s")
	b.ReportMetric(localUnwrap/restUnwrap, "unwrap-overhead-x")
}
