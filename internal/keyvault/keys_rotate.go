package keyvault

import (
	"context"
	"net/http"

	"github.com/pgflex/pgflex/internal/store"
)

// rotateKey serves POST /keys/{name}/rotate: a new current version.
func (s *Service) rotateKey(r *kvRequest) (result, error) {
	v, k, kv, err := s.rotate(r.Context(), r.vault, r.keyName, "")
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	r.log.Info("key rotated", "vault", v.Name, "key", k.Name, "version", kv.Version)
	return result{http.StatusOK, s.keyBundle(r.api, v, k, kv)}, nil
}

// rotate makes a new version of a key with the current version's type, size, operations and
// tags; the rotation policy's expiryTime, if any, sets its expiry. When ifCurrent is not
// empty, the rotation happens only if that is still the current version (the automatic
// rotation's guard against rotating twice).
func (s *Service) rotate(ctx context.Context, vault *Vault, name, ifCurrent string) (*Vault, *Key, *KeyVersion, error) {
	var cur *KeyVersion
	if err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		_, cur, err = loadKey(tx, vault, name, "")
		return err
	}); err != nil {
		return nil, nil, nil, err
	}
	version := newVersionID()
	gen, priv, err := generateRSA(s.box, cur.KeySize, versionKey(vault.ID, name, version))
	if err != nil {
		return nil, nil, nil, err
	}
	now := s.now().UTC()
	var k *Key
	var v *Vault
	err = s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, vault); err != nil {
			return err
		}
		var latest *KeyVersion
		if k, latest, err = loadKey(tx, v, name, ""); err != nil {
			return err
		}
		if ifCurrent != "" && latest.Version != ifCurrent {
			gen = nil
			return nil
		}
		gen.Version, gen.Kty, gen.KeyOps, gen.Enabled, gen.Tags = version, latest.Kty, latest.KeyOps, true, latest.Tags
		gen.Created, gen.Updated = now, now
		if k.Policy != nil && k.Policy.ExpiryTime != "" {
			if d, err := parseISODuration(k.Policy.ExpiryTime); err == nil {
				exp := d.after(now)
				gen.Expires = &exp
			}
		}
		k.Current = version
		if err := putVersion(tx, v.ID, k.Name, gen); err != nil {
			return err
		}
		return putKey(tx, v.ID, k)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if gen == nil {
		return v, k, nil, nil
	}
	s.keys.put(versionKey(v.ID, k.Name, version), priv)
	return v, k, gen, nil
}
