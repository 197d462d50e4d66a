package keyvault

import (
	"net/http"

	"github.com/pgflex/pgflex/internal/store"
)

// getKey serves GET /keys/{name}[/{version}]: the public key and its attributes.
func (s *Service) getKey(r *kvRequest) (result, error) {
	var k *Key
	var kv *KeyVersion
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		k, kv, err = loadKey(tx, r.vault, r.keyName, r.version)
		return err
	})
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	return result{http.StatusOK, s.keyBundle(r.api, r.vault, k, kv)}, nil
}
