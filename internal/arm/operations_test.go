package arm

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pgflex/pgflex/internal/store"
)

func newOperationsForTest(t *testing.T) (*Operations, store.Store) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewOperations(context.Background(), st, slog.New(slog.DiscardHandler)), st
}

func TestOperationOutcomes(t *testing.T) {
	ctx := context.Background()
	o, _ := newOperationsForTest(t)
	for _, c := range []struct {
		err    error
		status string
		code   string
	}{
		{nil, StatusSucceeded, ""},
		{BadRequest("InvalidThing", "The thing is invalid."), StatusFailed, "InvalidThing"},
		// An internal error reaches the client only as a generic 500 naming the operation.
		{errors.New("open /secret/path: permission denied"), StatusFailed, "InternalServerError"},
		{context.Canceled, StatusCanceled, "OperationCanceled"},
	} {
		op := &Operation{Kind: "test"}
		if err := o.Start(ctx, op, func(context.Context, *Operation) error { return c.err }); err != nil {
			t.Fatal(err)
		}
		got, err := o.Wait(ctx, op.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != c.status || (c.code != "" && (got.Error == nil || got.Error.Code != c.code)) {
			t.Errorf("%v: status %s error %+v; want %s %s", c.err, got.Status, got.Error, c.status, c.code)
		}
		if got.Error != nil && c.err != nil && AsError(c.err) == nil && got.Error.Message == c.err.Error() {
			t.Errorf("an internal error reached the operation status: %s", got.Error.Message)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.done) != 0 {
		t.Fatalf("%d finished operations are still remembered in memory", len(o.done))
	}
}

// An operation still InProgress at start-up goes to the resumer of its kind; one whose kind
// has none is failed, not left InProgress for ever.
func TestResumeAll(t *testing.T) {
	ctx := context.Background()
	o, st := newOperationsForTest(t)
	for _, op := range []*Operation{{Name: "a", Kind: "resumable", Status: StatusInProgress}, {Name: "b", Kind: "orphan", Status: StatusInProgress}} {
		if err := st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, opKey(op.Name), op) }); err != nil {
			t.Fatal(err)
		}
	}
	resumed := make(chan string, 1)
	o.RegisterResumer("resumable", func(_ context.Context, op *Operation) error { resumed <- op.Name; return nil })
	if err := o.ResumeAll(ctx); err != nil {
		t.Fatal(err)
	}
	if name := <-resumed; name != "a" {
		t.Fatalf("resumed %s, want a", name)
	}
	if a, _ := o.Wait(ctx, "a"); a.Status != StatusSucceeded {
		t.Fatalf("resumed operation: %s", a.Status)
	}
	if b, _ := o.Get(ctx, "b"); b.Status != StatusFailed || b.Error == nil || b.Error.Code != "OperationInterrupted" {
		t.Fatalf("operation without resumer: %+v", b)
	}
}
