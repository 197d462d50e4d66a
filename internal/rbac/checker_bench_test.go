package rbac

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

// BenchmarkHasDataAction measures the check the key store makes on every operation of an RBAC
// vault, in a store holding 1,000 assignments of other principals, for a caller with one
// assignment and with 20. Its baseline, measured in the same run, is the least any check must
// do: one read transaction that looks the caller up in the directory. The x-baseline metric
// is the ratio.
func BenchmarkHasDataAction(b *testing.B) {
	f := newFixture(b, "rg")
	ctx := context.Background()
	vault := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
	for i := range 1000 {
		f.assign(fmt.Sprintf("%s%d", vault, i), RoleKeyVaultCryptoUser, f.principal(auth.TypeServicePrincipal))
	}
	one := f.principal(auth.TypeManagedIdentity)
	f.assign(vault, RoleKeyVaultCryptoServiceEncryptionUser, one)
	many := f.principal(auth.TypeManagedIdentity)
	for i := range 19 {
		f.assign(fmt.Sprintf("%s/keys/other%d", vault, i), RoleKeyVaultReader, many)
	}
	f.assign(vault, RoleKeyVaultCryptoServiceEncryptionUser, many)
	key := vault + "/keys/server-key"
	const action = "Microsoft.KeyVault/vaults/keys/unwrap/action"

	baseline := perOp(b, func() error {
		return f.st.View(ctx, func(tx store.Tx) error { _, err := auth.GetPrincipal(tx, one); return err })
	})
	for _, c := range []struct {
		name string
		oid  string
	}{{"1-assignment", one}, {"20-assignments", many}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if ok, err := f.svc.HasDataAction(ctx, c.oid, key, action); !ok || err != nil {
					b.Fatalf("HasDataAction = %v, %v", ok, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/baseline, "x-baseline")
		})
	}
	b.Run("baseline-principal-lookup", func(b *testing.B) {
		for b.Loop() {
			_ = f.st.View(ctx, func(tx store.Tx) error { _, err := auth.GetPrincipal(tx, one); return err })
		}
	})
}

// perOp times fn over enough runs for a stable mean, in nanoseconds per call.
func perOp(b *testing.B, fn func() error) float64 {
	b.Helper()
	const runs = 20000
	start := time.Now()
	for range runs {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / runs
}
