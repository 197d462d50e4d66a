// Package insights is a minimal Microsoft.Insights metrics API (Azure Monitor's platform
// metrics, `GET {resourceId}/providers/Microsoft.Insights/metrics`) for flexible servers: the
// history of the key monitor's checks of each server's customer-managed key and of the
// server's state, and of the storage monitor's measurements of each server's storage (Azure's
// storage_percent, storage_used and storage_free), kept in memory in a bounded ring per server
// and metric. It is what pgflex measures, not Azure's catalogue of PostgreSQL metrics: the
// history starts when the daemon starts and holds the last RingSize samples of each series.
package insights

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
)

// Metric names of a flexible server.
const (
	// KeyChecksSucceeded is 1 per key check that found the server's key usable.
	KeyChecksSucceeded = "key_checks_succeeded"
	// KeyChecksFailed is 1 per key check that failed (key refused, disabled, deleted, or the key
	// store unreachable).
	KeyChecksFailed = "key_checks_failed"
	// ServerAccessible is a state sample after each check: 1 when the server is not
	// Inaccessible, 0 when it is.
	ServerAccessible = "server_accessible"
	// StoragePercent, StorageUsed and StorageFree are Azure Monitor's storage metrics of a
	// flexible server, sampled by pgflex's storage monitor: the percentage of the server's
	// storage in use, and the bytes used and still free.
	StoragePercent = "storage_percent"
	StorageUsed    = "storage_used"
	StorageFree    = "storage_free"
)

// RingSize bounds each series: at the key monitor's default interval of 5 s, about 5.7 hours.
const RingSize = 4096

// APIVersions of the metrics API.
var APIVersions = []string{"2023-10-01", "2023-10-01-preview", "2018-01-01"}

type definition struct {
	display, description, unit, primary string
}

var definitions = map[string]definition{
	KeyChecksSucceeded: {"Key checks succeeded", "Checks of the server's customer-managed key that found it usable.", "Count", "Total"},
	KeyChecksFailed:    {"Key checks failed", "Checks of the server's customer-managed key that failed: the key refused, disabled, expired or deleted, or its key store unreachable.", "Count", "Total"},
	ServerAccessible:   {"Server accessible", "1 when the server was not Inaccessible after a key check, 0 when it was.", "Count", "Average"},
	StoragePercent:     {"Storage Percent", "Percentage of the server's storage in use.", "Percent", "Average"},
	StorageUsed:        {"Storage Used", "Storage in use, in bytes: the server's data, WAL, logs and temporary files.", "Bytes", "Average"},
	StorageFree:        {"Storage Free", "Storage the server can still write, in bytes.", "Bytes", "Average"},
}

var metricOrder = []string{KeyChecksSucceeded, KeyChecksFailed, ServerAccessible, StoragePercent, StorageUsed, StorageFree}

type sample struct {
	t time.Time
	v float64
}

// ring is a bounded series, oldest first once read.
type ring struct {
	buf  []sample
	next int
	full bool
}

func (r *ring) add(s sample) {
	if len(r.buf) < RingSize && !r.full {
		r.buf = append(r.buf, s)
		if len(r.buf) == RingSize {
			r.full = true
		}
		return
	}
	r.buf[r.next] = s
	r.next = (r.next + 1) % RingSize
}

func (r *ring) samples() []sample {
	if !r.full {
		return slices.Clone(r.buf)
	}
	return append(slices.Clone(r.buf[r.next:]), r.buf[:r.next]...)
}

// Resolver says whether a resource exists and returns its region and when it was created (the
// samples of an earlier resource of the same id are not its own), or an ARM error (404).
type Resolver func(ctx context.Context, resourceID string) (location string, created time.Time, err error)

// Metrics holds the series and serves them.
type Metrics struct {
	mu      sync.Mutex
	series  map[string]*ring // lower-case resource id + "|" + metric
	resolve Resolver
	log     *slog.Logger
	now     func() time.Time
}

// New makes the metrics store; resolve checks the resource of each request.
func New(resolve Resolver, log *slog.Logger) *Metrics {
	return &Metrics{series: map[string]*ring{}, resolve: resolve, log: log, now: time.Now}
}

func seriesKey(resourceID, metric string) string { return strings.ToLower(resourceID) + "|" + metric }

// Record adds a sample of metric for a resource.
func (m *Metrics) Record(resourceID, metric string, t time.Time, v float64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := seriesKey(resourceID, metric)
	r := m.series[k]
	if r == nil {
		r = &ring{}
		m.series[k] = r
	}
	r.add(sample{t.UTC(), v})
}

// Forget drops a resource's series (a deleted server's name may be reused).
func (m *Metrics) Forget(resourceID string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := strings.ToLower(resourceID) + "|"
	for k := range m.series {
		if strings.HasPrefix(k, prefix) {
			delete(m.series, k)
		}
	}
}

func (m *Metrics) read(resourceID, metric string) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.series[seriesKey(resourceID, metric)]; r != nil {
		return r.samples()
	}
	return nil
}

// since is a series from a time on: a deleted server's samples are not those of a new server
// of the same name.
func (m *Metrics) since(resourceID, metric string, from time.Time) []sample {
	all := m.read(resourceID, metric)
	i := 0
	for i < len(all) && all[i].t.Before(from) {
		i++
	}
	return all[i:]
}

// RegisterRoutes adds the metrics route of flexible servers.
func (m *Metrics) RegisterRoutes(rt *arm.Router) {
	rt.Handle(arm.Route{Method: http.MethodGet, ResourceType: "Microsoft.Insights/metrics", APIVersions: APIVersions,
		Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{serverName}/providers/Microsoft.Insights/metrics",
		Handler: m.list})
}

// query is a parsed request.
type query struct {
	metrics      []string
	from, to     time.Time
	interval     time.Duration // 0: FULL (one bucket)
	aggregations []string      // canonical names; nil: each metric's primary aggregation
}

var aggregationNames = []string{"Average", "Count", "Maximum", "Minimum", "Total"}

// durationRE reads the ISO 8601 durations Azure's intervals use: PT1M, PT5M, PT1H, P1D ...
var durationRE = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

func parseDuration(s string) (time.Duration, bool) {
	m := durationRE.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil || (m[1] == "" && m[2] == "" && m[3] == "" && m[4] == "") {
		return 0, false
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, err := strconv.Atoi(m[i+1])
			// No metric here is kept for a year: a larger figure is a mistake, and would
			// overflow time.Duration if multiplied out.
			if err != nil || time.Duration(n) > maxDuration/unit {
				return 0, false
			}
			d += time.Duration(n) * unit
		}
	}
	return d, d > 0 && d <= maxDuration
}

// maxDuration bounds the durations a query may name.
const maxDuration = 366 * 24 * time.Hour

// parseQuery reads metricnames, timespan (start/end, default the last hour), interval (an
// ISO 8601 duration of at least PT1M, or FULL; default PT1M) and aggregation.
func parseQuery(q map[string][]string, now time.Time) (*query, error) {
	get := func(k string) string {
		for key, v := range q {
			if strings.EqualFold(key, k) && len(v) > 0 {
				return v[0]
			}
		}
		return ""
	}
	out := &query{interval: time.Minute}
	names := get("metricnames")
	if strings.TrimSpace(names) == "" {
		names = strings.Join(metricOrder, ",")
	}
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		found := ""
		for _, known := range metricOrder {
			if strings.EqualFold(known, n) {
				found = known
			}
		}
		if found == "" {
			return nil, arm.BadRequest("BadRequest",
				"Failed to find metric configuration for provider: Microsoft.DBforPostgreSQL, resource Type: flexibleServers, metric: %s. Valid metrics: %s", n, strings.Join(metricOrder, ","))
		}
		if !slices.Contains(out.metrics, found) {
			out.metrics = append(out.metrics, found)
		}
	}
	out.to, out.from = now, now.Add(-time.Hour)
	if ts := get("timespan"); ts != "" {
		parts := strings.Split(ts, "/")
		var err1, err2 error
		if len(parts) == 2 {
			out.from, err1 = time.Parse(time.RFC3339Nano, parts[0])
			out.to, err2 = time.Parse(time.RFC3339Nano, parts[1])
		}
		if len(parts) != 2 || err1 != nil || err2 != nil || !out.from.Before(out.to) {
			return nil, arm.BadRequest("BadRequest",
				"The timespan '%s' is not valid: use start/end in ISO 8601, such as 2026-12-07T10:00:00Z/2026-12-07T11:00:00Z, with the start before the end.", ts)
		}
	}
	if iv := get("interval"); iv != "" {
		if strings.EqualFold(iv, "FULL") {
			out.interval = 0
		} else {
			d, ok := parseDuration(iv)
			if !ok || d < time.Minute {
				return nil, arm.BadRequest("BadRequest",
					"The interval '%s' is not valid: use an ISO 8601 duration of at least PT1M (PT1M, PT5M, PT15M, PT30M, PT1H, PT6H, PT12H, P1D) or FULL.", iv)
			}
			out.interval = d
		}
	}
	if out.interval > 0 && out.to.Sub(out.from)/out.interval > 10000 {
		return nil, arm.BadRequest("BadRequest", "The timespan and interval ask for more than 10000 data points; choose a shorter timespan or a longer interval.")
	}
	if ag := get("aggregation"); ag != "" {
		for _, a := range strings.Split(ag, ",") {
			a = strings.TrimSpace(a)
			i := slices.IndexFunc(aggregationNames, func(n string) bool { return strings.EqualFold(n, a) })
			if i < 0 {
				return nil, arm.BadRequest("BadRequest", "The aggregation '%s' is not valid: use %s.", a, strings.Join(aggregationNames, ", "))
			}
			if !slices.Contains(out.aggregations, aggregationNames[i]) {
				out.aggregations = append(out.aggregations, aggregationNames[i])
			}
		}
	}
	return out, nil
}

// formatDuration writes an interval as ISO 8601 (PT1M, PT1H, P1D).
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "FULL"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("P%dD", d/(24*time.Hour))
	}
	s := "PT"
	if h := d / time.Hour; h > 0 {
		s += fmt.Sprintf("%dH", h)
		d -= h * time.Hour
	}
	if mn := d / time.Minute; mn > 0 {
		s += fmt.Sprintf("%dM", mn)
		d -= mn * time.Minute
	}
	if d > 0 {
		s += fmt.Sprintf("%dS", d/time.Second)
	}
	return s
}

// series aggregates samples into the query's buckets: every bucket of the timespan has a data
// point; one without samples has a total and a count of 0 and no average, minimum or maximum.
func series(samples []sample, q *query, aggs []string) []map[string]any {
	start, step := q.from, q.interval
	if step > 0 {
		start = q.from.Truncate(step)
	} else {
		step = q.to.Sub(q.from)
	}
	// One pass over the samples in time order, not one per bucket: a query's cost is its
	// buckets plus its samples.
	sorted := slices.Clone(samples)
	slices.SortStableFunc(sorted, func(a, b sample) int { return a.t.Compare(b.t) })
	i := 0
	var out []map[string]any
	for b := start; b.Before(q.to); b = b.Add(step) {
		end := b.Add(step)
		var n int
		var sum float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for ; i < len(sorted) && sorted[i].t.Before(end); i++ {
			s := sorted[i]
			if s.t.Before(b) || s.t.Before(q.from) || !s.t.Before(q.to) {
				continue
			}
			n++
			sum += s.v
			lo, hi = math.Min(lo, s.v), math.Max(hi, s.v)
		}
		p := map[string]any{"timeStamp": b.UTC().Format(time.RFC3339)}
		for _, a := range aggs {
			switch a {
			case "Total":
				p["total"] = sum
			case "Count":
				p["count"] = float64(n)
			case "Average":
				if n > 0 {
					p["average"] = sum / float64(n)
				}
			case "Minimum":
				if n > 0 {
					p["minimum"] = lo
				}
			case "Maximum":
				if n > 0 {
					p["maximum"] = hi
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func (m *Metrics) list(w http.ResponseWriter, r *arm.Request) {
	id := arm.NewResourceID(r.Param("subscriptionId"), r.Param("resourceGroupName"), "Microsoft.DBforPostgreSQL", "flexibleServers", r.Param("serverName"))
	location, created := "", time.Time{}
	if m.resolve != nil {
		var err error
		if location, created, err = m.resolve(r.Context(), id.String()); err != nil {
			arm.WriteError(w, r, err)
			return
		}
	}
	q, err := parseQuery(r.URL.Query(), m.now().UTC())
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	value := make([]map[string]any, 0, len(q.metrics))
	for _, name := range q.metrics {
		def := definitions[name]
		aggs := q.aggregations
		if aggs == nil {
			aggs = []string{def.primary}
		}
		value = append(value, map[string]any{
			"id":                 id.String() + "/providers/Microsoft.Insights/metrics/" + name,
			"type":               "Microsoft.Insights/metrics",
			"name":               map[string]string{"value": name, "localizedValue": def.display},
			"displayDescription": def.description,
			"unit":               def.unit,
			"errorCode":          "Success",
			"timeseries":         []any{map[string]any{"metadatavalues": []any{}, "data": series(m.since(id.String(), name, created), q, aggs)}},
		})
	}
	arm.WriteJSON(w, http.StatusOK, map[string]any{
		"cost":           0,
		"timespan":       q.from.Format(time.RFC3339) + "/" + q.to.Format(time.RFC3339),
		"interval":       formatDuration(q.interval),
		"value":          value,
		"namespace":      "Microsoft.DBforPostgreSQL/flexibleServers",
		"resourceregion": location,
	})
}
