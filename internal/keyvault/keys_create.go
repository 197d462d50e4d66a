package keyvault

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/store"
)

type createKeyBody struct {
	Kty            string            `json:"kty"`
	KeySize        *int              `json:"key_size"`
	PublicExponent *int              `json:"public_exponent"`
	KeyOps         []string          `json:"key_ops"`
	Attributes     *attributesBody   `json:"attributes"`
	Tags           map[string]string `json:"tags"`
	Crv            string            `json:"crv"`
	ReleasePolicy  json.RawMessage   `json:"release_policy"`
}

// validRSASizes are the RSA key sizes Key Vault (and PostgreSQL's data encryption) accept.
var validRSASizes = []int{2048, 3072, 4096}

// createKey serves POST /keys/{name}/create: a new key, or a new version of an existing one.
func (s *Service) createKey(r *kvRequest) (result, error) {
	var b createKeyBody
	if err := decodeBody(r, &b); err != nil {
		return result{}, err
	}
	switch {
	case b.Kty == "":
		return result{}, badParameter("The key type (kty) is required.")
	case strings.EqualFold(b.Kty, "RSA"):
	case strings.EqualFold(b.Kty, "RSA-HSM"):
		if !r.vault.IsManagedHSM() {
			return result{}, badParameter("Key type 'RSA-HSM' is not supported: pgflex vaults hold software-protected keys only (kty 'RSA', az --protection software); HSM-protected keys live in a Managed HSM.")
		}
	case strings.HasPrefix(strings.ToUpper(b.Kty), "EC"), strings.HasPrefix(strings.ToLower(b.Kty), "oct"):
		want := "RSA"
		if r.vault.IsManagedHSM() {
			want = "RSA-HSM"
		}
		return result{}, badParameter("Key type '%s' is not supported by pgflex's key store: create an %s key.", b.Kty, want)
	default:
		return result{}, badParameter("Invalid key type (kty) '%s'. Allowed values are RSA, RSA-HSM, EC, EC-HSM, oct and oct-HSM.", b.Kty)
	}
	bits := 2048
	if b.KeySize != nil {
		bits = *b.KeySize
		ok := false
		for _, v := range validRSASizes {
			ok = ok || v == bits
		}
		if !ok {
			return result{}, badParameter("Invalid key size %d for an RSA key. Allowed sizes are 2048, 3072 and 4096.", bits)
		}
	}
	if b.PublicExponent != nil && *b.PublicExponent != 65537 {
		return result{}, badParameter("Invalid public exponent %d: pgflex's key store creates RSA keys with the exponent 65537.", *b.PublicExponent)
	}
	if len(b.ReleasePolicy) > 0 && string(b.ReleasePolicy) != "null" {
		return result{}, badParameter("Key release policies are not supported by pgflex's key store.")
	}
	ops, err := normalizeKeyOps(b.KeyOps)
	if err != nil {
		return result{}, err
	}
	if err := validateKeyTags(b.Tags); err != nil {
		return result{}, err
	}
	now := s.now().UTC()
	kv := &KeyVersion{Enabled: true}
	if err := applyAttributes(kv, b.Attributes); err != nil {
		return result{}, err
	}
	name := r.keyName
	// Refuse a deleted name before spending seconds on key generation.
	if err := s.st.View(r.Context(), func(tx store.Tx) error {
		k, err := getKey(tx, r.vault.ID, name)
		if err == nil && k.Deleted != nil {
			return keyIsDeleted(k.Name)
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return result{}, err
	}
	version := newVersionID()
	gen, priv, err := generateRSA(s.box, bits, versionKey(r.vault.ID, name, version))
	if err != nil {
		return result{}, err
	}
	gen.Version, gen.KeyOps, gen.Enabled, gen.NotBefore, gen.Expires = version, ops, kv.Enabled, kv.NotBefore, kv.Expires
	if r.vault.IsManagedHSM() {
		gen.Kty = "RSA-HSM" // a Managed HSM's keys are all HSM-protected: it reports RSA as RSA-HSM
	}
	gen.Created, gen.Updated, gen.Tags = now, now, b.Tags
	var k *Key
	var v *Vault
	err = s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, r.vault); err != nil {
			return err
		}
		k, err = getKey(tx, v.ID, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			k = &Key{Name: name, Created: now}
		case err != nil:
			return err
		case k.Deleted != nil:
			return keyIsDeleted(k.Name)
		}
		k.Current = version
		if err := putVersion(tx, v.ID, k.Name, gen); err != nil {
			return err
		}
		return putKey(tx, v.ID, k)
	})
	if err != nil {
		return result{}, err
	}
	s.keys.put(versionKey(v.ID, k.Name, version), priv)
	if gen.Expires != nil {
		s.nudge()
	}
	r.keyName, r.version = k.Name, version
	r.log.Info("key created", "vault", v.Name, "key", k.Name, "version", version, "size", bits)
	return result{http.StatusOK, s.keyBundle(r.api, v, k, gen)}, nil
}
