package keyvault

import (
	"testing"

	"github.com/pgflex/pgflex/internal/rbac"
)

func TestCanonicalHSMScope(t *testing.T) {
	for _, c := range []struct {
		raw, want string
		ok        bool
	}{
		{"", "/", true},
		{"/", "/", true},
		{"//", "/", true}, // scope "/" as clients join it into "/{scope}/providers/..."
		{"/keys", "/keys", true},
		{"//keys/", "/keys", true},
		{"/KEYS/my-key", "/keys/my-key", true},
		{"//keys/my-key", "/keys/my-key", true},
		{"/keys/my_key", "", false},
		{"/keys/a/b", "", false},
		{"/secrets", "", false},
		{"/subscriptions/x", "", false},
	} {
		got, ok := canonicalHSMScope(c.raw)
		if got != c.want || ok != c.ok {
			t.Errorf("canonicalHSMScope(%q) = %q, %v; want %q, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

func TestHSMScopeCovers(t *testing.T) {
	for _, c := range []struct {
		assigned, target string
		want             bool
	}{
		{"/", "/keys/k", true},
		{"/", "/", true},
		{"/keys", "/keys/k", true},
		{"/keys", "/keys", true},
		{"/keys/k", "/keys/K", true}, // key names compare case-insensitively
		{"/keys/k", "/keys/k2", false},
		{"/keys/k", "/keys", false}, // one key's assignment does not cover listing every key
		{"/keys", "/", false},
	} {
		if got := scopeCovers(c.assigned, c.target); got != c.want {
			t.Errorf("scopeCovers(%q, %q) = %v, want %v", c.assigned, c.target, got, c.want)
		}
	}
}

func TestHSMRoleFromID(t *testing.T) {
	s := &Service{hsmRoles: map[string]rbac.RoleDefinition{}}
	s.hsmRoles["33413926-3206-4cdd-b39a-83574fe37a17"] = rbac.RoleDefinition{ID: "33413926-3206-4cdd-b39a-83574fe37a17"}
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/33413926-3206-4cdd-b39a-83574fe37a17", true},
		{"/Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/33413926-3206-4CDD-b39a-83574fe37a17", true},
		{"/providers/Microsoft.Authorization/roleDefinitions/33413926-3206-4cdd-b39a-83574fe37a17", true},
		{"33413926-3206-4cdd-b39a-83574fe37a17", true},
		{"/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/33413926-3206-4cdd-b39a-83574fe37a17", false},
		{"Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6", false},
	} {
		if _, ok := s.hsmRoleFromID(c.id); ok != c.ok {
			t.Errorf("hsmRoleFromID(%q) ok = %v, want %v", c.id, ok, c.ok)
		}
	}
}

// The Managed HSM catalog of internal/rbac decides what the built-in roles allow: the role the
// data plane's identity needs holds exactly get, wrapKey and unwrapKey.
func TestHSMServiceEncryptionRole(t *testing.T) {
	svc, err := rbac.New(nil, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{hsmRoles: map[string]rbac.RoleDefinition{}}
	for _, r := range svc.ManagedHSMRoleDefinitions() {
		s.hsmRoles[r.ID] = r
	}
	role := s.hsmRoles["33413926-3206-4cdd-b39a-83574fe37a17"]
	for op, want := range map[*keyOp]bool{&opGet: true, &opWrap: true, &opUnwrap: true, &opCreate: false,
		&opDelete: false, &opRotate: false, &opEncrypt: false, &opRoleAssignCreate: false} {
		if got := role.AllowsDataAction(op.HSMAction); got != want {
			t.Errorf("%s allows %s = %v, want %v", role.RoleName, op.HSMAction, got, want)
		}
	}
}
