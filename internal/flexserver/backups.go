package flexserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// Backups of a server, as Azure's flexibleServers/backups resource: the full backups in
// repository 1 (each, with geo-redundant backup, copied into repository 2 under the geo key).
// Automatic ones are taken at creation and on a schedule; on-demand ones when asked.

// Wire values of the backups resource.
const (
	backupSourceAutomatic = "Automatic"
	backupSourceCustomer  = "Customer"
	backupTypeFull        = "Full"
	backupTypeOnDemand    = "Customer On-Demand"
	backupResourceType    = ResourceType + "/backups"
	automaticBackupPrefix = "backup_"

	kindBackup       = "flexserver/backup"
	kindBackupDelete = "flexserver/backup-delete"
)

// backupRecord names one backup set; pgBackRest's repositories are the truth of what exists
// (records of expired sets are pruned at every sync).
type backupRecord struct {
	Name      string         `json:"name"`
	Source    string         `json:"source"`
	Labels    map[int]string `json:"labels"` // pgBackRest's label in each repository
	Completed time.Time      `json:"completed"`
}

// Backup records are kept by server UID: they outlive the server for its retention.
func backupKey(uid, name string) string { return "pgbackup/" + uid + "/" + strings.ToLower(name) }
func backupPrefix(uid string) string    { return "pgbackup/" + uid + "/" }

func (b *backupRecord) view(srv *Server) map[string]any {
	typ := backupTypeFull
	if b.Source == backupSourceCustomer {
		typ = backupTypeOnDemand
	}
	return map[string]any{
		"id":   srv.ID().String() + "/backups/" + b.Name,
		"name": b.Name,
		"type": backupResourceType,
		"properties": map[string]any{
			"backupType":    typ,
			"completedTime": b.Completed.UTC().Format(time.RFC3339),
			"source":        b.Source,
		},
	}
}

var errNoBackups = errors.New("the server has no backups configured (it was created before pgflex took backups)")

// geoWrapper returns the wrapper of repository 2's backup DEK: the geo-backup key through the
// geo-backup identity, or the paired region's service key.
func (s *Service) geoWrapper(srv *Server) (dataenc.Wrapper, error) {
	if srv.isCMK() {
		return s.customerWrapper(srv, srv.Encryption.GeoKeyURI, srv.Encryption.GeoIdentityID)
	}
	pair, ok := regions.PairOf(srv.Location)
	if !ok {
		return nil, fmt.Errorf("region %s has no paired region for geo-redundant backup", srv.Location)
	}
	return dataenc.ServiceManaged{Keys: s.smk, Region: pair}, nil
}

// passphraseOf unwraps a backup DEK and derives its repository's passphrase; the DEK is
// cleared at once.
func passphraseOf(ctx context.Context, w dataenc.Wrapper, env *dataenc.Envelope, stanza string) ([]byte, error) {
	dek, err := w.Unwrap(ctx, env)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	return backup.Passphrase(dek, stanza)
}

// releaseContext marks ctx with why a server's backup keys are released: the key store's audit
// trail records it with every unwrap (dataenc.WithPurpose).
func releaseContext(ctx context.Context, srv *Server, reason string) context.Context {
	return dataenc.WithPurpose(ctx, "server "+srv.Name+", uid "+srv.UID+": backup keys for "+reason)
}

// backupPassphrases releases a server's backup keys: it unwraps the backup DEKs of its
// repositories that are not paused and returns their passphrases, which the caller passes to
// one pgBackRest command (run as the server's backup account) and wipes. Every release is
// logged at info with the server and the reason, and the key store's audit trail records the
// same with each unwrap. reason says what for ("archive-push 0000000100000000000000A1",
// "automatic backup", ...).
func (s *Service) backupPassphrases(ctx context.Context, srv *Server, reason string) (backup.Passphrases, error) {
	if srv.BackupEnvelope == nil {
		return nil, errNoBackups
	}
	w, err := s.wrapper(srv)
	if err != nil {
		return nil, err
	}
	ctx = releaseContext(ctx, srv, reason)
	p1, err := passphraseOf(ctx, w, srv.BackupEnvelope, srv.UID)
	if err != nil {
		return nil, fmt.Errorf("unwrap the backup DEK with %s: %w", srv.BackupEnvelope.KeyID, err)
	}
	pp := backup.Passphrases{backup.RepoPrimary: p1}
	repos := []int{backup.RepoPrimary}
	if inst := srv.instance(); inst.GeoLocation != "" && !inst.GeoPaused && srv.GeoEnvelope != nil {
		gw, err := s.geoWrapper(srv)
		if err == nil {
			pp[backup.RepoGeo], err = passphraseOf(ctx, gw, srv.GeoEnvelope, srv.UID)
		}
		if err != nil {
			pp.Wipe()
			return nil, fmt.Errorf("unwrap the geo-backup DEK with %s: %w", srv.GeoEnvelope.KeyID, err)
		}
		repos = append(repos, backup.RepoGeo)
	}
	s.log.Info("backup keys released", "server", srv.Name, "uid", srv.UID, "repos", repos, "reason", reason)
	return pp, nil
}

// ArchivePassphrases releases a server's backup keys for its PostgreSQL's archive_command (the
// data plane has authenticated the asking process as that server's postmaster's descendant and
// runs pgBackRest itself): the passphrases of the stanza named by the server's UID.
func (s *Service) ArchivePassphrases(ctx context.Context, stanza, reason string) (backup.Passphrases, error) {
	srv, err := s.serverByUID(ctx, stanza)
	if err != nil {
		return nil, err
	}
	if srv == nil {
		return nil, fmt.Errorf("%w: no server has UID %s", backup.ErrUnknownStanza, stanza)
	}
	return s.backupPassphrases(ctx, srv, reason)
}

// flushArchive makes everything a running server has committed restorable (see
// DataPlane.FlushArchive), within timeout. It is best effort: a server that is not running has
// nothing more to archive, and a failure only narrows what a restore reaches, so it is logged.
func (s *Service) flushArchive(ctx context.Context, srv *Server, timeout time.Duration) {
	if st, err := s.dp.Status(ctx, srv.instance()); err != nil || !st.Mounted || !st.Running {
		return
	}
	pp, err := s.backupPassphrases(ctx, srv, "archiving the latest WAL")
	if err != nil {
		s.log.Warn("archive the latest WAL: keys unusable", "server", srv.Name, "err", err)
		return
	}
	defer pp.Wipe()
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.dp.FlushArchive(fctx, srv.instance(), pp); err != nil {
		s.log.Warn("archive the latest WAL", "server", srv.Name, "err", err)
	}
}

// InstanceByUID describes the live server whose UID is uid to the data plane.
func (s *Service) InstanceByUID(ctx context.Context, uid string) (Instance, error) {
	srv, err := s.serverByUID(ctx, uid)
	if err != nil {
		return Instance{}, err
	}
	if srv == nil {
		return Instance{}, fmt.Errorf("no server has UID %s", uid)
	}
	return srv.instance(), nil
}

// serverByUID finds a live server by its UID (nil if none).
func (s *Service) serverByUID(ctx context.Context, uid string) (*Server, error) {
	all, err := s.listServers(ctx)
	for i := range all {
		if all[i].UID == uid {
			return &all[i], nil
		}
	}
	return nil, err
}

// backupLock serialises the backups of one stanza: pgBackRest takes one at a time.
func (s *Service) backupLock(uid string) *sync.Mutex {
	mu, _ := s.backupLocks.LoadOrStore(uid, &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// takeBackup takes a full backup of a running server into repository 1 and, with
// geo-redundant backup not paused, into repository 2; records it as name; and refreshes the
// server's earliest restore date. name "" names an automatic backup after its label.
func (s *Service) takeBackup(ctx context.Context, srv *Server, pp backup.Passphrases, name, source string) (*backupRecord, error) {
	mu := s.backupLock(srv.UID)
	mu.Lock()
	defer mu.Unlock()
	inst := srv.instance()
	b, err := s.dp.Backup(ctx, inst, pp, backup.RepoPrimary)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = automaticBackupPrefix + strings.ToLower(b.Label)
	}
	rec := &backupRecord{Name: name, Source: source, Labels: map[int]string{backup.RepoPrimary: b.Label}, Completed: b.Stop.UTC()}
	geoDue := false
	if inst.GeoLocation != "" && !inst.GeoPaused && len(pp[backup.RepoGeo]) > 0 {
		g, err := s.dp.Backup(ctx, inst, pp, backup.RepoGeo)
		if err != nil {
			// The primary's backup stands; the copy is taken again by the scheduler.
			s.log.Warn("geo-redundant copy of a backup failed", "server", srv.Name, "backup", name, "err", err)
			geoDue = true
		} else {
			rec.Labels[backup.RepoGeo] = g.Label
		}
	}
	if err := s.st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, backupKey(srv.UID, name), rec) }); err != nil {
		return nil, err
	}
	s.log.Info("backup taken", "server", srv.Name, "backup", name, "labels", rec.Labels)
	return rec, s.syncBackups(ctx, srv, pp, func(cur *Server) {
		if source == backupSourceAutomatic {
			cur.LastAutomaticBackup = rec.Completed
		}
		if _, ok := rec.Labels[backup.RepoGeo]; ok {
			cur.GeoBackupDue = false
		} else if geoDue {
			cur.GeoBackupDue = true
		}
	})
}

// syncBackups reads the repositories: records of backup sets pgBackRest has expired are
// dropped, and the server's earliest restore date is set from what remains.
func (s *Service) syncBackups(ctx context.Context, srv *Server, pp backup.Passphrases, also func(*Server)) error {
	info, err := s.dp.BackupInfo(ctx, srv.instance(), pp)
	if err != nil {
		return fmt.Errorf("list backups: %w", err)
	}
	earliest, _ := info.EarliestRestoreDate(backup.RepoPrimary)
	err = s.st.Update(ctx, func(tx store.Tx) error {
		recs, err := store.ListJSON[backupRecord](tx, backupPrefix(srv.UID))
		if err != nil {
			return err
		}
		for _, r := range recs {
			if _, ok := info.Find(backup.RepoPrimary, r.Labels[backup.RepoPrimary]); !ok {
				if err := tx.Delete(backupKey(srv.UID, r.Name)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = s.mutate(ctx, srv.ID(), func(cur *Server) error {
		if cur.UID != srv.UID {
			return errSkip
		}
		cur.EarliestRestore = earliest.UTC()
		if also != nil {
			also(cur)
		}
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	return err
}

func (s *Service) backupRecords(ctx context.Context, uid string) ([]backupRecord, error) {
	var recs []backupRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		recs, err = store.ListJSON[backupRecord](tx, backupPrefix(uid))
		return err
	})
	sort.Slice(recs, func(i, j int) bool { return recs[i].Completed.Before(recs[j].Completed) })
	return recs, err
}

func (s *Service) backupRecord(ctx context.Context, uid, name string) (*backupRecord, error) {
	var rec backupRecord
	err := s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, backupKey(uid, name), &rec) })
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

func backupIDFrom(r *arm.Request) arm.ResourceID {
	return arm.NewResourceID(r.Param("subscriptionId"), r.Param("resourceGroupName"), Namespace, "flexibleServers",
		r.Param("serverName")).Child("backups", r.Param("backupName"))
}

func (s *Service) listBackups(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	recs, err := s.backupRecords(r.Context(), srv.UID)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(recs))
	for i := range recs {
		views = append(views, recs[i].view(srv))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) getBackup(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	rec, err := s.backupRecord(r.Context(), srv.UID, r.Param("backupName"))
	if errors.Is(err, store.ErrNotFound) {
		arm.WriteError(w, r, arm.ResourceNotFound(backupIDFrom(r)))
		return
	}
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, rec.view(srv))
}

var backupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// createBackup is PUT .../backups/{name}: an on-demand full backup, as a long-running operation.
func (s *Service) createBackup(w http.ResponseWriter, r *arm.Request) {
	ctx := r.Context()
	name := r.Param("backupName")
	if !backupNameRE.MatchString(name) || strings.HasPrefix(strings.ToLower(name), automaticBackupPrefix) {
		arm.WriteError(w, r, invalidValue("backupName",
			"The backup name '%s' is not valid: use 1-128 letters, digits, '-', '_' or '.', starting with a letter or digit, and not starting with '%s' (the names of automatic backups).", name, automaticBackupPrefix))
		return
	}
	mu := s.serverLock(serverIDFrom(r))
	mu.Lock()
	defer mu.Unlock()
	srv, err := s.load(ctx, serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if srv.BackupEnvelope == nil {
		arm.WriteError(w, r, backupKeyError(srv, errNoBackups))
		return
	}
	if srv.State != StateReady || srv.Operation != "" {
		arm.WriteError(w, r, arm.Conflict("InvalidServerState",
			"An on-demand backup needs the server '%s' Ready and running no other operation; it is %s. Retry when it is Ready.", srv.Name, srv.State))
		return
	}
	if _, err := s.backupRecord(ctx, srv.UID, name); err == nil {
		arm.WriteError(w, r, arm.Conflict("BackupAlreadyExists",
			"A backup named '%s' already exists for server '%s'. Choose another name.", name, srv.Name))
		return
	}
	op := s.newOperation(srv, kindBackup)
	op.ResourceID = backupIDFrom(r).String()
	if err := s.ops.Start(ctx, op, func(ctx context.Context, op *arm.Operation) error {
		cur, err := s.reload(ctx, srv.ID())
		if err != nil {
			return err
		}
		if cur == nil || cur.UID != srv.UID {
			return arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The server '%s' was deleted before its backup could be taken.", srv.Name)
		}
		pp, err := s.backupPassphrases(ctx, cur, "on-demand backup "+name)
		if err != nil {
			return backupKeyError(cur, err)
		}
		defer pp.Wipe()
		_, err = s.takeBackup(ctx, cur, pp, name, backupSourceCustomer)
		return err
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("on-demand backup started", "server", srv.Name, "backup", name, "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

// backupKeyError explains a backup that needs a key which cannot be used now.
func backupKeyError(srv *Server, err error) error {
	if errors.Is(err, errNoBackups) {
		return arm.BadRequest("BackupsNotConfigured", "Server '%s' has no backups: %v.", srv.Name, err)
	}
	return arm.Errorf(http.StatusConflict, "BackupKeyUnusable",
		"The backups of server '%s' are encrypted under keys that cannot be used now: %v. Restore access to the key, then retry.", srv.Name, err)
}

// deleteBackup is DELETE .../backups/{name}: on-demand backups only; automatic ones end with
// the retention.
func (s *Service) deleteBackup(w http.ResponseWriter, r *arm.Request) {
	ctx := r.Context()
	mu := s.serverLock(serverIDFrom(r))
	mu.Lock()
	defer mu.Unlock()
	srv, err := s.load(ctx, serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	rec, err := s.backupRecord(ctx, srv.UID, r.Param("backupName"))
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if rec.Source != backupSourceCustomer {
		arm.WriteError(w, r, arm.BadRequest("AutomaticBackupDeletionNotAllowed",
			"The backup '%s' is an automatic backup: it is removed when the retention period of %d days ends. Only on-demand backups can be deleted.", rec.Name, srv.BackupRetentionDays))
		return
	}
	if srv.Operation != "" || srv.State == StateInaccessible {
		arm.WriteError(w, r, arm.Conflict("InvalidServerState",
			"The backup '%s' cannot be deleted while server '%s' is %s. Retry when it is Ready or Stopped.", rec.Name, srv.Name, srv.State))
		return
	}
	op := s.newOperation(srv, kindBackupDelete)
	op.ResourceID = backupIDFrom(r).String()
	if err := s.ops.Start(ctx, op, func(ctx context.Context, op *arm.Operation) error {
		cur, err := s.reload(ctx, srv.ID())
		if err != nil || cur == nil || cur.UID != srv.UID {
			return err
		}
		return s.removeBackup(ctx, cur, rec)
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

// removeBackup deletes a backup set from the repositories. pgBackRest keeps a repository's
// newest backup, so deleting it first takes an automatic backup in its place (a running
// server's restorability never shrinks to nothing).
func (s *Service) removeBackup(ctx context.Context, srv *Server, rec *backupRecord) error {
	pp, err := s.backupPassphrases(ctx, srv, "deleting backup "+rec.Name)
	if err != nil {
		return backupKeyError(srv, err)
	}
	defer pp.Wipe()
	info, err := s.dp.BackupInfo(ctx, srv.instance(), pp)
	if err != nil {
		return err
	}
	for repo, label := range rec.Labels {
		if latest, ok := info.Latest(repo); ok && latest.Label == label {
			if st, err := s.dp.Status(ctx, srv.instance()); err != nil || !st.Running {
				return arm.Conflict("InvalidServerState",
					"The backup '%s' is the newest of server '%s', which is stopped: start the server (a new backup then replaces it) and retry.", rec.Name, srv.Name)
			}
			if _, err := s.takeBackup(ctx, srv, pp, "", backupSourceAutomatic); err != nil {
				return fmt.Errorf("take a backup to replace the newest one: %w", err)
			}
			break
		}
	}
	mu := s.backupLock(srv.UID) // pgBackRest expires and backs up a stanza one at a time
	mu.Lock()
	defer mu.Unlock()
	for repo, label := range rec.Labels {
		if repo == backup.RepoGeo && (srv.instance().GeoPaused || len(pp[repo]) == 0) {
			continue // expired with the retention once the geo key is back
		}
		if err := s.dp.DeleteBackup(ctx, srv.instance(), pp, repo, label); err != nil {
			return err
		}
	}
	if err := s.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(backupKey(srv.UID, rec.Name)) }); err != nil {
		return err
	}
	s.log.Info("backup deleted", "server", srv.Name, "backup", rec.Name)
	return s.syncBackups(ctx, srv, pp, nil)
}

// interruptedBackup is the resumer of backup operations: a backup cut short by a restart is
// not resumed (pgBackRest leaves nothing half-usable); the caller retries.
func interruptedBackup(_ context.Context, op *arm.Operation) error {
	return arm.Errorf(http.StatusInternalServerError, "BackupInterrupted",
		"The backup operation on '%s' was interrupted by a restart of the service. Retry it.", op.ResourceID)
}
