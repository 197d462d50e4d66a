package keyvault

import (
	"net/http"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// deleteKey serves DELETE /keys/{name}: every version goes into the deleted state, recoverable
// until the vault's retention period ends.
func (s *Service) deleteKey(r *kvRequest) (result, error) {
	var k *Key
	var kv *KeyVersion
	var v *Vault
	err := s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, r.vault); err != nil {
			return err
		}
		if k, kv, err = loadKey(tx, v, r.keyName, ""); err != nil {
			return err
		}
		now := s.now().UTC()
		k.Deleted = &KeyDeletion{DeletedDate: now,
			ScheduledPurgeDate: now.Add(time.Duration(v.Props.SoftDeleteRetentionInDays) * 24 * time.Hour)}
		return putKey(tx, v.ID, k)
	})
	if err != nil {
		return result{}, err
	}
	r.keyName, r.version = k.Name, kv.Version
	r.log.Info("key deleted", "vault", v.Name, "key", k.Name)
	return result{http.StatusOK, s.deletedKeyBundle(r.api, v, k, kv)}, nil
}
