package arm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// Operation statuses, as ARM's async-operation protocol names them.
const (
	StatusInProgress = "InProgress"
	StatusSucceeded  = "Succeeded"
	StatusFailed     = "Failed"
	StatusCanceled   = "Canceled"
)

// Operation is a long-running operation's persisted record.
type Operation struct {
	Name      string     `json:"name"` // the operation id (a GUID)
	Status    string     `json:"status"`
	StartTime time.Time  `json:"startTime"`
	EndTime   *time.Time `json:"endTime,omitempty"`
	Error     *Error     `json:"error,omitempty"`

	// Kind names the work, so that a restarted daemon can find who resumes it.
	Kind string `json:"kind"`
	// Caller is the object id of the principal that started the operation ("" for the service).
	Caller string `json:"caller,omitempty"`
	// ResourceID is the resource the operation acts on.
	ResourceID     string `json:"resourceId"`
	SubscriptionID string `json:"subscriptionId"`
	Namespace      string `json:"namespace"`
	Location       string `json:"location"`
	// Data is the owner's own record of the work (steps done so far, parameters).
	Data []byte `json:"data,omitempty"`
}

// Done reports whether the operation reached a terminal status.
func (o *Operation) Done() bool { return o.Status != StatusInProgress }

// RunFunc does an operation's work. It may persist progress with Operations.SaveData.
type RunFunc func(ctx context.Context, op *Operation) error

// Operations runs long-running operations and keeps their status in the store, so that a daemon
// restart loses none: an operation still InProgress at start-up is handed to the resumer of its
// kind, or failed if there is none.
type Operations struct {
	st       store.Store
	log      *slog.Logger
	base     context.Context
	mu       sync.Mutex
	resumers map[string]RunFunc
	done     map[string]chan struct{}
	wg       sync.WaitGroup
}

// NewOperations makes the operation runner. base is cancelled at daemon shutdown: an operation
// interrupted that way stays InProgress and is resumed at the next start.
func NewOperations(base context.Context, st store.Store, log *slog.Logger) *Operations {
	return &Operations{st: st, log: log, base: base, resumers: map[string]RunFunc{}, done: map[string]chan struct{}{}}
}

func opKey(name string) string { return "op/" + name }

// RegisterResumer sets the function that continues (or rolls back) interrupted operations of kind.
func (o *Operations) RegisterResumer(kind string, fn RunFunc) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.resumers[kind] = fn
}

// Start records a new InProgress operation and runs fn in the background. A caller that must
// record the operation's name in its own resource first sets op.Name itself.
func (o *Operations) Start(ctx context.Context, op *Operation, fn RunFunc) error {
	if op.Name == "" {
		op.Name = NewGUID()
	}
	op.Status = StatusInProgress
	op.StartTime = time.Now().UTC()
	if err := o.st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, opKey(op.Name), op) }); err != nil {
		return fmt.Errorf("record operation: %w", err)
	}
	o.launch(op, fn)
	return nil
}

func (o *Operations) launch(op *Operation, fn RunFunc) {
	ch := make(chan struct{})
	o.mu.Lock()
	o.done[op.Name] = ch
	o.mu.Unlock()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer close(ch)
		// Once the record is final, Wait reads it from the store: forget the channel, or the
		// map would grow by one entry per operation for the daemon's lifetime.
		defer func() {
			o.mu.Lock()
			delete(o.done, op.Name)
			o.mu.Unlock()
		}()
		err := o.safeRun(op, fn)
		if err != nil && o.base.Err() != nil {
			// Shutdown interrupted the work: leave it InProgress for the next start to resume.
			o.log.Info("operation interrupted by shutdown", "operation", op.Name, "kind", op.Kind)
			return
		}
		o.finish(op, err)
	}()
}

func (o *Operations) safeRun(op *Operation, fn RunFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("operation panicked: %v", p)
		}
	}()
	return fn(o.base, op)
}

func (o *Operations) finish(op *Operation, err error) {
	now := time.Now().UTC()
	op.EndTime = &now
	switch {
	case err == nil:
		op.Status = StatusSucceeded
	case errors.Is(err, context.Canceled):
		op.Status = StatusCanceled
		op.Error = Errorf(http.StatusConflict, "OperationCanceled", "The operation was canceled.")
	default:
		op.Status = StatusFailed
		if ae := AsError(err); ae != nil {
			op.Error = ae
		} else {
			o.log.Error("operation failed", "operation", op.Name, "kind", op.Kind, "resource", op.ResourceID, "err", err)
			op.Error = Errorf(http.StatusInternalServerError, "InternalServerError",
				"An unexpected error occured while processing the request. Tracking ID: '%s'", op.Name)
		}
	}
	// The record must reach the store even during shutdown, hence a fresh context.
	if werr := o.st.Update(context.Background(), func(tx store.Tx) error {
		return store.PutJSON(tx, opKey(op.Name), op)
	}); werr != nil {
		o.log.Error("record operation result", "operation", op.Name, "err", werr)
	}
}

// SaveData persists the owner's progress record of a running operation.
func (o *Operations) SaveData(ctx context.Context, op *Operation, data []byte) error {
	op.Data = data
	return o.st.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, opKey(op.Name), op) })
}

// Get reads an operation.
func (o *Operations) Get(ctx context.Context, name string) (*Operation, error) {
	var op Operation
	err := o.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, opKey(name), &op) })
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' could not be found.", name)
	}
	if err != nil {
		return nil, err
	}
	return &op, nil
}

// Wait blocks until the operation started by this process ends (or ctx ends) and returns it.
func (o *Operations) Wait(ctx context.Context, name string) (*Operation, error) {
	o.mu.Lock()
	ch := o.done[name]
	o.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return o.Get(ctx, name)
}

// ResumeAll hands every InProgress operation to its resumer. Call once at start-up, after every
// provider registered its resumers.
func (o *Operations) ResumeAll(ctx context.Context) error {
	var pending []*Operation
	if err := o.st.View(ctx, func(tx store.Tx) error {
		ops, err := store.ListJSON[Operation](tx, "op/")
		for i := range ops {
			if !ops[i].Done() {
				pending = append(pending, &ops[i])
			}
		}
		return err
	}); err != nil {
		return fmt.Errorf("list operations: %w", err)
	}
	for _, op := range pending {
		o.mu.Lock()
		fn := o.resumers[op.Kind]
		o.mu.Unlock()
		if fn == nil {
			o.finish(op, Errorf(http.StatusInternalServerError, "OperationInterrupted",
				"The operation was interrupted by a restart of the service and cannot be resumed. Retry the request."))
			continue
		}
		o.log.Info("resuming operation", "operation", op.Name, "kind", op.Kind, "resource", op.ResourceID)
		o.launch(op, fn)
	}
	return nil
}

// Shutdown waits for running operations to return after the base context was cancelled.
func (o *Operations) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// asyncURL is the Azure-AsyncOperation status URL of op.
func asyncURL(r *Request, op *Operation) string {
	return fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/azureAsyncOperation/%s?api-version=%s",
		r.BaseURL(), op.SubscriptionID, op.Namespace, op.Location, op.Name, r.APIVersion)
}

func resultURL(r *Request, op *Operation) string {
	return fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/operationResults/%s?api-version=%s",
		r.BaseURL(), op.SubscriptionID, op.Namespace, op.Location, op.Name, r.APIVersion)
}

// Accepted answers a request that started op: the Azure-AsyncOperation and Location headers,
// then status (201 or 202 usually) with body (may be nil).
func Accepted(w http.ResponseWriter, r *Request, op *Operation, status int, body any) {
	w.Header().Set("Azure-AsyncOperation", asyncURL(r, op))
	w.Header().Set("Location", resultURL(r, op))
	w.Header().Set("Retry-After", "1")
	WriteJSON(w, status, body)
}

// OperationStatus is the body of the Azure-AsyncOperation status resource.
type OperationStatus struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	StartTime time.Time  `json:"startTime"`
	EndTime   *time.Time `json:"endTime,omitempty"`
	Error     *Error     `json:"error,omitempty"`
}

// RegisterRoutes adds the operation status routes (Azure-AsyncOperation and Location) for every
// provider namespace.
func (o *Operations) RegisterRoutes(rt *Router, apiVersions []string) {
	get := func(w http.ResponseWriter, r *Request) (*Operation, bool) {
		op, err := o.Get(r.Context(), r.Param("operationId"))
		if err == nil && (!strings.EqualFold(op.SubscriptionID, r.Param("subscriptionId")) || !strings.EqualFold(op.Namespace, r.Param("namespace"))) {
			err = Errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' could not be found.", r.Param("operationId"))
		}
		if err != nil {
			WriteError(w, r, err)
			return nil, false
		}
		return op, true
	}
	rt.Handle(Route{Method: http.MethodGet, ResourceType: "operations",
		Pattern: "/subscriptions/{subscriptionId}/providers/{namespace}/locations/{location}/azureAsyncOperation/{operationId}",
		Handler: func(w http.ResponseWriter, r *Request) {
			op, ok := get(w, r)
			if !ok {
				return
			}
			if !op.Done() {
				w.Header().Set("Retry-After", "1")
			}
			WriteJSON(w, http.StatusOK, OperationStatus{ID: r.URL.Path, Name: op.Name, Status: op.Status,
				StartTime: op.StartTime, EndTime: op.EndTime, Error: op.Error})
		}})
	rt.Handle(Route{Method: http.MethodGet, ResourceType: "operations",
		Pattern: "/subscriptions/{subscriptionId}/providers/{namespace}/locations/{location}/operationResults/{operationId}",
		Handler: func(w http.ResponseWriter, r *Request) {
			op, ok := get(w, r)
			if !ok {
				return
			}
			switch op.Status {
			case StatusInProgress:
				w.Header().Set("Location", r.BaseURL()+r.URL.RequestURI())
				w.Header().Set("Retry-After", "1")
				WriteJSON(w, http.StatusAccepted, nil)
			case StatusSucceeded:
				WriteJSON(w, http.StatusNoContent, nil)
			default:
				WriteError(w, r, op.Error)
			}
		}})
}
