package flexserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// countingDataPlane is a data plane double that reports a fixed status and counts what the
// provider asks of it.
type countingDataPlane struct {
	DataPlane
	mu                          sync.Mutex
	status                      Status
	starts, stops, destructions int
}

func (c *countingDataPlane) Status(context.Context, Instance) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, nil
}

func (c *countingDataPlane) Start(context.Context, Instance, []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts++
	return nil
}

func (c *countingDataPlane) Stop(context.Context, Instance) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops++
	return nil
}

func (c *countingDataPlane) Destroy(context.Context, Instance) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.destructions++
	return nil
}

// RemoveBackups: a rolled-back create removes its repositories too.
func (c *countingDataPlane) RemoveBackups(context.Context, string, ...string) error { return nil }

// newProviderForTest makes a provider over a fresh store, with subscription "sub" and group
// "rg" in eastus.
func newProviderForTest(t *testing.T, dp DataPlane) (*Service, store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	ops := arm.NewOperations(ctx, st, log)
	groups := resources.New(st, ops, log)
	if err := st.Update(ctx, func(tx store.Tx) error {
		return resources.PutSubscription(tx, &resources.Subscription{ID: "sub", DisplayName: "sub", State: "Enabled"})
	}); err != nil {
		t.Fatal(err)
	}
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{Admin: true}, nil }, log)
	groups.RegisterRoutes(rt)
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/subscriptions/sub/resourcegroups/rg?api-version=2021-04-01",
		strings.NewReader(`{"location":"eastus"}`)))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create group: %d %s", rec.Code, rec.Body)
	}
	return New(Config{}, Deps{Store: st, Operations: ops, Groups: groups, DataPlane: dp, Log: log}), st
}

func putServer(t *testing.T, st store.Store, srv *Server) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put(nameKey(srv.Name), []byte(srv.ID().String())); err != nil {
			return err
		}
		return store.PutJSON(tx, serverKey(srv.SubscriptionID, srv.ResourceGroup, srv.Name), srv)
	}); err != nil {
		t.Fatal(err)
	}
}

func testServer(state, operation string) *Server {
	return &Server{SubscriptionID: "sub", ResourceGroup: "rg", Name: "pg1", UID: "uid-1", Location: "eastus",
		Version: "15", Port: 15432, State: state, Desired: DesiredRunning, Operation: operation,
		Encryption: Encryption{Type: EncSystemManaged}}
}

// A create that finished just before the daemon died, with its operation record still
// InProgress, is resumed: the Ready server must be kept, not rolled back.
func TestResumeCreateKeepsACompletedServer(t *testing.T) {
	ctx := context.Background()
	dp := &countingDataPlane{}
	s, st := newProviderForTest(t, dp)
	srv := testServer(StateReady, "")
	putServer(t, st, srv)
	op := s.newOperation(srv, kindCreate)
	if err := s.resumeCreate(ctx, op); err != nil {
		t.Fatalf("resume of a completed create: %v", err)
	}
	if dp.destructions != 0 {
		t.Fatal("the completed server's data plane was destroyed")
	}
	if cur, err := s.reload(ctx, srv.ID()); err != nil || cur == nil || cur.State != StateReady {
		t.Fatalf("the completed server is gone or changed: %+v, %v", cur, err)
	}
}

// A create interrupted halfway is rolled back: data plane destroyed, records gone.
func TestResumeCreateRollsBackAnUnfinishedCreate(t *testing.T) {
	ctx := context.Background()
	dp := &countingDataPlane{}
	s, st := newProviderForTest(t, dp)
	srv := testServer(StateProvisioning, "")
	op := s.newOperation(srv, kindCreate)
	srv.Operation = op.Name
	putServer(t, st, srv)
	err := s.resumeCreate(ctx, op)
	if ae := arm.AsError(err); ae == nil || ae.Code != "ServerCreationInterrupted" {
		t.Fatalf("resume of an unfinished create: %v, want ServerCreationInterrupted", err)
	}
	if dp.destructions != 1 {
		t.Fatalf("data plane destroyed %d times, want 1", dp.destructions)
	}
	if cur, err := s.reload(ctx, srv.ID()); err != nil || cur != nil {
		t.Fatalf("the rolled-back server is still recorded: %+v, %v", cur, err)
	}
}

// The key monitor must not stop the data plane of a server an operation owns, even when the
// verdict it reached before the operation started says the key is revoked.
func TestRevokeLeavesAServerWithAnOperationAlone(t *testing.T) {
	ctx := context.Background()
	dp := &countingDataPlane{status: Status{Mounted: true, Running: true}}
	s, st := newProviderForTest(t, dp)
	srv := testServer(StateRestarting, "op-running")
	putServer(t, st, srv)
	s.monitor.revoke(ctx, srv, "the key is disabled")
	if dp.stops != 0 {
		t.Fatal("the monitor stopped a server while an operation ran on it")
	}
	if cur, _ := s.reload(ctx, srv.ID()); cur == nil || cur.State != StateRestarting {
		t.Fatalf("the monitor changed a server an operation owns: %+v", cur)
	}
}

// The reconciler acts on the server as it is now, not on the copy it listed: a server listed
// Ready whose stop has started since must not be brought up again.
func TestReconcilerActsOnTheCurrentServer(t *testing.T) {
	ctx := context.Background()
	dp := &countingDataPlane{} // nothing mounted or running
	s, st := newProviderForTest(t, dp)
	listed := testServer(StateReady, "")
	release := make(chan struct{})
	defer close(release)
	cur := testServer(StateStopping, "")
	cur.Desired = DesiredStopped
	op := s.newOperation(cur, kindStop)
	cur.Operation = op.Name
	putServer(t, st, cur)
	if err := s.ops.Start(ctx, op, func(context.Context, *arm.Operation) error { <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.reconcileOne(ctx, listed); err != nil {
		t.Fatal(err)
	}
	if dp.starts != 0 {
		t.Fatal("the reconciler started a server that is being stopped")
	}
}
