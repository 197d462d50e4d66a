package flexserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// Restores: a PUT with createMode PointInTimeRestore (from the source's repository 1, in its
// region), GeoRestore (from repository 2, into the paired region) or ReviveDropped (a deleted
// server, within its retention). The new server gets its own DEK and its own choice of key —
// the only way to move between service- and customer-managed keys. Everything that can be
// refused is checked before anything is created, including that the source's backup key can
// still be used and that the requested point lies within what its backups reach.

// Restore create modes.
const (
	modePointInTimeRestore = "PointInTimeRestore"
	modeGeoRestore         = "GeoRestore"
	modeReviveDropped      = "ReviveDropped"
)

// restoreMode returns the restore create mode of a request, or "" for a plain create.
func restoreMode(body *serverBody) string {
	if body.Properties == nil || body.Properties.CreateMode == nil {
		return ""
	}
	for _, m := range []string{modePointInTimeRestore, modeGeoRestore, modeReviveDropped} {
		if strings.EqualFold(*body.Properties.CreateMode, m) {
			return m
		}
	}
	return ""
}

// restoreSource is a restore's source server: live, or deleted within its retention.
type restoreSource struct {
	srv       *Server
	dropped   bool
	deletedAt time.Time // when a dropped source was deleted
}

// findSource resolves sourceServerResourceId: a live server, else the most recently deleted
// server of that id whose backups are retained.
func (s *Service) findSource(ctx context.Context, raw string) (*restoreSource, error) {
	id, err := arm.ParseResourceID(raw)
	if err != nil || !id.IsType(ResourceType) {
		return nil, invalidValue("properties.sourceServerResourceId", "'%s' is not the resource id of a flexible server.", raw)
	}
	if srv, err := s.reload(ctx, id); err != nil {
		return nil, err
	} else if srv != nil {
		return &restoreSource{srv: srv}, nil
	}
	var best *droppedServer
	err = s.st.View(ctx, func(tx store.Tx) error {
		all, err := store.ListJSON[droppedServer](tx, "pgdropped/")
		for i := range all {
			d := &all[i]
			if d.Server.ID().Key() == id.Key() && (best == nil || d.DeletedAt.After(best.DeletedAt)) {
				best = d
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, arm.Errorf(http.StatusNotFound, "ResourceNotFound",
			"The source server '%s' was not found: no server of that id exists, nor a deleted one whose backups are still retained.", raw)
	}
	return &restoreSource{srv: &best.Server, dropped: true, deletedAt: best.DeletedAt}, nil
}

// restorePlan is a validated restore: the source repository and its passphrase.
type restorePlan struct {
	mode   string
	source *restoreSource
	repo   int
	from   RestoreSource
}

// createRestored handles a restore PUT.
func (s *Service) createRestored(w http.ResponseWriter, r *arm.Request, id arm.ResourceID, body *serverBody, mode string) {
	ctx := r.Context()
	plan, srv, err := s.planRestore(ctx, id, body, mode)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	// The source's passphrase is cleared here on failure, or by the operation once it starts.
	primary, geo, err := s.resolveEncryption(ctx, srv, body, r.APIVersion)
	if err != nil {
		clear(plan.from.Passphrase)
		arm.WriteError(w, r, err)
		return
	}
	dek, pp, err := s.newKeys(ctx, srv, primary, geo)
	if err != nil {
		clear(plan.from.Passphrase)
		arm.WriteError(w, r, err)
		return
	}
	op := s.newOperation(srv, kindCreate) // resumed as a create: rolled back
	op.Caller = r.Principal.ObjectID
	if err := s.startBuild(ctx, srv, op, dek, pp, func(ctx context.Context) error {
		defer clear(plan.from.Passphrase)
		return s.runRestore(ctx, srv, op, dek, pp, plan.source, plan.from)
	}); err != nil {
		clear(plan.from.Passphrase)
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("server restore started", "server", srv.Name, "mode", mode, "source", plan.source.srv.Name,
		"target", plan.from.Target, "repository", plan.repo, "operation", op.Name, "encryption", srv.Encryption.Type)
	arm.Accepted(w, r, op, http.StatusAccepted, operationBody("UpsertServerManagementOperationV2", op))
}

// planRestore validates a restore request and describes the new server. The source's backup
// DEK is unwrapped here, with the source's own keys, so that a revoked key is reported before
// anything is created.
func (s *Service) planRestore(ctx context.Context, id arm.ResourceID, body *serverBody, mode string) (*restorePlan, *Server, error) {
	if err := ValidateServerName(id.Name()); err != nil {
		return nil, nil, err
	}
	if _, err := s.groups.Group(ctx, id.SubscriptionID, id.ResourceGroup); err != nil {
		return nil, nil, err
	}
	p := body.Properties
	if p.SourceServerResourceID == nil || *p.SourceServerResourceID == "" {
		return nil, nil, invalidValue("properties.sourceServerResourceId", "A %s needs properties.sourceServerResourceId: the server whose backups to restore.", mode)
	}
	if err := s.st.View(ctx, func(tx store.Tx) error { return nameFree(tx, id.Name()) }); err != nil {
		return nil, nil, err
	}
	src, err := s.findSource(ctx, *p.SourceServerResourceID)
	if err != nil {
		return nil, nil, err
	}
	source := src.srv
	if mode == modeReviveDropped && !src.dropped {
		return nil, nil, invalidValue("properties.createMode",
			"The server '%s' is not deleted; restore it with createMode PointInTimeRestore.", *p.SourceServerResourceID)
	}
	if source.BackupEnvelope == nil {
		return nil, nil, arm.BadRequest("BackupsNotConfigured", "Server '%s' has no backups to restore: %v.", source.Name, errNoBackups)
	}

	// Where the new server goes and which repository it comes from.
	plan := &restorePlan{mode: mode, source: src, repo: backup.RepoPrimary}
	location := source.Location
	requested := ""
	if body.Location != nil {
		requested = *body.Location
	}
	if mode == modeGeoRestore {
		pair, _ := regions.PairOf(source.Location)
		if source.GeoRedundantBackup != "Enabled" || source.GeoEnvelope == nil {
			return nil, nil, arm.BadRequest("GeoRedundantBackupNotEnabled",
				"Server '%s' does not have geo-redundant backup enabled, so it has no backups in its paired region to geo-restore from. Use a point-in-time restore in its own region (%s) instead.", source.Name, source.Location)
		}
		reg, ok := regions.Lookup(requested)
		if requested == "" || !ok || reg.Name != pair {
			return nil, nil, arm.BadRequest("InvalidGeoRestoreLocation",
				"Geo-restore of server '%s' (in %s) is possible only into its paired region '%s', where its geo-redundant backups are; '%s' is not that region.", source.Name, source.Location, pair, requested)
		}
		location, plan.repo = pair, backup.RepoGeo
	} else if requested != "" {
		if reg, ok := regions.Lookup(requested); !ok || reg.Name != source.Location {
			return nil, nil, invalidValue("location",
				"A %s creates the new server in the source's region '%s', not '%s'. To restore into the paired region use createMode GeoRestore.", mode, source.Location, requested)
		}
	}

	// The point in time.
	now := s.now().UTC()
	target := now
	if p.PointInTimeUTC != nil && *p.PointInTimeUTC != "" {
		t, err := time.Parse(time.RFC3339Nano, *p.PointInTimeUTC)
		if err != nil {
			return nil, nil, invalidValue("properties.pointInTimeUTC",
				"The restore point in time '%s' is not an ISO 8601 date-time such as 2021-10-22T00:08:23Z.", *p.PointInTimeUTC)
		}
		target = t.UTC()
	} else if mode != modeGeoRestore {
		return nil, nil, invalidValue("properties.pointInTimeUTC", "A %s needs properties.pointInTimeUTC: the point in time to restore to.", mode)
	}
	if target.After(now) {
		return nil, nil, arm.BadRequest("InvalidRestorePointInTime",
			"The restore point in time %s is in the future (it is now %s). Choose a time at or before now.", target.Format(time.RFC3339Nano), now.Format(time.RFC3339))
	}

	// The source's backup key: unwrapped as the source (its identity, or the service key).
	var w dataenc.Wrapper
	env, keyURI := source.BackupEnvelope, source.Encryption.PrimaryKeyURI
	if plan.repo == backup.RepoGeo {
		env, keyURI = source.GeoEnvelope, source.Encryption.GeoKeyURI
		w, err = s.geoWrapper(source)
	} else {
		w, err = s.wrapper(source)
	}
	if err == nil {
		rctx := releaseContext(ctx, source, fmt.Sprintf("restore into %s from repository %d", id.Name(), plan.repo))
		plan.from.Passphrase, err = passphraseOf(rctx, w, env, source.UID)
		if err == nil {
			s.log.Info("backup keys released", "server", source.Name, "uid", source.UID, "repos", []int{plan.repo},
				"reason", "restore into "+id.Name())
		}
	}
	if err != nil {
		if keyURI == "" {
			keyURI = env.KeyID
		}
		return nil, nil, arm.BadRequest("SourceBackupKeyUnusable",
			"The backups of server '%s' in repository %d are encrypted under the key '%s', which cannot be used now: %v. Restore access to that key for the server's identity, then retry.",
			source.Name, plan.repo, keyURI, err)
	}
	plan.from.Stanza, plan.from.Location, plan.from.Target = source.UID, location, target
	if plan.repo == backup.RepoPrimary {
		plan.from.Location = source.Location
	}
	info, err := s.dp.SourceInfo(ctx, plan.from)
	if err != nil {
		clear(plan.from.Passphrase)
		return nil, nil, fmt.Errorf("read the backups of %s: %w", source.Name, err)
	}
	earliest, ok := info.EarliestRestoreDate(backup.RepoPrimary)
	if !ok || target.Before(earliest) {
		clear(plan.from.Passphrase)
		if !ok {
			return nil, nil, arm.BadRequest("InvalidRestorePointInTime",
				"Server '%s' has no backup in repository %d yet to restore from.", source.Name, plan.repo)
		}
		return nil, nil, arm.BadRequest("InvalidRestorePointInTime",
			"The restore point in time %s is before the earliest restore date %s of server '%s'. Choose a time from %s to now.",
			target.Format(time.RFC3339Nano), earliest.Format(time.RFC3339), source.Name, earliest.Format(time.RFC3339))
	}

	srv, err := s.restoredServer(id, body, source, location)
	if err != nil {
		clear(plan.from.Passphrase)
		return nil, nil, err
	}
	return plan, srv, nil
}

// restoredServer describes the new server: the source's version, compute, storage and
// administrator (the restored data holds its role and password), the request's location,
// tags, retention and geo-redundant backup.
func (s *Service) restoredServer(id arm.ResourceID, body *serverBody, source *Server, location string) (*Server, error) {
	srv := &Server{SubscriptionID: id.SubscriptionID, ResourceGroup: id.ResourceGroup, Name: id.Name(), UID: arm.NewGUID(),
		ListenAddress: s.cfg.ListenAddress, State: StateProvisioning, Desired: DesiredRunning, Created: s.now().UTC(),
		Location: location, SKU: source.SKU, Version: source.Version, AdministratorLogin: source.AdministratorLogin,
		StorageSizeGB: source.StorageSizeGB, AutoGrow: source.AutoGrow, BackupRetentionDays: source.BackupRetentionDays,
		GeoRedundantBackup: "Disabled", PublicNetworkAccess: cmp.Or(source.PublicNetworkAccess, "Enabled"), HAMode: "Disabled",
		SourceServerID: source.ID().String(),
		// Azure's restore carries the source's firewall rules over, and its network access
		// with them: a server closed to the network is not restored open to its old rules.
		FirewallRules: slices.Clone(source.FirewallRules)}
	// The source's server parameters come with it, as on Azure; the new server starts with
	// them, so none is pending.
	if len(source.Parameters) > 0 {
		srv.Parameters = maps.Clone(source.Parameters)
	}
	p := body.Properties
	if body.SKU != nil {
		if err := validateSKU(body.SKU); err != nil {
			return nil, err
		}
		tier, info, _ := lookupSKU(body.SKU.Name)
		srv.SKU = SKU{Name: info.Name, Tier: tier}
	}
	if p.Backup != nil {
		if p.Backup.BackupRetentionDays != nil {
			srv.BackupRetentionDays = *p.Backup.BackupRetentionDays
			if err := validateRetention(srv.BackupRetentionDays); err != nil {
				return nil, err
			}
		}
		if p.Backup.GeoRedundantBackup != nil {
			switch {
			case strings.EqualFold(*p.Backup.GeoRedundantBackup, "Enabled"):
				if _, ok := regions.PairOf(location); !ok {
					return nil, invalidValue("properties.backup.geoRedundantBackup",
						"Geo-redundant backup is not supported in region '%s' because it has no paired region.", location)
				}
				srv.GeoRedundantBackup = "Enabled"
			case strings.EqualFold(*p.Backup.GeoRedundantBackup, "Disabled"):
			default:
				return nil, invalidValue("properties.backup.geoRedundantBackup", "The value '%s' is not valid for geoRedundantBackup; use Enabled or Disabled.", *p.Backup.GeoRedundantBackup)
			}
		}
	}
	if err := ValidateTagsForServer(body.Tags); err != nil {
		return nil, err
	}
	srv.Tags = body.Tags
	return srv, nil
}

// runRestore builds the new server from the source's backups. A restore to a moment after the
// last archived transaction of a source that can no longer archive (stopped, or deleted)
// gives the latest state there is.
func (s *Service) runRestore(ctx context.Context, srv *Server, op *arm.Operation, dek []byte, pp backup.Passphrases, src *restoreSource, from RestoreSource) error {
	return s.build(ctx, srv, op, pp, func(ctx context.Context) error {
		// A live source archives what it committed up to now, so that every transaction
		// before the target is restorable.
		if !src.dropped {
			if cur, err := s.reload(ctx, src.srv.ID()); err == nil && cur != nil && cur.UID == src.srv.UID {
				s.flushArchive(ctx, cur, 2*time.Minute)
			}
		}
		inst := srv.instance()
		if src.dropped && !from.Target.Before(src.deletedAt) {
			// Nothing was committed after the deletion: the end of the archive is that state.
			from.Target = time.Time{}
		}
		_, err := s.dp.Restore(ctx, inst, srv.Envelope, dek, pp, from)
		if errors.Is(err, backup.ErrTargetNotReached) {
			s.log.Info("restore: the archive ends before the restore point; restoring its end", "server", srv.Name, "target", from.Target)
			if err := s.dp.Destroy(ctx, inst); err != nil {
				return err
			}
			latest := from
			latest.Target = time.Time{}
			_, err = s.dp.Restore(ctx, inst, srv.Envelope, dek, pp, latest)
		}
		if err != nil {
			reason, lines := err.Error(), postgres.LogOf(err)
			if line := postgres.FailureLine(lines); line != "" {
				reason = fmt.Sprintf("PostgreSQL reported \"%s\"; the last lines of its log are in the error's additionalInfo (type PostgreSQLLog)", line)
			}
			failed := arm.Errorf(http.StatusInternalServerError, "RestoreFailed",
				"The restore of server '%s' from the backups of '%s' failed: %s. Nothing was kept; retry, or choose another point in time.", srv.Name, src.srv.Name, reason)
			if lines == nil {
				return failed
			}
			// The log's lines stay with the error: build puts them in additionalInfo.
			return &postgres.LogEvidence{Err: failed, Lines: lines}
		}
		return nil
	})
}
