package flexserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pgflex/pgflex/internal/arm"
)

// action is one of start, stop, restart: the states it needs, the transient state it shows,
// the desired state it sets and the work it runs.
type action struct {
	name      string
	kind      string
	needs     []string
	transient string
	desired   string
	run       func(context.Context, *arm.Operation) error
}

func (s *Service) startServer(w http.ResponseWriter, r *arm.Request) {
	s.runAction(w, r, action{name: "start", kind: kindStart, needs: []string{StateStopped}, transient: StateStarting,
		desired: DesiredRunning, run: s.runStart})
}

func (s *Service) stopServer(w http.ResponseWriter, r *arm.Request) {
	s.runAction(w, r, action{name: "stop", kind: kindStop, needs: []string{StateReady}, transient: StateStopping,
		desired: DesiredStopped, run: s.runStop})
}

func (s *Service) restartServer(w http.ResponseWriter, r *arm.Request) {
	s.runAction(w, r, action{name: "restart", kind: kindRestart, needs: []string{StateReady}, transient: StateRestarting,
		desired: DesiredRunning, run: s.runRestart})
}

func (s *Service) runAction(w http.ResponseWriter, r *arm.Request, a action) {
	id := serverIDFrom(r)
	mu := s.serverLock(id)
	mu.Lock()
	defer mu.Unlock()
	var op *arm.Operation
	_, err := s.mutate(r.Context(), id, func(cur *Server) error {
		if cur.State == StateInaccessible {
			return inaccessible(cur, a.name)
		}
		if cur.Operation != "" {
			return busy(cur)
		}
		ok := false
		for _, st := range a.needs {
			ok = ok || cur.State == st
		}
		if !ok {
			return arm.Conflict("InvalidServerState", "The server '%s' is %s; it can be %s only when it is %s.",
				cur.Name, cur.State, verbPast(a.name), a.needs[0])
		}
		op = s.newOperation(cur, a.kind)
		cur.State, cur.Desired, cur.Operation = a.transient, a.desired, op.Name
		return nil
	})
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	if err := s.ops.Start(r.Context(), op, a.run); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	r.Log.Info("server "+a.name+" started", "server", id.Name(), "operation", op.Name)
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

func verbPast(a string) string {
	switch a {
	case "stop":
		return "stopped"
	case "start":
		return "started"
	}
	return a + "ed"
}

// inaccessible refuses an operation on a server whose key cannot be used, naming the cause.
func inaccessible(srv *Server, what string) *arm.Error {
	why := srv.StateReason
	if why == "" {
		why = "its data encryption key cannot be used"
	}
	return arm.Conflict("ServerInaccessible",
		"The server '%s' is Inaccessible: %s. It cannot be %s until access to its key is restored (or the server is updated to a usable key and identity); only show, delete and such an update are allowed.",
		srv.Name, why, verbPast(what))
}

// finish clears the server's operation and sets its state, whatever the outcome.
func (s *Service) finish(ctx context.Context, id arm.ResourceID, state string) error {
	_, err := s.mutate(context.WithoutCancel(ctx), id, func(cur *Server) error {
		cur.State, cur.Operation = state, ""
		return nil
	})
	return err
}

// opServer loads the server an operation acts on.
func (s *Service) opServer(ctx context.Context, op *arm.Operation) (arm.ResourceID, *Server, error) {
	id, err := arm.ParseResourceID(op.ResourceID)
	if err != nil {
		return id, nil, err
	}
	srv, err := s.load(ctx, id)
	return id, srv, err
}

// runStart unwraps the DEK, mounts the volume and starts PostgreSQL.
func (s *Service) runStart(ctx context.Context, op *arm.Operation) error {
	id, srv, err := s.opServer(ctx, op)
	if err != nil {
		return err
	}
	if err := s.bringUp(ctx, srv); err != nil {
		if ctx.Err() == nil {
			s.finish(ctx, id, StateStopped)
		}
		return err
	}
	s.clearPendingRestart(ctx, id)
	return s.finish(ctx, id, StateReady)
}

// bringUp makes the data plane run: the DEK is unwrapped only if the volume must be mounted,
// and zeroed as soon as the mount holds it.
func (s *Service) bringUp(ctx context.Context, srv *Server) error {
	inst := srv.instance()
	st, err := s.dp.Status(ctx, inst)
	if err != nil {
		return err
	}
	if st.Mounted && st.Running {
		return nil
	}
	var dek []byte
	if !st.Mounted {
		w, err := s.wrapper(srv)
		if err != nil {
			return err
		}
		if srv.Envelope == nil {
			return fmt.Errorf("server %s has no wrapped DEK", srv.Name)
		}
		if dek, err = w.Unwrap(ctx, srv.Envelope); err != nil {
			return err
		}
		defer clear(dek)
	}
	return s.dp.Start(ctx, inst, dek)
}

// runStop stops PostgreSQL and unmounts the volume: no plaintext view remains.
func (s *Service) runStop(ctx context.Context, op *arm.Operation) error {
	id, srv, err := s.opServer(ctx, op)
	if err != nil {
		return err
	}
	if err := s.dp.Stop(ctx, srv.instance()); err != nil {
		if ctx.Err() == nil {
			s.finish(ctx, id, StateReady)
		}
		return err
	}
	return s.finish(ctx, id, StateStopped)
}

// runRestart restarts PostgreSQL (bringing the data plane up first if it is not).
func (s *Service) runRestart(ctx context.Context, op *arm.Operation) error {
	id, srv, err := s.opServer(ctx, op)
	if err != nil {
		return err
	}
	err = s.bringUp(ctx, srv)
	if err == nil {
		err = s.dp.Restart(ctx, srv.instance())
	}
	if err != nil {
		if ctx.Err() == nil {
			// The reconciler brings the data plane back to Running from Ready.
			s.finish(ctx, id, StateReady)
		}
		return err
	}
	s.clearPendingRestart(ctx, id)
	return s.finish(ctx, id, StateReady)
}
