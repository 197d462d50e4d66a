package flexserver

import (
	"context"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// RunReconciler reconciles at once and then every interval until ctx ends: the data plane of
// every server is brought to the server's desired state (a PostgreSQL that died is started
// again, a volume left mounted by a stopped server is unmounted).
func (s *Service) RunReconciler(ctx context.Context, interval time.Duration) {
	for {
		s.Reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// Reconcile makes one pass over all servers.
func (s *Service) Reconcile(ctx context.Context) {
	servers, err := s.listServers(ctx)
	if err != nil {
		s.log.Error("reconcile: list servers", "err", err)
		return
	}
	for i := range servers {
		if ctx.Err() != nil {
			return
		}
		if err := s.reconcileOne(ctx, &servers[i]); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile server", "server", servers[i].Name, "state", servers[i].State, "err", err)
		}
	}
}

func (s *Service) reconcileOne(ctx context.Context, listed *Server) error {
	mu := s.serverLock(listed.ID())
	if !mu.TryLock() {
		return nil // a request or the key monitor is acting on the server: the next pass looks again
	}
	defer mu.Unlock()
	// The list was read before the servers ahead of this one were reconciled, which can take
	// seconds: act on the server as it is now, not on that copy.
	srv, err := s.reload(ctx, listed.ID())
	if err != nil || srv == nil || srv.UID != listed.UID {
		return err
	}
	if srv.Operation != "" {
		op, err := s.ops.Get(ctx, srv.Operation)
		if err == nil && !op.Done() {
			return nil // the operation (or its resumer) owns the server now
		}
		// The operation is gone or over but the server still names it: a crash fell between
		// the two writes. Settle the server from its state.
		return s.settleOrphan(ctx, srv)
	}
	switch {
	case srv.State == StateReady && srv.Desired == DesiredRunning:
		st, err := s.dp.Status(ctx, srv.instance())
		if err != nil || (st.Mounted && st.Running) {
			return err
		}
		s.log.Info("reconcile: bringing server up", "server", srv.Name, "mounted", st.Mounted, "running", st.Running)
		return s.bringUp(ctx, srv)
	case srv.State == StateStopped:
		st, err := s.dp.Status(ctx, srv.instance())
		if err != nil || (!st.Mounted && !st.Running) {
			return err
		}
		s.log.Info("reconcile: stopping server that should be stopped", "server", srv.Name)
		return s.dp.Stop(ctx, srv.instance())
	}
	return nil
}

// listServers reads every server of every subscription.
func (s *Service) listServers(ctx context.Context) ([]Server, error) {
	var servers []Server
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		servers, err = store.ListJSON[Server](tx, "pgserver/")
		return err
	})
	return servers, err
}

// settleOrphan finishes what an operation that no longer runs left half done.
func (s *Service) settleOrphan(ctx context.Context, srv *Server) error {
	s.log.Warn("reconcile: server names an operation that is not running", "server", srv.Name, "state", srv.State, "operation", srv.Operation)
	op := s.newOperation(srv, "")
	switch srv.State {
	case StateProvisioning:
		return s.rollbackCreate(ctx, srv)
	case StateDropping:
		return s.runDelete(ctx, op)
	}
	state := StateReady
	if srv.Desired == DesiredStopped {
		state = StateStopped
	}
	if srv.State == StateInaccessible {
		state = StateInaccessible
	}
	_, err := s.mutate(ctx, srv.ID(), func(cur *Server) error {
		cur.Operation, cur.State = "", state
		return nil
	})
	return err
}
