package keyvault

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// attributesBody is KeyAttributes as a request gives them (times in Unix seconds).
type attributesBody struct {
	Enabled    *bool  `json:"enabled"`
	NotBefore  *int64 `json:"nbf"`
	Expires    *int64 `json:"exp"`
	Exportable *bool  `json:"exportable"`
}

// Key Vault's tag limits.
const (
	maxKeyTags     = 15
	maxTagNameLen  = 512
	maxTagValueLen = 256
)

func validateKeyTags(tags map[string]string) error {
	if len(tags) > maxKeyTags {
		return badParameter("A key can have at most %d tags; %d were given.", maxKeyTags, len(tags))
	}
	for k, v := range tags {
		if k == "" || len(k) > maxTagNameLen {
			return badParameter("The tag name '%s' is invalid: tag names are 1 to %d characters.", k, maxTagNameLen)
		}
		if len(v) > maxTagValueLen {
			return badParameter("The value of tag '%s' is longer than %d characters.", k, maxTagValueLen)
		}
	}
	return nil
}

// normalizeKeyOps canonicalises a key_ops list; nil means the default set.
func normalizeKeyOps(ops []string) ([]string, error) {
	if ops == nil {
		return append([]string(nil), allKeyOps...), nil
	}
	out := []string{}
	for _, op := range ops {
		found := ""
		for _, v := range allKeyOps {
			if strings.EqualFold(v, op) {
				found = v
			}
		}
		if found == "" {
			return nil, badParameter("Invalid key operation '%s' in key_ops. Allowed operations for an RSA key are: %s.", op, strings.Join(allKeyOps, ", "))
		}
		if !containsFold(out, found) {
			out = append(out, found)
		}
	}
	return out, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// applyAttributes sets the attributes a request gives on a version.
func applyAttributes(kv *KeyVersion, a *attributesBody) error {
	if a == nil {
		return nil
	}
	if a.Exportable != nil && *a.Exportable {
		return badParameter("Exportable keys need a release policy, and pgflex's key store does not release keys: set exportable to false.")
	}
	if a.Enabled != nil {
		kv.Enabled = *a.Enabled
	}
	if a.NotBefore != nil {
		t := time.Unix(*a.NotBefore, 0).UTC()
		kv.NotBefore = &t
	}
	if a.Expires != nil {
		t := time.Unix(*a.Expires, 0).UTC()
		kv.Expires = &t
	}
	if kv.NotBefore != nil && kv.Expires != nil && !kv.Expires.After(*kv.NotBefore) {
		return badParameter("The key's expiry (exp %d) must be later than its activation date (nbf %d).", kv.Expires.Unix(), kv.NotBefore.Unix())
	}
	return nil
}

// liveVault re-reads the request's vault inside a transaction, so that an operation racing a
// vault delete or purge does not write into a vault that is gone.
func liveVault(tx store.Tx, v *Vault) (*Vault, error) {
	cur, err := getRecord(tx, v.Kind, v.Name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (cur.Deleted != nil || cur.ID != v.ID)) {
		return nil, &kvError{Status: http.StatusNotFound, Code: "VaultNotFound", Message: fmt.Sprintf("The %s '%s' does not exist.", v.KindName(), v.Name)}
	}
	return cur, err
}

// loadKey reads a live (not deleted) key and one of its versions; version "" is the current one.
func loadKey(tx store.Tx, v *Vault, name, version string) (*Key, *KeyVersion, error) {
	k, err := getKey(tx, v.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, keyNotFound(name, version)
	}
	if err != nil {
		return nil, nil, err
	}
	if k.Deleted != nil {
		return nil, nil, keyNotFound(name, version)
	}
	ver := version
	if ver == "" {
		ver = k.Current
	}
	kv, err := getVersion(tx, v.ID, k.Name, ver)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, keyNotFound(name, version)
	}
	if err != nil {
		return nil, nil, err
	}
	return k, kv, nil
}

// nudge wakes the maintenance loop (a policy or an expiry changed).
func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
