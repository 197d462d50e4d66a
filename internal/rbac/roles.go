package rbac

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

// Role types, as Azure names them.
const (
	// TypeBuiltIn marks Azure's built-in ARM roles.
	TypeBuiltIn = "BuiltInRole"
	// TypeManagedHSMBuiltIn marks Managed HSM's built-in local-RBAC roles.
	TypeManagedHSMBuiltIn = "AKVBuiltInRole"
)

// Ids of the built-in roles pgflex's own flows name.
const (
	RoleOwner                                 = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	RoleContributor                           = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	RoleReader                                = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	RoleKeyVaultAdministrator                 = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	RoleKeyVaultCryptoOfficer                 = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	RoleKeyVaultCryptoUser                    = "12338af0-0e69-4776-bea7-57ae8d297424"
	RoleKeyVaultCryptoServiceEncryptionUser   = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	RoleKeyVaultReader                        = "21090545-7ca7-4776-b22c-e363652d74d2"
	RoleManagedHSMCryptoServiceEncryptionUser = "33413926-3206-4cdd-b39a-83574fe37a17"
)

// The catalogs are data, not code: Azure's built-in role definitions as its documentation
// publishes them (built-in-roles/security.md and general.md), and the Managed HSM local-RBAC
// roles as a Managed HSM answers GET /providers/Microsoft.Authorization/roleDefinitions.
// Key Vault Data Access Administrator is left out: its grant depends on an ABAC condition,
// which pgflex does not evaluate.
var (
	//go:embed roles_builtin.json
	builtinRolesJSON []byte
	//go:embed roles_managedhsm.json
	managedHSMRolesJSON []byte
)

// Permission is one permission block of a role definition.
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// RoleDefinition is a role: a name and what it permits.
type RoleDefinition struct {
	ID               string       `json:"name"` // a GUID, the definition's name
	RoleName         string       `json:"roleName"`
	RoleType         string       `json:"roleType"`
	Description      string       `json:"description"`
	AssignableScopes []string     `json:"assignableScopes"`
	Permissions      []Permission `json:"permissions"`
}

// AllowsDataAction reports whether the role grants a data-plane action: some permission block
// lists it in dataActions and does not take it back in notDataActions (Azure evaluates
// notDataActions per block: they subtract, they never deny across roles).
func (d *RoleDefinition) AllowsDataAction(action string) bool {
	for _, p := range d.Permissions {
		if matchAny(p.DataActions, action) && !matchAny(p.NotDataActions, action) {
			return true
		}
	}
	return false
}

// AllowsAction is AllowsDataAction for control-plane actions.
func (d *RoleDefinition) AllowsAction(action string) bool {
	for _, p := range d.Permissions {
		if matchAny(p.Actions, action) && !matchAny(p.NotActions, action) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if matchAction(p, action) {
			return true
		}
	}
	return false
}

// matchAction matches an action against a pattern as Azure does: case-insensitively, with '*'
// standing for any run of characters, slashes included ("Microsoft.KeyVault/vaults/*" covers
// ".../vaults/keys/wrap/action", "*/read" covers every read).
func matchAction(pattern, action string) bool {
	p, a := pattern, action
	// Greedy glob with one backtrack point: linear enough for action strings. Actions are
	// ASCII, so case folds byte by byte, without allocating: this runs on every key operation.
	pi, ai, star, mark := 0, 0, -1, 0
	for ai < len(a) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ai
			pi++
		case pi < len(p) && lowerASCII(p[pi]) == lowerASCII(a[ai]):
			pi++
			ai++
		case star >= 0:
			pi = star + 1
			mark++
			ai = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// catalog is a set of role definitions found by id or by name, case-insensitively.
type catalog struct {
	roles  []RoleDefinition
	byID   map[string]*RoleDefinition
	byName map[string]*RoleDefinition
}

func loadCatalog(data []byte, wantType string) (*catalog, error) {
	var roles []RoleDefinition
	if err := json.Unmarshal(data, &roles); err != nil {
		return nil, fmt.Errorf("role catalog: %w", err)
	}
	c := &catalog{roles: roles, byID: map[string]*RoleDefinition{}, byName: map[string]*RoleDefinition{}}
	for i := range roles {
		r := &roles[i]
		if !isGUID(r.ID) || r.RoleName == "" || r.RoleType != wantType || len(r.Permissions) == 0 {
			return nil, fmt.Errorf("role catalog: definition %q (%q) is incomplete", r.ID, r.RoleName)
		}
		id, name := strings.ToLower(r.ID), strings.ToLower(r.RoleName)
		if c.byID[id] != nil || c.byName[name] != nil {
			return nil, fmt.Errorf("role catalog: %q (%q) is listed twice", r.ID, r.RoleName)
		}
		c.byID[id], c.byName[name] = r, r
	}
	return c, nil
}

func (c *catalog) byIDOrName(s string) (*RoleDefinition, bool) {
	if r, ok := c.byID[strings.ToLower(s)]; ok {
		return r, true
	}
	r, ok := c.byName[strings.ToLower(s)]
	return r, ok
}

// isGUID reports whether s is a GUID in canonical 8-4-4-4-12 form (either case).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
