package rbac_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// The key store asks, for every operation on a vault with RBAC authorization, whether the
// caller holds the operation's data action at the key (assignments on the vault, its group or
// its subscription apply too).
func ExampleService_HasDataAction() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "rbac-example-")
	defer os.RemoveAll(dir)
	st, _ := store.OpenBolt(filepath.Join(dir, "state.db"))
	defer st.Close()
	sub, tenant := arm.NewGUID(), arm.NewGUID()
	checker, _ := rbac.New(st, newGroups(st, sub, tenant, "rg"), tenant, slog.New(slog.NewTextHandler(io.Discard, nil)))

	// A server's managed identity, granted Key Vault Crypto Service Encryption User on a vault.
	serverID := arm.NewGUID()
	_ = st.Update(ctx, func(tx store.Tx) error {
		return auth.PutPrincipal(tx, &auth.Principal{ObjectID: serverID, ClientID: arm.NewGUID(), TenantID: tenant,
			Type: auth.TypeManagedIdentity, Created: time.Now()})
	})
	vault := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/cmk"
	_, _, err := checker.CreateAssignment(ctx, rbac.AssignmentRequest{Scope: vault, Name: arm.NewGUID(), PrincipalID: serverID,
		RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.RoleKeyVaultCryptoServiceEncryptionUser})
	if err != nil {
		fmt.Println(err)
		return
	}

	for _, action := range []string{"keys/wrap/action", "keys/unwrap/action", "keys/create/action"} {
		ok, _ := checker.HasDataAction(ctx, serverID, vault+"/keys/server-key", "Microsoft.KeyVault/vaults/"+action)
		fmt.Println(action, ok)
	}
	// Output:
	// keys/wrap/action true
	// keys/unwrap/action true
	// keys/create/action false
}

func newGroups(st store.Store, sub, tenant, group string) *resources.Service {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	res := resources.New(st, arm.NewOperations(context.Background(), st, log), log)
	_ = st.Update(context.Background(), func(tx store.Tx) error {
		return resources.PutSubscription(tx, &resources.Subscription{ID: sub, DisplayName: "example", TenantID: tenant, State: "Enabled"})
	})
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{Admin: true}, nil }, log)
	res.RegisterRoutes(rt)
	rt.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut,
		"/subscriptions/"+sub+"/resourcegroups/"+group+"?api-version=2021-04-01", strings.NewReader(`{"location":"eastus"}`)))
	return res
}
