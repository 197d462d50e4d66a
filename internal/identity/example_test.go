package identity_test

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

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/identity"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// A provider that is given an identity's resource id — the flexible server's --identity —
// resolves it with Get (ids compare case-insensitively) and then asks the token issuer for a
// key-store token of the identity's principal, auth.Issuer.IssueForIdentity(ctx,
// ident.PrincipalID, audience).
func ExampleService_Get() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "identity-example-")
	defer os.RemoveAll(dir)
	st, _ := store.OpenBolt(filepath.Join(dir, "state.db"))
	defer st.Close()
	sub, tenant := arm.NewGUID(), arm.NewGUID()
	groups := newGroups(st, sub, tenant, "rg")
	ids := identity.New(st, groups, tenant, slog.New(slog.NewTextHandler(io.Discard, nil)))

	created, _, err := ids.CreateOrUpdate(ctx,
		arm.NewResourceID(sub, "rg", "Microsoft.ManagedIdentity", "userAssignedIdentities", "server-key-id"),
		identity.Spec{Location: "East US"})
	if err != nil {
		fmt.Println(err)
		return
	}

	ref := "/subscriptions/" + sub + "/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/SERVER-KEY-ID"
	id, _ := arm.ParseResourceID(ref)
	ident, err := ids.Get(ctx, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ident.Name, ident.Location, ident.PrincipalID == created.PrincipalID)

	// The identity's principal is in the directory, without a secret.
	_ = st.View(ctx, func(tx store.Tx) error {
		p, err := auth.GetPrincipal(tx, ident.PrincipalID)
		fmt.Println(err == nil && p.IsIdentity() && !p.HasSecret() && p.ClientID == ident.ClientID)
		return nil
	})

	_, err = ids.Get(ctx, arm.NewResourceID(sub, "rg", "Microsoft.ManagedIdentity", "userAssignedIdentities", "missing"))
	fmt.Println(err != nil)
	// Output:
	// server-key-id eastus true
	// true
	// true
}

// newGroups is the resources provider with a subscription and one group, made through its
// own handler as a client would.
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
