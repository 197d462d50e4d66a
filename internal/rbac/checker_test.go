package rbac

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// fixture is the provider over a real state store, with the resources provider beside it so
// that subscriptions and groups exist as the daemon keeps them.
type fixture struct {
	t   testing.TB
	st  store.Store
	svc *Service
	sub string
}

const testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func newFixture(t testing.TB, groups ...string) *fixture {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res := resources.New(st, arm.NewOperations(ctx, st, log), log)
	svc, err := New(st, res, testTenant, log)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, svc: svc, sub: arm.NewGUID()}
	f.update(func(tx store.Tx) error {
		return resources.PutSubscription(tx, &resources.Subscription{ID: f.sub, DisplayName: "test", TenantID: testTenant, State: "Enabled"})
	})
	// Groups are made through the resources provider's own handler; authentication is not what
	// this test is about, so the router lets every caller in as the administrator.
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{Admin: true}, nil }, log)
	res.RegisterRoutes(rt)
	for _, g := range groups {
		req := httptest.NewRequest(http.MethodPut, "/subscriptions/"+f.sub+"/resourcegroups/"+g+"?api-version=2021-04-01",
			strings.NewReader(`{"location":"eastus"}`))
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("create group %s: %d %s", g, rec.Code, rec.Body)
		}
	}
	return f
}

func (f *fixture) update(fn func(store.Tx) error) {
	f.t.Helper()
	if err := f.st.Update(context.Background(), fn); err != nil {
		f.t.Fatal(err)
	}
}

// principal adds a service principal to the directory and returns its object id.
func (f *fixture) principal(typ string) string {
	f.t.Helper()
	oid := arm.NewGUID()
	f.update(func(tx store.Tx) error {
		return auth.PutPrincipal(tx, &auth.Principal{ObjectID: oid, ClientID: arm.NewGUID(), TenantID: testTenant,
			Type: typ, Created: time.Now()})
	})
	return oid
}

func (f *fixture) assign(scope, role, oid string) *Assignment {
	f.t.Helper()
	a, created, err := f.svc.CreateAssignment(context.Background(), AssignmentRequest{Scope: scope, Name: arm.NewGUID(),
		RoleDefinitionID: "/subscriptions/" + f.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + role, PrincipalID: oid})
	if err != nil || !created {
		f.t.Fatalf("assign %s to %s at %s: created %v, %v", role, oid, scope, created, err)
	}
	return a
}

func TestHasDataAction(t *testing.T) {
	f := newFixture(t, "rg", "rg-other")
	ctx := context.Background()
	sub := "/subscriptions/" + f.sub
	rg := sub + "/resourceGroups/rg"
	vault1 := rg + "/providers/Microsoft.KeyVault/vaults/v1"
	vault2 := rg + "/providers/Microsoft.KeyVault/vaults/v2"
	other := sub + "/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults/v3"

	server := f.principal(auth.TypeManagedIdentity) // a server's identity: wrap and unwrap on v1
	f.assign(vault1, RoleKeyVaultCryptoServiceEncryptionUser, server)
	officer := f.principal(auth.TypeServicePrincipal) // manages one key of v2 only
	f.assign(vault2+"/keys/k2", RoleKeyVaultCryptoOfficer, officer)
	admin := f.principal(auth.TypeServicePrincipal) // Key Vault Administrator over the group
	f.assign(rg, RoleKeyVaultAdministrator, admin)
	reader := f.principal(auth.TypeServicePrincipal) // Reader on the subscription: no data actions
	f.assign(sub, RoleReader, reader)
	ghost := f.principal(auth.TypeManagedIdentity) // assigned, then deleted from the directory
	f.assign(sub, RoleKeyVaultAdministrator, ghost)
	f.update(func(tx store.Tx) error { return auth.DeletePrincipal(tx, ghost) })

	const kv = "Microsoft.KeyVault/vaults/"
	cases := []struct {
		name      string
		principal string
		scope     string
		action    string
		want      bool
	}{
		{"wrap at the assigned vault", server, vault1, kv + "keys/wrap/action", true},
		{"unwrap on a key below it", server, vault1 + "/keys/k1", kv + "keys/unwrap/action", true},
		{"read a key", server, vault1 + "/keys/k1", kv + "keys/read", true},
		{"ids compare case-insensitively", server, strings.ToUpper(vault1) + "/KEYS/K1", kv + "keys/wrap/action", true},
		{"create is not granted", server, vault1, kv + "keys/create/action", false},
		{"delete is not granted", server, vault1 + "/keys/k1", kv + "keys/delete", false},
		{"rotate is not granted", server, vault1 + "/keys/k1", kv + "keys/rotate/action", false},
		{"another vault", server, vault2 + "/keys/k1", kv + "keys/wrap/action", false},
		{"the group above grants nothing", server, rg, kv + "keys/wrap/action", false},
		{"officer on its key", officer, vault2 + "/keys/k2", kv + "keys/create/action", true},
		{"officer on another key", officer, vault2 + "/keys/k3", kv + "keys/create/action", false},
		{"officer on the vault itself", officer, vault2, kv + "keys/read", false},
		{"group administrator on a key", admin, vault2 + "/keys/any", kv + "keys/purge/action", true},
		{"group administrator elsewhere", admin, other, kv + "keys/read", false},
		{"reader", reader, vault1, kv + "keys/read", false},
		{"deleted principal", ghost, vault1, kv + "keys/read", false},
		{"unknown principal", arm.NewGUID(), vault1, kv + "keys/read", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.svc.HasDataAction(ctx, c.principal, c.scope, c.action)
			if err != nil || got != c.want {
				t.Fatalf("HasDataAction = %v, %v; want %v", got, err, c.want)
			}
		})
	}
	if _, err := f.svc.HasDataAction(ctx, server, "vaults/v1", kv+"keys/read"); err == nil {
		t.Fatal("a malformed scope was accepted")
	}
}

func TestCreateAssignmentRefusals(t *testing.T) {
	f := newFixture(t, "rg")
	ctx := context.Background()
	sub := "/subscriptions/" + f.sub
	vault := sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
	oid := f.principal(auth.TypeManagedIdentity)
	first := f.assign(vault, RoleKeyVaultCryptoServiceEncryptionUser, oid)
	role := func(id string) string { return sub + "/providers/Microsoft.Authorization/roleDefinitions/" + id }
	ok := AssignmentRequest{Scope: vault, Name: arm.NewGUID(), RoleDefinitionID: role(RoleKeyVaultCryptoUser), PrincipalID: oid}
	with := func(change func(*AssignmentRequest)) AssignmentRequest { r := ok; change(&r); return r }
	cases := []struct {
		name string
		req  AssignmentRequest
		code string
	}{
		{"name not a GUID", with(func(r *AssignmentRequest) { r.Name = "my-assignment" }), "InvalidRoleAssignmentId"},
		{"malformed scope", with(func(r *AssignmentRequest) { r.Scope = sub + "/resourceGroups" }), "InvalidScope"},
		{"relative scope", with(func(r *AssignmentRequest) { r.Scope = "resourceGroups/rg" }), "InvalidScope"},
		{"unknown role", with(func(r *AssignmentRequest) { r.RoleDefinitionID = role(arm.NewGUID()) }), "RoleDefinitionDoesNotExist"},
		{"Managed HSM role", with(func(r *AssignmentRequest) { r.RoleDefinitionID = role(RoleManagedHSMCryptoServiceEncryptionUser) }), "RoleDefinitionDoesNotExist"},
		{"role of another subscription", with(func(r *AssignmentRequest) {
			r.RoleDefinitionID = "/subscriptions/" + arm.NewGUID() + "/providers/Microsoft.Authorization/roleDefinitions/" + RoleReader
		}), "InvalidRoleDefinitionId"},
		{"role id by name", with(func(r *AssignmentRequest) { r.RoleDefinitionID = "Reader" }), "InvalidRoleDefinitionId"},
		{"no principal", with(func(r *AssignmentRequest) { r.PrincipalID = "" }), "InvalidPrincipalId"},
		{"principal not a GUID", with(func(r *AssignmentRequest) { r.PrincipalID = "User" }), "InvalidPrincipalId"},
		{"unknown principal", with(func(r *AssignmentRequest) { r.PrincipalID = arm.NewGUID() }), "PrincipalNotFound"},
		{"wrong principal type", with(func(r *AssignmentRequest) { r.PrincipalType = PrincipalUser }), "UnmatchedPrincipalType"},
		{"invalid principal type", with(func(r *AssignmentRequest) { r.PrincipalType = "Robot" }), "InvalidPrincipalType"},
		{"condition", with(func(r *AssignmentRequest) { r.Condition = "@Resource[x] StringEquals 'y'" }), "ConditionNotSupported"},
		{"missing group", with(func(r *AssignmentRequest) { r.Scope = sub + "/resourceGroups/nope" }), "ResourceGroupNotFound"},
		{"missing subscription", with(func(r *AssignmentRequest) {
			r.Scope = "/subscriptions/" + arm.NewGUID()
			r.RoleDefinitionID = "/providers/Microsoft.Authorization/roleDefinitions/" + RoleReader
		}), "SubscriptionNotFound"},
		{"duplicate", with(func(r *AssignmentRequest) { r.RoleDefinitionID = role(RoleKeyVaultCryptoServiceEncryptionUser) }), "RoleAssignmentExists"},
		{"name reused for another role", with(func(r *AssignmentRequest) { r.Name = first.Name }), "RoleAssignmentUpdateNotPermitted"},
		{"name reused at another scope", with(func(r *AssignmentRequest) {
			r.Name, r.Scope, r.RoleDefinitionID = first.Name, sub, role(RoleKeyVaultCryptoServiceEncryptionUser)
		}), "RoleAssignmentUpdateNotPermitted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := f.svc.CreateAssignment(ctx, c.req)
			if ae := arm.AsError(err); ae == nil || ae.Code != c.code {
				t.Fatalf("CreateAssignment = %v, want %s", err, c.code)
			}
		})
	}
	// Refusals changed nothing: the one assignment is all there is.
	all, err := f.svc.ListAssignments(ctx, sub, ListFilter{})
	if err != nil || len(all) != 1 || all[0].Name != first.Name {
		t.Fatalf("assignments after refusals = %+v, %v", all, err)
	}
	// Repeating the first request is idempotent and may change the description.
	again, created, err := f.svc.CreateAssignment(ctx, AssignmentRequest{Scope: strings.ToUpper(vault), Name: strings.ToUpper(first.Name),
		RoleDefinitionID: first.RoleDefinitionID, PrincipalID: oid, PrincipalType: PrincipalServicePrincipal, Description: "server key"})
	if err != nil || created || again.Description != "server key" || !again.CreatedOn.Equal(first.CreatedOn) || again.Scope != first.Scope {
		t.Fatalf("repeat = %+v created %v, %v", again, created, err)
	}
}

func TestListAndDeleteAssignments(t *testing.T) {
	f := newFixture(t, "rg", "rg2")
	ctx := context.Background()
	sub := "/subscriptions/" + f.sub
	rg := sub + "/resourceGroups/rg"
	vault := rg + "/providers/Microsoft.KeyVault/vaults/v"
	a, b := f.principal(auth.TypeManagedIdentity), f.principal(auth.TypeServicePrincipal)
	atSub := f.assign(sub, RoleReader, b)
	atRG := f.assign(rg, RoleKeyVaultReader, a)
	atVault := f.assign(vault, RoleKeyVaultCryptoServiceEncryptionUser, a)
	atKey := f.assign(vault+"/keys/k", RoleKeyVaultCryptoUser, b)
	inRG2 := f.assign(sub+"/resourceGroups/rg2", RoleKeyVaultReader, a)

	names := func(as []Assignment) string {
		var out []string
		for _, x := range as {
			switch x.Name {
			case atSub.Name:
				out = append(out, "sub")
			case atRG.Name:
				out = append(out, "rg")
			case atVault.Name:
				out = append(out, "vault")
			case atKey.Name:
				out = append(out, "key")
			case inRG2.Name:
				out = append(out, "rg2")
			}
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		scope string
		f     ListFilter
		want  string
	}{
		{sub, ListFilter{}, "sub,rg,vault,key,rg2"},
		{sub, ListFilter{AtScope: true}, "sub"},
		{rg, ListFilter{}, "sub,rg,vault,key"},
		{vault, ListFilter{AtScope: true}, "sub,rg,vault"},
		{vault + "/keys/k", ListFilter{AtScope: true}, "sub,rg,vault,key"},
		{sub, ListFilter{PrincipalID: a}, "rg,vault,rg2"},
		{vault, ListFilter{PrincipalID: b}, "sub,key"},
		{vault, ListFilter{AtScope: true, PrincipalID: b}, "sub"},
	}
	for _, c := range cases {
		got, err := f.svc.ListAssignments(ctx, c.scope, c.f)
		if err != nil || names(got) != c.want {
			t.Errorf("ListAssignments(%s, %+v) = %s, %v; want %s", c.scope, c.f, names(got), err, c.want)
		}
	}

	// Another scope does not see an assignment by name, nor delete it.
	if _, err := f.svc.Assignment(ctx, rg, atVault.Name); arm.AsError(err) == nil || arm.AsError(err).Code != "RoleAssignmentNotFound" {
		t.Fatalf("Assignment at the wrong scope = %v", err)
	}
	if gone, err := f.svc.DeleteAssignment(ctx, rg, atVault.Name); gone != nil || err != nil {
		t.Fatalf("DeleteAssignment at the wrong scope = %v, %v", gone, err)
	}
	if gone, err := f.svc.DeleteAssignment(ctx, vault, atVault.Name); gone == nil || err != nil || gone.Name != atVault.Name {
		t.Fatalf("DeleteAssignment = %v, %v", gone, err)
	}
	if ok, _ := f.svc.HasDataAction(ctx, a, vault, "Microsoft.KeyVault/vaults/keys/wrap/action"); ok {
		t.Fatal("a deleted assignment still grants")
	}

	// A group delete takes the assignments at and below the group, and no others.
	if err := f.svc.DeleteAllInGroup(ctx, f.sub, "RG"); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.ListAssignments(ctx, sub, ListFilter{})
	if err != nil || names(got) != "sub,rg2" {
		t.Fatalf("after group delete = %s, %v", names(got), err)
	}
	if held, _ := f.svc.ListAssignments(ctx, sub, ListFilter{PrincipalID: b}); names(held) != "sub" {
		t.Fatalf("principal index after group delete = %s", names(held))
	}
}
