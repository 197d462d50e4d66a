package keyvault

import (
	"encoding/json"
	"net/http"

	"github.com/pgflex/pgflex/internal/store"
)

type updateKeyBody struct {
	KeyOps        []string          `json:"key_ops"`
	Attributes    *attributesBody   `json:"attributes"`
	Tags          map[string]string `json:"tags"`
	ReleasePolicy json.RawMessage   `json:"release_policy"`
}

// updateKey serves PATCH /keys/{name}[/{version}]: the attributes, operations and tags of one
// version (the current one when no version is named).
func (s *Service) updateKey(r *kvRequest) (result, error) {
	var b updateKeyBody
	if err := decodeBody(r, &b); err != nil {
		return result{}, err
	}
	if len(b.ReleasePolicy) > 0 && string(b.ReleasePolicy) != "null" {
		return result{}, badParameter("Key release policies are not supported by pgflex's key store.")
	}
	var ops []string
	if b.KeyOps != nil {
		var err error
		if ops, err = normalizeKeyOps(b.KeyOps); err != nil {
			return result{}, err
		}
	}
	if b.Tags != nil {
		if err := validateKeyTags(b.Tags); err != nil {
			return result{}, err
		}
	}
	var k *Key
	var kv *KeyVersion
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, r.vault); err != nil {
			return err
		}
		if k, kv, err = loadKey(tx, v, r.keyName, r.version); err != nil {
			return err
		}
		if err := applyAttributes(kv, b.Attributes); err != nil {
			return err
		}
		if ops != nil {
			kv.KeyOps = ops
		}
		if b.Tags != nil {
			kv.Tags = b.Tags
		}
		kv.Updated = s.now().UTC()
		return putVersion(tx, v.ID, k.Name, kv)
	})
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	if b.Attributes != nil && b.Attributes.Expires != nil {
		s.nudge()
	}
	r.log.Info("key updated", "vault", v.Name, "key", k.Name, "version", kv.Version, "enabled", kv.Enabled)
	return result{http.StatusOK, s.keyBundle(r.api, v, k, kv)}, nil
}
