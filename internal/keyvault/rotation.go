package keyvault

import (
	"context"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// Start runs the maintenance loop until ctx ends: automatic rotation of keys whose rotation
// policy is due, and the purge of soft-deleted keys and vaults whose retention has ended.
func (s *Service) Start(ctx context.Context) {
	go func() {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			s.maintain(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.wake:
			}
		}
	}()
}

// rotationDue is when a policy's Rotate action fires for a version: a time after the version's
// creation, or a time before its expiry (never for a version without one).
func rotationDue(p *RotationPolicy, kv *KeyVersion) (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	for _, a := range p.LifetimeActions {
		if !strings.EqualFold(a.Action.Type, "Rotate") {
			continue
		}
		if a.Trigger.TimeAfterCreate != "" {
			d, err := parseISODuration(a.Trigger.TimeAfterCreate)
			if err != nil {
				return time.Time{}, false
			}
			return d.after(kv.Created), true
		}
		if a.Trigger.TimeBeforeExpiry != "" && kv.Expires != nil {
			d, err := parseISODuration(a.Trigger.TimeBeforeExpiry)
			if err != nil {
				return time.Time{}, false
			}
			return d.before(*kv.Expires), true
		}
	}
	return time.Time{}, false
}

type rotationTask struct {
	vault   Vault
	key     string
	current string
}

type keyRef struct{ vaultID, vaultName, key string }

// maintain does one pass of the maintenance work.
func (s *Service) maintain(ctx context.Context) {
	now := s.now()
	var rotations []rotationTask
	var purgeKeys []keyRef
	var purgeVaults []keyRef // vaultID names the kind here
	err := s.st.View(ctx, func(tx store.Tx) error {
		vaults, err := listKeyStoreRecords(tx)
		if err != nil {
			return err
		}
		for _, v := range vaults {
			if v.Deleted != nil {
				if !now.Before(v.Deleted.ScheduledPurgeDate) {
					purgeVaults = append(purgeVaults, keyRef{vaultID: v.Kind, vaultName: v.Name})
				}
				continue
			}
			keys, err := store.ListJSON[Key](tx, keyPrefix(v.ID))
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.Deleted != nil {
					if !now.Before(k.Deleted.ScheduledPurgeDate) {
						purgeKeys = append(purgeKeys, keyRef{v.ID, v.Name, k.Name})
					}
					continue
				}
				if k.Policy == nil {
					continue
				}
				kv, err := getVersion(tx, v.ID, k.Name, k.Current)
				if err != nil {
					return err
				}
				if due, ok := rotationDue(k.Policy, kv); ok && !now.Before(due) {
					rotations = append(rotations, rotationTask{v, k.Name, k.Current})
				}
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("key store maintenance: scan failed", "err", err)
		}
		return
	}
	for _, t := range rotations {
		v, k, kv, err := s.rotate(ctx, &t.vault, t.key, t.current)
		status := 200
		version := ""
		if err != nil {
			s.log.Error("automatic key rotation failed", "vault", t.vault.Name, "key", t.key, "err", err)
			status = 500
		} else if kv == nil {
			continue // rotated meanwhile
		} else {
			version = kv.Version
			s.log.Info("key rotated by its rotation policy", "vault", v.Name, "key", k.Name, "version", kv.Version)
		}
		if err := s.appendAudit(context.WithoutCancel(ctx), t.vault.ID, &AuditEvent{Time: s.now().UTC(), Vault: t.vault.Name,
			KeyName: t.key, KeyVersion: version, Operation: "KeyRotate", CallerObjectID: ServiceCaller, HTTPStatus: status}); err != nil {
			s.log.Error("audit write failed", "err", err)
		}
	}
	for _, p := range purgeKeys {
		err := s.st.Update(ctx, func(tx store.Tx) error {
			k, err := getKey(tx, p.vaultID, p.key)
			if err != nil || k.Deleted == nil || now.Before(k.Deleted.ScheduledPurgeDate) {
				return nil
			}
			return s.deleteKeyTx(tx, p.vaultID, k.Name)
		})
		if err != nil {
			s.log.Error("scheduled key purge failed", "vault", p.vaultName, "key", p.key, "err", err)
			continue
		}
		s.log.Info("deleted key purged at the end of its retention", "vault", p.vaultName, "key", p.key)
		_ = s.appendAudit(context.WithoutCancel(ctx), p.vaultID, &AuditEvent{Time: s.now().UTC(), Vault: p.vaultName,
			KeyName: p.key, Operation: "KeyPurge", CallerObjectID: ServiceCaller, HTTPStatus: 204})
	}
	for _, p := range purgeVaults {
		err := s.st.Update(ctx, func(tx store.Tx) error {
			v, err := getRecord(tx, p.vaultID, p.vaultName)
			if err != nil || v.Deleted == nil || now.Before(v.Deleted.ScheduledPurgeDate) {
				return nil
			}
			return s.purgeVaultTx(tx, v)
		})
		if err != nil {
			s.log.Error("scheduled key store purge failed", "name", p.vaultName, "err", err)
			continue
		}
		s.log.Info("deleted key store purged at the end of its retention", "name", p.vaultName, "managedHSM", p.vaultID == KindManagedHSM)
	}
}
