package flexserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/regions"
)

// updateServer is PATCH: change the mutable properties of a server.
func (s *Service) updateServer(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body serverBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.applyUpdate(w, r, srv, &body)
}

// updateData is the update operation's persisted progress.
type updateData struct {
	PasswordPending bool `json:"passwordPending"`
	// GrowStorage: the update raised storageSizeGB; the volume grows to it (idempotent, so
	// an update resumed after a restart grows it again).
	GrowStorage bool `json:"growStorage,omitempty"`
	// AutoGrow is set when storage autogrow started the update: what it measured.
	AutoGrow *autoGrowData `json:"autoGrow,omitempty"`
}

// applyUpdate validates and applies an update (PATCH, or PUT on an existing server) as a
// long-running operation. Identities the request names are assigned first and stay assigned
// even if the rest of the update fails, as Azure documents; everything else is validated
// (keys included, by acting as the identity) before anything else changes.
func (s *Service) applyUpdate(w http.ResponseWriter, r *arm.Request, current *Server, body *serverBody) {
	ctx := r.Context()
	add, remove, err := s.resolveIdentities(ctx, body.Identity)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if p := body.Properties; p == nil || p.DataEncryption == nil {
		// Without a change of keys, a removal data encryption refuses is refused before the
		// request assigns anything: the server stays as it was. (With one, the check waits for
		// the new keys, which may stop using the identity.)
		if err := checkRemovable(current, identitiesToRemove(current, body.Identity, remove)); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	if len(add) > 0 {
		current, err = s.mutate(ctx, current.ID(), func(cur *Server) error {
			if cur.Identities == nil {
				cur.Identities = map[string]IdentityRef{}
			}
			for k, v := range add {
				cur.Identities[k] = v
			}
			return nil
		})
		if err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	if err := validateUpdate(current, body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var encUpd *encryptionUpdate
	if p := body.Properties; p != nil && p.DataEncryption != nil {
		if current.Operation != "" {
			arm.WriteError(w, r, busy(current))
			return
		}
		if encUpd, err = s.prepareEncryptionUpdate(ctx, current, p.DataEncryption); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	var password []byte
	if p := body.Properties; p != nil && p.AdministratorLoginPassword != nil {
		password = []byte(*p.AdministratorLoginPassword)
	}
	mu := s.serverLock(current.ID())
	mu.Lock()
	defer mu.Unlock()
	var op *arm.Operation
	updated, err := s.mutate(ctx, current.ID(), func(cur *Server) error {
		if cur.Operation != "" {
			return busy(cur)
		}
		if cur.State == StateInaccessible && encUpd == nil {
			return inaccessible(cur, "updated")
		}
		if password != nil && cur.State != StateReady {
			return arm.Conflict("InvalidServerState", "The server '%s' is %s; start it before changing the administrator password.", cur.Name, cur.State)
		}
		if encUpd != nil {
			if cur.Envelope == nil || current.Envelope == nil || cur.Envelope.KeyID != current.Envelope.KeyID {
				return busy(cur) // the key changed under us; the caller retries
			}
			cur.Encryption, cur.Envelope, cur.BackupEnvelope, cur.GeoEnvelope = encUpd.enc, encUpd.envelope, encUpd.backupEnvelope, encUpd.geoEnvelope
		}
		if err := removeIdentities(cur, identitiesToRemove(cur, body.Identity, remove)); err != nil {
			return err
		}
		oldSize := cur.StorageSizeGB
		applyMutable(cur, body)
		op = s.newOperation(cur, kindUpdate)
		data, _ := json.Marshal(updateData{PasswordPending: password != nil, GrowStorage: cur.StorageSizeGB > oldSize})
		op.Data = data
		cur.Operation = op.Name
		switch cur.State {
		case StateReady:
			cur.State = StateUpdating
		case StateInaccessible:
			// A repairing update: the server comes back with the new key.
			cur.State, cur.StateReason = StateStarting, ""
		}
		return nil
	})
	if err != nil {
		clear(password)
		arm.WriteError(w, r, err)
		return
	}
	if encUpd != nil {
		// The header beside the volume follows the store; both envelopes unwrap the same DEK.
		if err := s.dp.WriteEnvelope(ctx, updated.instance(), updated.Envelope); err != nil {
			r.Log.Warn("write rewrapped DEK header", "server", updated.Name, "err", err)
		}
		r.Log.Info("server DEK rewrapped", "server", updated.Name, "kid", updated.Envelope.KeyID)
	}
	if err := s.ops.Start(ctx, op, func(ctx context.Context, op *arm.Operation) error {
		defer clear(password)
		return s.finishUpdate(ctx, op, password)
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.Accepted(w, r, op, http.StatusAccepted, operationBody("UpsertServerManagementOperationV2", op))
}

// runUpdate resumes an update after a restart: a password change cannot resume (the password
// was never stored), so it fails and asks for a retry; anything else was already applied.
func (s *Service) runUpdate(ctx context.Context, op *arm.Operation) error {
	var d updateData
	_ = json.Unmarshal(op.Data, &d)
	if d.PasswordPending {
		id, _ := arm.ParseResourceID(op.ResourceID)
		s.endUpdate(ctx, id)
		return arm.Errorf(http.StatusInternalServerError, "UpdateInterrupted",
			"The update of server '%s' was interrupted by a restart of the service before the administrator password was changed. Run the update again.", id.Name())
	}
	return s.finishUpdate(ctx, op, nil)
}

func (s *Service) finishUpdate(ctx context.Context, op *arm.Operation, password []byte) error {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return err
	}
	defer s.endUpdate(ctx, id)
	srv, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if srv.State == StateStarting {
		// A repaired Inaccessible server: unwrap with the new key and come back.
		if err := s.bringUp(ctx, srv); err != nil {
			_, _ = s.mutate(context.WithoutCancel(ctx), id, func(cur *Server) error {
				cur.State, cur.StateReason = StateInaccessible, fmt.Sprintf("the server could not start with its updated key: %v", err)
				return nil
			})
			return err
		}
	}
	var d updateData
	_ = json.Unmarshal(op.Data, &d)
	if d.GrowStorage {
		if err := s.growStorage(ctx, id, d.AutoGrow); err != nil {
			return err
		}
	}
	if password != nil {
		if err := s.dp.SetAdminPassword(ctx, srv.instance(), password); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) endUpdate(ctx context.Context, id arm.ResourceID) {
	_, _ = s.mutate(context.WithoutCancel(ctx), id, func(cur *Server) error {
		if cur.State == StateUpdating || cur.State == StateStarting {
			cur.State = StateReady
		}
		cur.Operation = ""
		return nil
	})
}

// validateUpdate checks an update against the server as it is; nothing changes on error.
func validateUpdate(cur *Server, body *serverBody) error {
	change := func(prop string) error {
		e := arm.BadRequest("PropertyChangeNotAllowed", "Changing property '%s' is not allowed.", prop)
		e.Target = prop
		return e
	}
	if body.Location != nil {
		if reg, ok := regions.Lookup(*body.Location); !ok || reg.Name != cur.Location {
			return change("location")
		}
	}
	if body.SKU != nil {
		if err := validateSKU(body.SKU); err != nil {
			return err
		}
	}
	if err := ValidateTagsForServer(body.Tags); err != nil {
		return err
	}
	p := body.Properties
	if p == nil {
		return nil
	}
	if p.AdministratorLogin != nil && *p.AdministratorLogin != cur.AdministratorLogin {
		return change("properties.administratorLogin")
	}
	if p.Version != nil && *p.Version != "" && *p.Version != cur.Version {
		return invalidValue("properties.version", "Major version upgrade from %s to %s is not supported on this host.", cur.Version, *p.Version)
	}
	if p.AdministratorLoginPassword != nil {
		if err := ValidatePassword(cur.AdministratorLogin, *p.AdministratorLoginPassword); err != nil {
			return err
		}
	}
	if p.Storage != nil {
		size, grow := cur.StorageSizeGB, cur.AutoGrow
		if p.Storage.StorageSizeGB != nil {
			size = *p.Storage.StorageSizeGB
		}
		if p.Storage.AutoGrow != nil {
			grow = *p.Storage.AutoGrow
		}
		if err := validateStorage(size, grow); err != nil {
			return err
		}
		if size < cur.StorageSizeGB {
			// Azure's words (az postgres flexible-server update, "Scale storage size"), and
			// what to do instead.
			return invalidValue("properties.storage.storageSizeGB",
				"Updating storage cannot be smaller than the original storage size %d GiB. Storage can only grow: to use less, create a new server with the smaller size and move the data into it (pg_dump and pg_restore).", cur.StorageSizeGB)
		}
	}
	if p.Backup != nil {
		if p.Backup.BackupRetentionDays != nil {
			if err := validateRetention(*p.Backup.BackupRetentionDays); err != nil {
				return err
			}
		}
		if p.Backup.GeoRedundantBackup != nil && !strings.EqualFold(*p.Backup.GeoRedundantBackup, cur.GeoRedundantBackup) {
			return change("properties.backup.geoRedundantBackup")
		}
	}
	if p.Network != nil && p.Network.PublicNetworkAccess != nil {
		if v := *p.Network.PublicNetworkAccess; v != "Enabled" && v != "Disabled" {
			return invalidValue("properties.network.publicNetworkAccess", "The value '%s' is not valid for publicNetworkAccess; use Enabled or Disabled.", v)
		}
	}
	if p.HighAvailability != nil && p.HighAvailability.Mode != nil && !strings.EqualFold(*p.HighAvailability.Mode, "Disabled") {
		return invalidValue("properties.highAvailability.mode", "High availability mode '%s' is not available on this single-host deployment; use Disabled.", *p.HighAvailability.Mode)
	}
	if p.DataEncryption != nil && normalizeEncType(p.DataEncryption.Type) == EncSystemManaged && cur.isCMK() {
		return arm.BadRequest("DataEncryptionTypeChangeNotAllowed",
			"The data encryption type of server '%s' is %s and cannot be changed: it is chosen at creation. To switch between service-managed and customer-managed keys, restore a backup into a new server with the other choice.",
			cur.Name, cur.Encryption.Type)
	}
	return nil
}

// applyMutable copies the mutable properties of a validated update onto the server.
func applyMutable(cur *Server, body *serverBody) {
	if body.Tags != nil {
		cur.Tags = body.Tags
	}
	if body.SKU != nil {
		tier, info, _ := lookupSKU(body.SKU.Name)
		cur.SKU = SKU{Name: info.Name, Tier: tier}
	}
	p := body.Properties
	if p == nil {
		return
	}
	if p.Storage != nil {
		if p.Storage.StorageSizeGB != nil {
			cur.StorageSizeGB = *p.Storage.StorageSizeGB
		}
		if p.Storage.AutoGrow != nil {
			cur.AutoGrow = *p.Storage.AutoGrow
		}
	}
	if p.Backup != nil && p.Backup.BackupRetentionDays != nil {
		cur.BackupRetentionDays = *p.Backup.BackupRetentionDays
	}
	if p.Network != nil && p.Network.PublicNetworkAccess != nil {
		cur.PublicNetworkAccess = *p.Network.PublicNetworkAccess
	}
}
