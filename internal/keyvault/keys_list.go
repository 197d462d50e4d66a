package keyvault

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/store"
)

// listKeys serves GET /keys: every live key, with its base kid and the current version's
// attributes.
func (s *Service) listKeys(r *kvRequest) (result, error) {
	var items []map[string]any
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		keys, err := store.ListJSON[Key](tx, keyPrefix(r.vault.ID))
		if err != nil {
			return err
		}
		sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i].Name) < strings.ToLower(keys[j].Name) })
		for i := range keys {
			k := &keys[i]
			if k.Deleted != nil {
				continue
			}
			kv, err := getVersion(tx, r.vault.ID, k.Name, k.Current)
			if err != nil {
				return err
			}
			items = append(items, s.keyItem(r.api, r.vault, k, kv, ""))
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	body, err := page(r, items)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, body}, nil
}

// listKeyVersions serves GET /keys/{name}/versions: every version, oldest first.
func (s *Service) listKeyVersions(r *kvRequest) (result, error) {
	var items []map[string]any
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		k, err := getKey(tx, r.vault.ID, r.keyName)
		if errors.Is(err, store.ErrNotFound) || (err == nil && k.Deleted != nil) {
			return keyNotFound(r.keyName, "")
		}
		if err != nil {
			return err
		}
		vs, err := listVersions(tx, r.vault.ID, k.Name)
		if err != nil {
			return err
		}
		for i := range vs {
			items = append(items, s.keyItem(r.api, r.vault, k, &vs[i], vs[i].Version))
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	body, err := page(r, items)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, body}, nil
}
