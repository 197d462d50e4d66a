// Package activitylog is the subscription's activity log (Microsoft.Insights event data, the
// API `az monitor activity-log list` reads): pgflex records there every change it makes on its
// own — a key version followed, a server made Inaccessible by a revoked key, a server recovered —
// with its cause.
package activitylog

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// Levels, as Azure names them.
const (
	LevelInformational = "Informational"
	LevelWarning       = "Warning"
	LevelError         = "Error"
	LevelCritical      = "Critical"
)

// Event is one activity-log record.
type Event struct {
	ID             string            `json:"eventDataId"`
	SubscriptionID string            `json:"subscriptionId"`
	ResourceID     string            `json:"resourceId"`
	ResourceGroup  string            `json:"resourceGroupName"`
	Provider       string            `json:"resourceProvider"`
	Operation      string            `json:"operationName"` // e.g. Microsoft.DBforPostgreSQL/flexibleServers/keyRevoked/action
	Level          string            `json:"level"`
	Status         string            `json:"status"` // Succeeded, Failed, ...
	Caller         string            `json:"caller"`
	Description    string            `json:"description"`
	Properties     map[string]string `json:"properties,omitempty"`
	Timestamp      time.Time         `json:"eventTimestamp"`
}

// Log appends and lists events.
type Log struct {
	st  store.Store
	log *slog.Logger
	seq atomic.Uint64
}

// New makes the log.
func New(st store.Store, log *slog.Logger) *Log { return &Log{st: st, log: log} }

func eventKey(sub string, t time.Time, seq uint64) string {
	return fmt.Sprintf("activity/%s/%020d-%06d", strings.ToLower(sub), t.UnixNano(), seq%1000000)
}

// Append records an event (and logs it).
func (l *Log) Append(ctx context.Context, e Event) error {
	if e.ID == "" {
		e.ID = arm.NewGUID()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now().UTC()
	}
	if e.Caller == "" {
		e.Caller = "pgflex"
	}
	if e.Status == "" {
		e.Status = "Succeeded"
	}
	if id, err := arm.ParseResourceID(e.ResourceID); err == nil {
		e.SubscriptionID, e.ResourceGroup, e.Provider = id.SubscriptionID, id.ResourceGroup, id.Namespace
	}
	l.log.Info("activity", "operation", e.Operation, "resource", e.ResourceID, "level", e.Level, "description", e.Description)
	return l.st.Update(ctx, func(tx store.Tx) error {
		return store.PutJSON(tx, eventKey(e.SubscriptionID, e.Timestamp, l.seq.Add(1)), e)
	})
}

// Filter selects events.
type Filter struct {
	From, To      time.Time
	ResourceGroup string
	ResourceID    string
}

// List returns a subscription's events matching f, newest first.
func (l *Log) List(ctx context.Context, sub string, f Filter) ([]Event, error) {
	var all []Event
	err := l.st.View(ctx, func(tx store.Tx) error {
		var err error
		all, err = store.ListJSON[Event](tx, "activity/"+strings.ToLower(sub)+"/")
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, e := range all {
		switch {
		case !f.From.IsZero() && e.Timestamp.Before(f.From), !f.To.IsZero() && e.Timestamp.After(f.To),
			f.ResourceGroup != "" && !strings.EqualFold(e.ResourceGroup, f.ResourceGroup),
			f.ResourceID != "" && !strings.EqualFold(e.ResourceID, f.ResourceID):
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	return out, nil
}

// APIVersions of the activity-log API.
var APIVersions = []string{"2015-04-01"}

// RegisterRoutes adds the activity-log list route.
func (l *Log) RegisterRoutes(rt *arm.Router) {
	rt.Handle(arm.Route{Method: http.MethodGet, ResourceType: "Microsoft.Insights/eventtypes", APIVersions: APIVersions,
		Pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values", Handler: l.list})
}

// filterTerm matches "field op 'value'"; some az versions send timestamps unquoted.
var filterTerm = regexp.MustCompile(`(?i)(\w+)\s+(ge|le|eq)\s+(?:'([^']*)'|([^\s']+))`)

// parseFilter reads Azure's restricted $filter grammar: eventTimestamp ge/le, resourceGroupName
// eq, resourceUri eq (and eventChannels, ignored).
func parseFilter(s string) (Filter, error) {
	var f Filter
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	for _, m := range filterTerm.FindAllStringSubmatch(s, -1) {
		field, op, val := strings.ToLower(m[1]), strings.ToLower(m[2]), m[3]+m[4]
		switch {
		case field == "eventtimestamp":
			t, err := parseTimestamp(val)
			if err != nil {
				return f, arm.BadRequest("InvalidFilter", "The eventTimestamp '%s' is not an ISO 8601 time such as 2026-01-02T15:04:05Z.", val)
			}
			if op == "ge" {
				f.From = t
			} else {
				f.To = t
			}
		case field == "resourcegroupname" && op == "eq":
			f.ResourceGroup = val
		case (field == "resourceuri" || field == "resourceid") && op == "eq":
			f.ResourceID = val
		}
	}
	return f, nil
}

// parseTimestamp reads an ISO 8601 time as Azure's activity log does: with a zone (RFC 3339),
// or without one, taken as UTC, as az monitor activity-log list sends it
// (2026-12-07T18:03:26.996816).
func parseTimestamp(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02T15:04:05.999999999", v, time.UTC)
}

func (l *Log) list(w http.ResponseWriter, r *arm.Request) {
	f, err := parseFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	events, err := l.List(r.Context(), r.Param("subscriptionId"), f)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(events))
	for _, e := range events {
		views = append(views, view(e))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

// view renders an event as Azure's EventData.
func view(e Event) map[string]any {
	loc := func(v string) map[string]string { return map[string]string{"value": v, "localizedValue": v} }
	ts := e.Timestamp.UTC().Format(time.RFC3339Nano)
	return map[string]any{
		"id":                   e.ResourceID + "/events/" + e.ID + "/ticks/" + fmt.Sprint(e.Timestamp.UnixNano()/100),
		"eventDataId":          e.ID,
		"correlationId":        e.ID,
		"caller":               e.Caller,
		"category":             loc("Administrative"),
		"description":          e.Description,
		"eventName":            loc("EndRequest"),
		"eventTimestamp":       ts,
		"submissionTimestamp":  ts,
		"level":                e.Level,
		"operationName":        loc(e.Operation),
		"resourceGroupName":    e.ResourceGroup,
		"resourceId":           e.ResourceID,
		"resourceProviderName": loc(e.Provider),
		"resourceType":         loc(resourceType(e.ResourceID)),
		"status":               loc(e.Status),
		"subStatus":            loc(""),
		"subscriptionId":       e.SubscriptionID,
		"tenantId":             "",
		"properties":           e.Properties,
	}
}

func resourceType(id string) string {
	if rid, err := arm.ParseResourceID(id); err == nil {
		return rid.Type()
	}
	return ""
}
