package flexserver

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// deleteServer is DELETE: crypto-shred the DEK, then remove the server and its files.
func (s *Service) deleteServer(w http.ResponseWriter, r *arm.Request) {
	id := serverIDFrom(r)
	mu := s.serverLock(id)
	mu.Lock()
	defer mu.Unlock()
	var op *arm.Operation
	srv, err := s.mutate(r.Context(), id, func(cur *Server) error {
		if cur.Operation != "" && cur.State != StateDropping {
			return busy(cur)
		}
		if cur.State == StateDropping && cur.Operation != "" {
			op = &arm.Operation{Name: cur.Operation}
			return nil
		}
		op = s.newOperation(cur, kindDelete)
		cur.State, cur.Operation = StateDropping, op.Name
		return nil
	})
	if err != nil {
		if ae := arm.AsError(err); ae != nil && ae.Status == http.StatusNotFound {
			// Deleting what does not exist is a success in ARM.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		arm.WriteError(w, r, err)
		return
	}
	if op.Kind == "" {
		// A delete is already running: answer with its operation.
		running, err := s.ops.Get(r.Context(), op.Name)
		if err != nil {
			arm.WriteError(w, r, err)
			return
		}
		arm.Accepted(w, r, running, http.StatusAccepted, nil)
		return
	}
	if err := s.ops.Start(r.Context(), op, s.runDelete); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("server delete started", "server", srv.Name, "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

// runDelete destroys the wrapped DEK first — in the store, then beside the volume — so that
// whatever ciphertext remains is unreadable, then removes the data plane and the records.
// Every step is idempotent, so a restarted daemon simply runs it again.
func (s *Service) runDelete(ctx context.Context, op *arm.Operation) error {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return err
	}
	srv, err := s.mutate(ctx, id, func(cur *Server) error {
		cur.Envelope = nil
		cur.State = StateDropping
		return nil
	})
	if ae := arm.AsError(err); ae != nil && ae.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if srv.BackupEnvelope != nil {
		// The backups stay for the retention period, restorable with their wrapped backup
		// DEKs; the last transactions are archived first when PostgreSQL still runs.
		s.flushArchive(ctx, srv, time.Minute)
		kept := *srv
		kept.Envelope, kept.Operation, kept.State = nil, "", StateDropping
		if err := s.st.Update(ctx, func(tx store.Tx) error {
			var prev droppedServer
			if store.GetJSON(tx, droppedKey(srv.UID), &prev) == nil {
				return nil // a resumed delete: keep the first deletion time
			}
			return store.PutJSON(tx, droppedKey(srv.UID), &droppedServer{Server: kept, DeletedAt: s.now().UTC()})
		}); err != nil {
			return err
		}
	}
	if err := s.dp.Destroy(ctx, srv.instance()); err != nil {
		return err
	}
	if err := s.forget(ctx, srv); err != nil {
		return err
	}
	if s.monitor.samples != nil {
		s.monitor.samples.Forget(srv.ID().String())
	}
	s.log.Info("server deleted", "server", srv.Name)
	return nil
}

// deleteAllInGroup deletes every server of a group being deleted.
func (s *Service) deleteAllInGroup(ctx context.Context, sub, group string) error {
	var servers []Server
	if err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		servers, err = store.ListJSON[Server](tx, "pgserver/"+strings.ToLower(sub)+"/"+strings.ToLower(group)+"/")
		return err
	}); err != nil {
		return err
	}
	for i := range servers {
		if err := s.deleteInGroup(ctx, servers[i].ID()); err != nil {
			return err
		}
	}
	return nil
}

// deleteInGroup deletes one server of a group being deleted. It holds the server's lock, so
// that no request starts an operation on it and neither the reconciler nor the key monitor
// brings it up while it is destroyed, and lets a running operation end first, so that two
// never act on one server.
func (s *Service) deleteInGroup(ctx context.Context, id arm.ResourceID) error {
	mu := s.serverLock(id)
	mu.Lock()
	defer mu.Unlock()
	for {
		srv, err := s.reload(ctx, id)
		if err != nil || srv == nil {
			return err
		}
		if srv.Operation != "" {
			if op, err := s.ops.Get(ctx, srv.Operation); err == nil && !op.Done() {
				mu.Unlock()
				_, err := s.ops.Wait(ctx, srv.Operation)
				mu.Lock()
				if err != nil {
					return err
				}
				continue // the operation has ended: look at the server again
			}
		}
		return s.runDelete(ctx, s.newOperation(srv, kindDelete))
	}
}
