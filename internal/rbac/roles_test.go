package rbac

import (
	"strings"
	"testing"
)

func TestCatalogs(t *testing.T) {
	builtin, err := loadCatalog(builtinRolesJSON, TypeBuiltIn)
	if err != nil {
		t.Fatal(err)
	}
	hsm, err := loadCatalog(managedHSMRolesJSON, TypeManagedHSMBuiltIn)
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range map[string]string{
		RoleOwner:                               "Owner",
		RoleContributor:                         "Contributor",
		RoleReader:                              "Reader",
		RoleKeyVaultAdministrator:               "Key Vault Administrator",
		RoleKeyVaultCryptoOfficer:               "Key Vault Crypto Officer",
		RoleKeyVaultCryptoUser:                  "Key Vault Crypto User",
		RoleKeyVaultCryptoServiceEncryptionUser: "Key Vault Crypto Service Encryption User",
		RoleKeyVaultReader:                      "Key Vault Reader",
	} {
		byID, ok1 := builtin.byIDOrName(id)
		byName, ok2 := builtin.byIDOrName(strings.ToUpper(name))
		if !ok1 || !ok2 || byID != byName || byID.RoleName != name {
			t.Errorf("role %s (%s) not found by id and name", name, id)
		}
	}
	if r, ok := hsm.byIDOrName(RoleManagedHSMCryptoServiceEncryptionUser); !ok || r.RoleName != "Managed HSM Crypto Service Encryption User" {
		t.Error("Managed HSM Crypto Service Encryption User missing")
	}
	// The two catalogs are disjoint: ARM assignments cannot name a Managed HSM role.
	for _, r := range hsm.roles {
		if _, ok := builtin.byID[strings.ToLower(r.ID)]; ok {
			t.Errorf("%s is in both catalogs", r.RoleName)
		}
	}
	for _, bad := range []string{`[{"name":"x","roleName":"A","roleType":"BuiltInRole","permissions":[{}]}]`,
		`[{"name":"8e3af657-a8ff-443c-a75c-2fe8c4bcb635","roleName":"A","roleType":"CustomRole","permissions":[{}]}]`,
		`[{"name":"8e3af657-a8ff-443c-a75c-2fe8c4bcb635","roleName":"A","roleType":"BuiltInRole","permissions":[{}]},
		  {"name":"8e3af657-a8ff-443c-a75c-2fe8c4bcb635","roleName":"B","roleType":"BuiltInRole","permissions":[{}]}]`,
		`{`} {
		if _, err := loadCatalog([]byte(bad), TypeBuiltIn); err == nil {
			t.Errorf("catalog %.60s accepted", bad)
		}
	}
}

func TestMatchAction(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.KeyVault/vaults/keys/read", true},
		{"Microsoft.KeyVault/vaults/keys/read", "microsoft.keyvault/VAULTS/keys/READ", true},
		{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/read/x", false},
		{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/rea", false},
		{"Microsoft.KeyVault/vaults/*", "Microsoft.KeyVault/vaults/keys/wrap/action", true},
		{"Microsoft.KeyVault/vaults/*", "Microsoft.KeyVault/vaults", false},
		{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keys/create/action", true},
		{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/write", false},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read", true},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/deletedKeys/read", true},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/wrap/action", false},
		{"*/read", "Microsoft.ManagedIdentity/userAssignedIdentities/read", true},
		{"*/read", "Microsoft.ManagedIdentity/userAssignedIdentities/write", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, c := range cases {
		if got := matchAction(c.pattern, c.action); got != c.want {
			t.Errorf("matchAction(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

func TestRoleDataActions(t *testing.T) {
	builtin, err := loadCatalog(builtinRolesJSON, TypeBuiltIn)
	if err != nil {
		t.Fatal(err)
	}
	const kv = "Microsoft.KeyVault/vaults/"
	cases := []struct {
		role   string
		action string
		want   bool
	}{
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/read", true},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/wrap/action", true},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/unwrap/action", true},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/create/action", false},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/delete", false},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/rotate/action", false},
		{RoleKeyVaultCryptoServiceEncryptionUser, kv + "keys/sign/action", false},
		{RoleKeyVaultCryptoUser, kv + "keys/encrypt/action", true},
		{RoleKeyVaultCryptoUser, kv + "keys/create/action", false},
		{RoleKeyVaultCryptoOfficer, kv + "keys/create/action", true},
		{RoleKeyVaultCryptoOfficer, kv + "keys/delete", true},
		{RoleKeyVaultCryptoOfficer, kv + "keyrotationpolicies/write", true},
		{RoleKeyVaultCryptoOfficer, kv + "secrets/getSecret/action", false},
		{RoleKeyVaultAdministrator, kv + "keys/purge/action", true},
		{RoleKeyVaultAdministrator, kv + "secrets/getSecret/action", true},
		{RoleKeyVaultReader, kv + "keys/read", true},
		{RoleKeyVaultReader, kv + "keys/wrap/action", false},
		{RoleOwner, kv + "keys/read", false}, // control-plane roles carry no data actions
		{RoleContributor, kv + "keys/wrap/action", false},
	}
	for _, c := range cases {
		r := builtin.byID[c.role]
		if got := r.AllowsDataAction(c.action); got != c.want {
			t.Errorf("%s allows %s = %v, want %v", r.RoleName, c.action, got, c.want)
		}
	}
	// notDataActions subtract within a block; another block can still grant.
	r := RoleDefinition{Permissions: []Permission{
		{DataActions: []string{kv + "keys/*"}, NotDataActions: []string{kv + "keys/delete"}},
	}}
	if !r.AllowsDataAction(kv+"keys/read") || r.AllowsDataAction(kv+"keys/delete") {
		t.Error("notDataActions not applied")
	}
	r.Permissions = append(r.Permissions, Permission{DataActions: []string{kv + "keys/delete"}})
	if !r.AllowsDataAction(kv + "keys/delete") {
		t.Error("a second block's grant was blocked by the first block's notDataActions")
	}
	// Control-plane actions follow the same rules.
	contributor := builtin.byID[RoleContributor]
	if !contributor.AllowsAction("Microsoft.KeyVault/vaults/write") || contributor.AllowsAction("Microsoft.Authorization/roleAssignments/write") {
		t.Error("Contributor's actions/notActions misapplied")
	}
}

func TestParseListFilter(t *testing.T) {
	const id = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"
	cases := []struct {
		filter string
		want   ListFilter
		ok     bool
	}{
		{"", ListFilter{}, true},
		{"atScope()", ListFilter{AtScope: true}, true},
		{"  AtScope()  ", ListFilter{AtScope: true}, true},
		{"principalId eq '" + id + "'", ListFilter{PrincipalID: id}, true},
		{"principalid  EQ '" + id + "'", ListFilter{PrincipalID: id}, true},
		{"assignedTo('" + id + "')", ListFilter{PrincipalID: id}, true},
		{"atScope() and assignedTo('" + id + "')", ListFilter{AtScope: true, PrincipalID: id}, true},
		{"assignedTo('" + id + "') and atScope()", ListFilter{AtScope: true, PrincipalID: id}, true},
		{"atScope() and principalId eq '" + id + "'", ListFilter{}, false},
		{"principalId eq " + id, ListFilter{}, false},
		{"principalId eq 'not-a-guid'", ListFilter{}, false},
		{"roleName eq 'Reader'", ListFilter{}, false},
	}
	for _, c := range cases {
		got, err := ParseListFilter(c.filter)
		if (err == nil) != c.ok || c.ok && got != c.want {
			t.Errorf("ParseListFilter(%q) = %+v, %v; want %+v, ok %v", c.filter, got, err, c.want, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "UnsupportedQuery") {
			t.Errorf("ParseListFilter(%q) error %v lacks UnsupportedQuery", c.filter, err)
		}
	}
}

func TestIsGUID(t *testing.T) {
	for s, want := range map[string]bool{
		"e147488a-f6f5-4113-8e2d-b22465e65bf6": true,
		"E147488A-F6F5-4113-8E2D-B22465E65BF6": true,
		"e147488af6f541138e2db22465e65bf6":     false,
		"e147488a-f6f5-4113-8e2d-b22465e65bfg": false,
		"e147488a-f6f5-4113-8e2d_b22465e65bf6": false,
		"":                                     false,
	} {
		if isGUID(s) != want {
			t.Errorf("isGUID(%q) = %v", s, !want)
		}
	}
}
