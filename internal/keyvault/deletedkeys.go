package keyvault

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/pgflex/pgflex/internal/store"
)

// deletedKey reads a soft-deleted key and its current version.
func deletedKey(tx store.Tx, v *Vault, name string) (*Key, *KeyVersion, error) {
	k, err := getKey(tx, v.ID, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Deleted == nil) {
		return nil, nil, deletedKeyNotFound(name)
	}
	if err != nil {
		return nil, nil, err
	}
	kv, err := getVersion(tx, v.ID, k.Name, k.Current)
	if err != nil {
		return nil, nil, err
	}
	return k, kv, nil
}

// listDeletedKeys serves GET /deletedkeys.
func (s *Service) listDeletedKeys(r *kvRequest) (result, error) {
	var items []map[string]any
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		keys, err := store.ListJSON[Key](tx, keyPrefix(r.vault.ID))
		if err != nil {
			return err
		}
		sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i].Name) < strings.ToLower(keys[j].Name) })
		for i := range keys {
			k := &keys[i]
			if k.Deleted == nil {
				continue
			}
			kv, err := getVersion(tx, r.vault.ID, k.Name, k.Current)
			if err != nil {
				return err
			}
			it := s.keyItem(r.api, r.vault, k, kv, "")
			s.addDeletion(it, r.vault, k)
			items = append(items, it)
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

// getDeletedKey serves GET /deletedkeys/{name}.
func (s *Service) getDeletedKey(r *kvRequest) (result, error) {
	var k *Key
	var kv *KeyVersion
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		k, kv, err = deletedKey(tx, r.vault, r.keyName)
		return err
	})
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	return result{http.StatusOK, s.deletedKeyBundle(r.api, r.vault, k, kv)}, nil
}

// recoverDeletedKey serves POST /deletedkeys/{name}/recover: the key, all its versions, back.
func (s *Service) recoverDeletedKey(r *kvRequest) (result, error) {
	var k *Key
	var kv *KeyVersion
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, r.vault); err != nil {
			return err
		}
		if k, kv, err = deletedKey(tx, v, r.keyName); err != nil {
			return err
		}
		k.Deleted = nil
		return putKey(tx, v.ID, k)
	})
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	s.nudge()
	r.log.Info("key recovered", "vault", v.Name, "key", k.Name)
	return result{http.StatusOK, s.keyBundle(r.api, v, k, kv)}, nil
}

// purgeDeletedKey serves DELETE /deletedkeys/{name}: the key and its sealed private keys are
// destroyed, unless the vault's purge protection holds them until the scheduled purge date.
func (s *Service) purgeDeletedKey(r *kvRequest) (result, error) {
	var name string
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		v, err := liveVault(tx, r.vault)
		if err != nil {
			return err
		}
		k, _, err := deletedKey(tx, v, r.keyName)
		if err != nil {
			return err
		}
		if v.PurgeProtected() && s.now().Before(k.Deleted.ScheduledPurgeDate) {
			return &kvError{Status: http.StatusForbidden, Code: "Forbidden",
				Message: `Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.`}
		}
		name = k.Name
		return s.deleteKeyTx(tx, v.ID, k.Name)
	})
	if err != nil {
		return result{}, err
	}
	r.log.Info("key purged", "vault", r.vault.Name, "key", name)
	return result{http.StatusNoContent, nil}, nil
}
