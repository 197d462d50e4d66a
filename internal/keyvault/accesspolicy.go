package keyvault

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// Permissions are an access policy's grants per object kind, as ARM spells them.
type Permissions struct {
	Keys         []string `json:"keys"`
	Secrets      []string `json:"secrets"`
	Certificates []string `json:"certificates"`
	Storage      []string `json:"storage"`
}

// AccessPolicy is one entry of a vault's accessPolicies.
type AccessPolicy struct {
	TenantID      string      `json:"tenantId"`
	ObjectID      string      `json:"objectId"`
	ApplicationID *string     `json:"applicationId,omitempty"`
	Permissions   Permissions `json:"permissions"`
}

// Key permissions, as access policies name them.
const (
	PermEncrypt           = "encrypt"
	PermDecrypt           = "decrypt"
	PermWrapKey           = "wrapKey"
	PermUnwrapKey         = "unwrapKey"
	PermSign              = "sign"
	PermVerify            = "verify"
	PermGet               = "get"
	PermList              = "list"
	PermCreate            = "create"
	PermUpdate            = "update"
	PermImport            = "import"
	PermDelete            = "delete"
	PermBackup            = "backup"
	PermRestore           = "restore"
	PermRecover           = "recover"
	PermPurge             = "purge"
	PermRelease           = "release"
	PermRotate            = "rotate"
	PermGetRotationPolicy = "getrotationpolicy"
	PermSetRotationPolicy = "setrotationpolicy"
	PermAll               = "all"
)

// AllKeyPermissions is every key permission but "all", in the order az lists them; it is what
// `pgflex keyvault create` grants the creator.
var AllKeyPermissions = []string{PermAll, PermBackup, PermCreate, PermDecrypt, PermDelete, PermEncrypt, PermGet,
	PermGetRotationPolicy, PermImport, PermList, PermPurge, PermRecover, PermRelease, PermRestore, PermRotate,
	PermSetRotationPolicy, PermSign, PermUnwrapKey, PermUpdate, PermVerify, PermWrapKey}

var (
	validKeyPerms         = AllKeyPermissions
	validSecretPerms      = []string{"all", "backup", "delete", "get", "list", "purge", "recover", "restore", "set"}
	validCertificatePerms = []string{"all", "backup", "create", "delete", "deleteissuers", "get", "getissuers", "import", "list",
		"listissuers", "managecontacts", "manageissuers", "purge", "recover", "restore", "setissuers", "update"}
	validStoragePerms = []string{"all", "backup", "delete", "deletesas", "get", "getsas", "list", "listsas", "purge",
		"recover", "regeneratekey", "restore", "set", "setsas", "update"}
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s has the canonical GUID shape.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

// normalizePermission returns the canonical spelling of p from valid (ARM compares
// permissions case-insensitively and echoes the canonical form).
func normalizePermission(p string, valid []string) (string, bool) {
	for _, v := range valid {
		if strings.EqualFold(v, p) {
			return v, true
		}
	}
	return "", false
}

// validateAccessPolicies checks and canonicalises access policy entries; field names the
// JSON path for error messages (properties.accessPolicies).
func validateAccessPolicies(field string, policies []AccessPolicy, max int) ([]AccessPolicy, error) {
	if len(policies) > max {
		return nil, arm.BadRequest("BadRequest", "The number of access policies (%d) exceeds the maximum of %d for a vault.", len(policies), max)
	}
	out := make([]AccessPolicy, 0, len(policies))
	for i, p := range policies {
		at := fmt.Sprintf("%s[%d]", field, i)
		if !IsGUID(p.TenantID) {
			return nil, arm.InvalidParameter(at+".tenantId", "The access policy at %s has an invalid tenantId '%s': it must be a GUID.", at, p.TenantID)
		}
		if strings.TrimSpace(p.ObjectID) == "" {
			return nil, arm.InvalidParameter(at+".objectId", "The access policy at %s has no objectId.", at)
		}
		if p.ApplicationID != nil && *p.ApplicationID != "" && !IsGUID(*p.ApplicationID) {
			return nil, arm.InvalidParameter(at+".applicationId", "The access policy at %s has an invalid applicationId '%s': it must be a GUID.", at, *p.ApplicationID)
		}
		if p.ApplicationID != nil && *p.ApplicationID == "" {
			p.ApplicationID = nil
		}
		var err error
		if p.Permissions.Keys, err = checkPerms(at+".permissions.keys", p.Permissions.Keys, validKeyPerms); err != nil {
			return nil, err
		}
		if p.Permissions.Secrets, err = checkPerms(at+".permissions.secrets", p.Permissions.Secrets, validSecretPerms); err != nil {
			return nil, err
		}
		if p.Permissions.Certificates, err = checkPerms(at+".permissions.certificates", p.Permissions.Certificates, validCertificatePerms); err != nil {
			return nil, err
		}
		if p.Permissions.Storage, err = checkPerms(at+".permissions.storage", p.Permissions.Storage, validStoragePerms); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func checkPerms(field string, perms, valid []string) ([]string, error) {
	out := make([]string, 0, len(perms))
	for i, p := range perms {
		c, ok := normalizePermission(p, valid)
		if !ok {
			return nil, arm.InvalidParameter(fmt.Sprintf("%s[%d]", field, i),
				"Invalid value found at %s[%d]: '%s'. Allowed values are: %s.", field, i, p, strings.Join(valid, ", "))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// sameEntry reports whether two access policies are for the same identity (tenant, object and
// application), which is how the accessPolicies/{add,replace,remove} operation matches them.
func sameEntry(a, b AccessPolicy) bool {
	appA, appB := "", ""
	if a.ApplicationID != nil {
		appA = *a.ApplicationID
	}
	if b.ApplicationID != nil {
		appB = *b.ApplicationID
	}
	return strings.EqualFold(a.TenantID, b.TenantID) && strings.EqualFold(a.ObjectID, b.ObjectID) && strings.EqualFold(appA, appB)
}

func unionPerms(a, b []string) []string {
	out := append([]string{}, a...)
	for _, p := range b {
		if !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, p) }) {
			out = append(out, p)
		}
	}
	return out
}

func minusPerms(a, b []string) []string {
	out := []string{}
	for _, p := range a {
		if !slices.ContainsFunc(b, func(x string) bool { return strings.EqualFold(x, p) }) {
			out = append(out, p)
		}
	}
	return out
}

// applyPolicyOperation merges entries into current as `az keyvault set-policy` and
// delete-policy expect: add unions permissions into a matching entry (or appends it), replace
// substitutes the matching entry's permissions, remove takes the given permissions away and
// drops an entry left with none (or when no permissions were given).
func applyPolicyOperation(current []AccessPolicy, kind string, entries []AccessPolicy) ([]AccessPolicy, error) {
	out := append([]AccessPolicy(nil), current...)
	for _, e := range entries {
		idx := slices.IndexFunc(out, func(p AccessPolicy) bool { return sameEntry(p, e) })
		switch kind {
		case "add":
			if idx < 0 {
				out = append(out, e)
				continue
			}
			p := &out[idx]
			p.Permissions.Keys = unionPerms(p.Permissions.Keys, e.Permissions.Keys)
			p.Permissions.Secrets = unionPerms(p.Permissions.Secrets, e.Permissions.Secrets)
			p.Permissions.Certificates = unionPerms(p.Permissions.Certificates, e.Permissions.Certificates)
			p.Permissions.Storage = unionPerms(p.Permissions.Storage, e.Permissions.Storage)
		case "replace":
			if idx < 0 {
				out = append(out, e)
				continue
			}
			out[idx].Permissions = e.Permissions
		case "remove":
			if idx < 0 {
				continue
			}
			p := &out[idx]
			ep := e.Permissions
			if len(ep.Keys)+len(ep.Secrets)+len(ep.Certificates)+len(ep.Storage) == 0 {
				out = slices.Delete(out, idx, idx+1)
				continue
			}
			p.Permissions.Keys = minusPerms(p.Permissions.Keys, ep.Keys)
			p.Permissions.Secrets = minusPerms(p.Permissions.Secrets, ep.Secrets)
			p.Permissions.Certificates = minusPerms(p.Permissions.Certificates, ep.Certificates)
			p.Permissions.Storage = minusPerms(p.Permissions.Storage, ep.Storage)
			pp := p.Permissions
			if len(pp.Keys)+len(pp.Secrets)+len(pp.Certificates)+len(pp.Storage) == 0 {
				out = slices.Delete(out, idx, idx+1)
			}
		default:
			return nil, arm.Errorf(http.StatusBadRequest, "InvalidOperationKind",
				"The access policy operation kind '%s' is invalid. Use add, replace or remove.", kind)
		}
	}
	return out, nil
}

// policyGrants reports whether the policies grant perm on keys to the caller (object id,
// tenant, application id). An entry with an applicationId grants only to that application
// acting for that object (a compound identity), as Key Vault does.
func policyGrants(policies []AccessPolicy, oid, tid, appid, perm string) bool {
	for _, p := range policies {
		if !strings.EqualFold(p.ObjectID, oid) || !strings.EqualFold(p.TenantID, tid) {
			continue
		}
		if p.ApplicationID != nil && !strings.EqualFold(*p.ApplicationID, appid) {
			continue
		}
		for _, k := range p.Permissions.Keys {
			if strings.EqualFold(k, perm) || strings.EqualFold(k, PermAll) {
				return true
			}
		}
	}
	return false
}
