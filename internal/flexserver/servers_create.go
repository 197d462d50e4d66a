package flexserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/activitylog"
	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/backup"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// Operation kinds, for resuming after a daemon restart.
const (
	kindCreate  = "flexserver/create"
	kindDelete  = "flexserver/delete"
	kindStart   = "flexserver/start"
	kindStop    = "flexserver/stop"
	kindRestart = "flexserver/restart"
	kindUpdate  = "flexserver/update"
)

// operationBody is what Azure answers a PUT/PATCH with while the work runs.
func operationBody(name string, op *arm.Operation) map[string]any {
	return map[string]any{"operation": name, "startTime": op.StartTime.Format(time.RFC3339Nano)}
}

func (s *Service) newOperation(srv *Server, kind string) *arm.Operation {
	return &arm.Operation{Name: arm.NewGUID(), Kind: kind, ResourceID: srv.ID().String(), SubscriptionID: srv.SubscriptionID,
		Namespace: Namespace, Location: srv.Location}
}

// createServer is PUT: create a server, or update an existing one (createMode Default).
func (s *Service) createServer(w http.ResponseWriter, r *arm.Request) {
	id := serverIDFrom(r)
	ctx := r.Context()
	if err := ValidateServerName(id.Name()); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if _, err := s.groups.Group(ctx, id.SubscriptionID, id.ResourceGroup); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body serverBody
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if mode := restoreMode(&body); mode != "" && body.Properties != nil {
		s.createRestored(w, r, id, &body, mode)
		return
	}
	if existing, err := s.load(ctx, id); err == nil {
		// PUT on an existing server updates it, but create-only properties must not change.
		if err := conflictOnPut(existing, &body); err != nil {
			arm.WriteError(w, r, err)
			return
		}
		s.applyUpdate(w, r, existing, &body)
		return
	} else if ae := arm.AsError(err); ae == nil || ae.Status != http.StatusNotFound {
		arm.WriteError(w, r, err)
		return
	}

	srv := &Server{SubscriptionID: id.SubscriptionID, ResourceGroup: id.ResourceGroup, Name: id.Name(), UID: arm.NewGUID(),
		ListenAddress: s.cfg.ListenAddress, State: StateProvisioning, Desired: DesiredRunning, Created: time.Now().UTC()}
	if err := validateCreate(srv, &body, s.dp.SupportedVersions()); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	// Names are global: say so before any key is touched (checked again when committing).
	if err := s.st.View(ctx, func(tx store.Tx) error { return nameFree(tx, srv.Name) }); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	primary, geo, err := s.resolveEncryption(ctx, srv, &body, r.APIVersion)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	password := []byte(*body.Properties.AdministratorLoginPassword)
	dek, pp, err := s.newKeys(ctx, srv, primary, geo)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	op := s.newOperation(srv, kindCreate)
	op.Caller = r.Principal.ObjectID
	if err := s.startBuild(ctx, srv, op, dek, pp, func(ctx context.Context) error {
		defer clear(password)
		return s.runCreate(ctx, srv, op, dek, password, pp)
	}); err != nil {
		clear(password)
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("server create started", "server", srv.Name, "operation", op.Name, "port", srv.Port, "encryption", srv.Encryption.Type)
	arm.Accepted(w, r, op, http.StatusAccepted, operationBody("UpsertServerManagementOperationV2", op))
}

// newKeys makes a new server's keys in memory — the DEK, repository 1's backup DEK and, with
// geo-redundant backup, repository 2's — and sets their wrapped forms on srv; only those are
// ever stored. Each round trip proves, before anything is built, that the key unwraps what it
// wrapped. It returns the DEK and the repositories' passphrases (the backup DEKs are cleared).
func (s *Service) newKeys(ctx context.Context, srv *Server, primary, geo dataenc.Wrapper) (dek []byte, pp backup.Passphrases, err error) {
	pp = backup.Passphrases{}
	defer func() {
		if err != nil {
			clear(dek)
			pp.Wipe()
		}
	}()
	if dek, err = dataenc.NewDEK(); err != nil {
		return nil, nil, err
	}
	if srv.Envelope, err = wrapRoundTrip(ctx, primary, dek, srv.Encryption.PrimaryKeyURI); err != nil {
		return nil, nil, err
	}
	backupDEK := func(w dataenc.Wrapper, keyURI string, repo int) (*dataenc.Envelope, error) {
		b, err := dataenc.NewDEK()
		if err != nil {
			return nil, err
		}
		defer clear(b)
		env, err := wrapRoundTrip(ctx, w, b, keyURI)
		if err != nil {
			return nil, err
		}
		pp[repo], err = backup.Passphrase(b, srv.UID)
		return env, err
	}
	if srv.BackupEnvelope, err = backupDEK(primary, srv.Encryption.PrimaryKeyURI, backup.RepoPrimary); err != nil {
		return nil, nil, err
	}
	if srv.GeoRedundantBackup == "Enabled" {
		if geo == nil {
			if geo, err = s.geoWrapper(srv); err != nil {
				return nil, nil, err
			}
		}
		if srv.GeoEnvelope, err = backupDEK(geo, srv.Encryption.GeoKeyURI, backup.RepoGeo); err != nil {
			return nil, nil, err
		}
	}
	return dek, pp, nil
}

// commitNew records a new server with its name and a port, and the operation that builds it.
func (s *Service) commitNew(ctx context.Context, srv *Server, op *arm.Operation) error {
	srv.Operation = op.Name
	defer s.firewall.invalidate(srv.Name)
	return s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := resources.CheckGroupInTx(tx, srv.SubscriptionID, srv.ResourceGroup); err != nil {
			return err
		}
		if err := nameFree(tx, srv.Name); err != nil {
			return err
		}
		port, err := s.allocatePort(tx)
		if err != nil {
			return err
		}
		srv.Port = port
		if err := tx.Put(nameKey(srv.Name), []byte(srv.ID().String())); err != nil {
			return err
		}
		if err := tx.Put(portKey(port), []byte(srv.ID().String())); err != nil {
			return err
		}
		return store.PutJSON(tx, serverKey(srv.SubscriptionID, srv.ResourceGroup, srv.Name), srv)
	})
}

// startBuild records a new server and starts the operation that builds it (run), which owns
// the keys from then on: they are cleared when it ends, or here if it cannot start.
func (s *Service) startBuild(ctx context.Context, srv *Server, op *arm.Operation, dek []byte, pp backup.Passphrases, run func(context.Context) error) error {
	// Until the operation is recorded, the reconciler would take the server for one whose
	// create was lost, and roll it back.
	mu := s.serverLock(srv.ID())
	mu.Lock()
	defer mu.Unlock()
	err := s.commitNew(ctx, srv, op)
	if err == nil {
		err = s.ops.Start(ctx, op, func(ctx context.Context, op *arm.Operation) error {
			defer clear(dek)
			defer pp.Wipe()
			return run(ctx)
		})
	}
	if err != nil {
		clear(dek)
		pp.Wipe()
	}
	return err
}

// runCreate builds the data plane and takes the first full backup; on failure it unwinds
// everything the create did.
func (s *Service) runCreate(ctx context.Context, srv *Server, op *arm.Operation, dek, password []byte, pp backup.Passphrases) error {
	return s.build(ctx, srv, op, pp, func(ctx context.Context) error {
		return s.dp.Create(ctx, srv.instance(), srv.Envelope, dek, password, pp)
	})
}

// build runs a new server's data-plane construction (create or restore), then its first
// automatic backup, and marks it Ready; on failure it rolls everything back, keeping as
// evidence the end of PostgreSQL's log (in the operation's error and the activity log).
func (s *Service) build(ctx context.Context, srv *Server, op *arm.Operation, pp backup.Passphrases, construct func(context.Context) error) error {
	err := construct(ctx)
	if err == nil {
		// The first full backup makes the server restorable from the moment it is Ready.
		_, err = s.takeBackup(ctx, srv, pp, "", backupSourceAutomatic)
		if err != nil {
			err = fmt.Errorf("first backup: %w", err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return err // shutdown: the resumer rolls back at the next start
		}
		ctx := context.WithoutCancel(ctx)
		s.log.Error("server build failed; rolling back", "server", srv.Name, "err", err)
		// The log as it was when the step failed, or else as it is now: read before the
		// rollback destroys the volume that holds it.
		evidence := postgres.LogOf(err)
		if evidence == nil {
			evidence = s.dp.LogTail(ctx, srv.instance(), postgres.EvidenceLines)
		}
		if rbErr := s.rollbackCreate(ctx, srv); rbErr != nil {
			s.log.Error("roll back of failed create", "server", srv.Name, "err", rbErr)
		}
		failure := buildFailure(srv, op, err, evidence)
		s.recordFailure(ctx, srv, op, failure, evidence)
		return failure
	}
	_, err = s.mutate(ctx, srv.ID(), func(cur *Server) error {
		cur.State, cur.Operation = StateReady, ""
		return nil
	})
	if err == nil {
		s.log.Info("server ready", "server", srv.Name, "port", srv.Port)
	}
	return err
}

// buildFailure is the operation error of a failed build: an ARM error keeps its code and text,
// anything else is an internal error that names what PostgreSQL said last, when it said
// something. The log lines travel in additionalInfo either way.
func buildFailure(srv *Server, op *arm.Operation, err error, evidence []string) *arm.Error {
	verb := "created"
	if srv.SourceServerID != "" {
		verb = "restored"
	}
	var out arm.Error
	if ae := arm.AsError(err); ae != nil {
		out = *ae
	} else {
		out = arm.Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
			Message: fmt.Sprintf("An unexpected error occured while processing the request. Tracking ID: '%s'", op.Name)}
		if line := postgres.FailureLine(evidence); line != "" {
			out.Message = fmt.Sprintf("The server '%s' could not be %s: PostgreSQL reported \"%s\". The last lines of its log are in the error's additionalInfo (type PostgreSQLLog); the server was rolled back. Tracking ID: '%s'",
				srv.Name, verb, line, op.Name)
		}
	}
	if len(evidence) > 0 {
		out.AdditionalInfo = append(slices.Clone(out.AdditionalInfo), map[string]any{"type": "PostgreSQLLog", "info": map[string]any{"lines": evidence}})
	}
	return &out
}

// recordFailure writes a failed build to the subscription's activity log, as Azure records a
// failed write of a resource: its status code and message, and here the log's last lines.
func (s *Service) recordFailure(ctx context.Context, srv *Server, op *arm.Operation, failure *arm.Error, evidence []string) {
	if s.events == nil {
		return
	}
	msg, err := json.Marshal(arm.ErrorBody{Error: failure})
	if err != nil {
		msg = []byte(failure.Message)
	}
	props := map[string]string{"statusCode": failure.Code, "statusMessage": string(msg), "operationId": op.Name}
	if len(evidence) > 0 {
		props["postgresqlLog"] = strings.Join(evidence, "\n")
	}
	if err := s.events.Append(ctx, activitylog.Event{ResourceID: srv.ID().String(), Operation: ResourceType + "/write",
		Level: activitylog.LevelError, Status: arm.StatusFailed, Caller: op.Caller, Description: failure.Message, Properties: props}); err != nil {
		s.log.Error("append activity event", "server", srv.Name, "err", err)
	}
}

// resumeCreate runs after a daemon restart interrupted a create. The administrator password
// was never stored, so the create cannot continue: it is rolled back and the operation fails.
// A create that had finished (the server is Ready and no longer names the operation) when the
// daemon stopped, before its operation record was marked Succeeded, is only marked Succeeded.
func (s *Service) resumeCreate(ctx context.Context, op *arm.Operation) error {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return err
	}
	srv, err := s.load(ctx, id)
	if err == nil && !strings.EqualFold(srv.Operation, op.Name) {
		// The server completed this create (or is another server of the same name, created
		// since): nothing of it may be rolled back.
		return nil
	}
	if err == nil {
		if err := s.rollbackCreate(ctx, srv); err != nil {
			return err
		}
	} else if ae := arm.AsError(err); ae == nil || ae.Status != http.StatusNotFound {
		return err
	}
	return arm.Errorf(http.StatusInternalServerError, "ServerCreationInterrupted",
		"The creation of server '%s' was interrupted by a restart of the service and has been rolled back; nothing was left behind. Create the server again.", id.Name())
}

// rollbackCreate removes the data plane and every record the create wrote.
func (s *Service) rollbackCreate(ctx context.Context, srv *Server) error {
	inst := srv.instance()
	if err := s.dp.Destroy(ctx, inst); err != nil {
		return err
	}
	if err := s.forgetBackups(ctx, inst); err != nil {
		return err
	}
	return s.forget(ctx, srv)
}

// forget deletes a server's records: the server, its name and its port.
func (s *Service) forget(ctx context.Context, srv *Server) error {
	defer s.firewall.invalidate(srv.Name)
	return s.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(serverKey(srv.SubscriptionID, srv.ResourceGroup, srv.Name)); err != nil {
			return err
		}
		if owner, err := tx.Get(nameKey(srv.Name)); err == nil && strings.EqualFold(string(owner), srv.ID().String()) {
			if err := tx.Delete(nameKey(srv.Name)); err != nil {
				return err
			}
		}
		return tx.Delete(portKey(srv.Port))
	})
}

// resolveEncryption sets the server's data-encryption configuration and identities from a
// create request and returns the wrappers of its primary key and (geo-redundant CMK servers)
// of its geo-backup key.
func (s *Service) resolveEncryption(ctx context.Context, srv *Server, body *serverBody, apiVersion string) (primary, geo dataenc.Wrapper, err error) {
	enc := body.Properties.DataEncryption
	if enc != nil && normalizeEncType(enc.Type) == EncAzureKeyVault {
		return s.checkCMKCreate(ctx, srv, body, apiVersion)
	}
	if enc != nil && enc.Type != "" && normalizeEncType(enc.Type) != EncSystemManaged {
		raw, _ := json.Marshal(enc.Type)
		return nil, nil, invalidValue("properties.dataEncryption.type", "The data encryption type %s is not valid; use SystemManaged or AzureKeyVault.", raw)
	}
	if enc != nil && (enc.PrimaryKeyURI != "" || enc.GeoKeyURI != "" || enc.PrimaryIdentityID != "" || enc.GeoIdentityID != "") {
		return nil, nil, invalidValue("properties.dataEncryption", "A server with data encryption type SystemManaged takes no key URI or identity; set type AzureKeyVault to use a customer-managed key.")
	}
	srv.Encryption = Encryption{Type: EncSystemManaged}
	// Identities may be assigned to a server with the service-managed key too.
	if srv.Identities, _, err = s.resolveIdentities(ctx, body.Identity); err != nil {
		return nil, nil, err
	}
	return dataenc.ServiceManaged{Keys: s.smk, Region: srv.Location}, nil, nil
}

// nameFree fails with ServerNameAlreadyExists when a server holds name anywhere.
func nameFree(tx store.Tx, name string) error {
	_, err := tx.Get(nameKey(name))
	switch {
	case err == nil:
		return arm.Conflict("ServerNameAlreadyExists",
			"Specified server name '%s' is already used. Server names are globally unique; choose another name.", name)
	case errors.Is(err, store.ErrNotFound):
		return nil
	}
	return err
}
