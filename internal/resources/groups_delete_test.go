package resources_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// TestRepeatedGroupDeleteAnswersWithTheRunningOperation: a DELETE of a group whose delete is
// still running answers with that operation instead of starting a second one; once it has
// ended, the group is gone.
func TestRepeatedGroupDeleteAnswersWithTheRunningOperation(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ops := arm.NewOperations(context.Background(), st, log)
	res := resources.New(st, ops, log)
	release, calls := make(chan struct{}), make(chan struct{}, 10)
	// A member whose resources take a while to delete, as servers do.
	res.AddMember(resources.Member{Name: "slow", Order: 1, DeleteAllInGroup: func(ctx context.Context, sub, group string) error {
		calls <- struct{}{}
		<-release
		return nil
	}})
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		return resources.PutSubscription(tx, &resources.Subscription{ID: "sub", DisplayName: "s", TenantID: "t", State: "Enabled"})
	}); err != nil {
		t.Fatal(err)
	}
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{Admin: true}, nil }, log)
	res.RegisterRoutes(rt)
	do := func(method, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(method, "/subscriptions/sub/resourcegroups/rg1?api-version=2021-04-01", strings.NewReader(body)))
		return w
	}
	if w := do(http.MethodPut, `{"location":"eastus"}`); w.Code != http.StatusCreated {
		t.Fatalf("create group: %d %s", w.Code, w.Body)
	}
	first := do(http.MethodDelete, "")
	<-calls // the first delete is running
	second := do(http.MethodDelete, "")
	if first.Code != http.StatusAccepted || second.Code != http.StatusAccepted {
		t.Fatalf("deletes: %d, %d", first.Code, second.Code)
	}
	a, b := first.Header().Get("Azure-AsyncOperation"), second.Header().Get("Azure-AsyncOperation")
	if a == "" || a != b {
		t.Fatalf("the repeated delete answered with operation %q, the first with %q", b, a)
	}
	close(release)
	opName := a[strings.LastIndex(a, "/")+1:]
	if i := strings.Index(opName, "?"); i >= 0 {
		opName = opName[:i]
	}
	if op, err := ops.Wait(context.Background(), opName); err != nil || op.Status != arm.StatusSucceeded {
		t.Fatalf("delete operation: %+v, %v", op, err)
	}
	if len(calls) != 0 {
		t.Fatalf("the group's resources were deleted %d more times", len(calls))
	}
	if w := do(http.MethodGet, ""); w.Code != http.StatusNotFound {
		t.Fatalf("group after delete: %d %s", w.Code, w.Body)
	}
}
