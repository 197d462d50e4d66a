package insights

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
)

const srvA = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/a"

type response struct {
	Interval string `json:"interval"`
	Timespan string `json:"timespan"`
	Region   string `json:"resourceregion"`
	Value    []struct {
		Name struct {
			Value string `json:"value"`
		} `json:"name"`
		Unit       string `json:"unit"`
		Timeseries []struct {
			Data []map[string]any `json:"data"`
		} `json:"timeseries"`
	} `json:"value"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestMetricsAPI(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	const srvC = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/c"
	m := New(func(_ context.Context, id string) (string, time.Time, error) {
		switch {
		case strings.EqualFold(id, srvA):
			return "eastus", now.Add(-time.Hour), nil
		case strings.EqualFold(id, srvC):
			// Re-created at 10:28: the samples of the server deleted before are not its own.
			return "westus", now.Add(-2 * time.Minute), nil
		}
		rid, _ := arm.ParseResourceID(id)
		return "", time.Time{}, arm.ResourceNotFound(rid)
	}, slog.New(slog.DiscardHandler))
	m.now = func() time.Time { return now }
	// Three checks at 10:27 (ok, ok, failed), two at 10:29 (failed, failed), one ok at 10:29:50.
	for _, c := range []struct {
		at time.Duration
		ok bool
	}{{-3*time.Minute + time.Second, true}, {-3*time.Minute + 10*time.Second, true}, {-3*time.Minute + 20*time.Second, false},
		{-time.Minute + 5*time.Second, false}, {-time.Minute + 15*time.Second, false}, {-10 * time.Second, true}} {
		v := 0.0
		if c.ok {
			v = 1
		}
		m.Record(srvA, KeyChecksSucceeded, now.Add(c.at), v)
		m.Record(srvA, KeyChecksFailed, now.Add(c.at), 1-v)
		m.Record(strings.ToUpper(srvA), ServerAccessible, now.Add(c.at), v) // ids are case-insensitive
		m.Record(srvC, KeyChecksFailed, now.Add(c.at), 1-v)
	}
	// The storage monitor's measurements: 40 % then 96 % used of a 32 GiB volume.
	const volume = 32 << 30
	for i, pct := range []float64{40, 96} {
		at := now.Add(time.Duration(i-2) * time.Minute)
		m.Record(srvA, StoragePercent, at, pct)
		m.Record(srvA, StorageUsed, at, pct/100*volume)
		m.Record(srvA, StorageFree, at, (100-pct)/100*volume)
	}
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{ObjectID: "admin"}, nil }, slog.New(slog.DiscardHandler))
	m.RegisterRoutes(rt)
	span := "2026-12-07T10:25:00Z/2026-12-07T10:30:00Z"

	tests := []struct {
		name     string
		resource string
		query    url.Values
		status   int
		code     string
		check    func(t *testing.T, r response)
	}{
		{name: "failed checks per minute, total", resource: srvA,
			query: url.Values{"metricnames": {"key_checks_failed"}, "timespan": {span}, "interval": {"PT1M"}}, status: 200,
			check: func(t *testing.T, r response) {
				if r.Interval != "PT1M" || r.Region != "eastus" || len(r.Value) != 1 || r.Value[0].Name.Value != KeyChecksFailed || r.Value[0].Unit != "Count" {
					t.Fatalf("response %+v", r)
				}
				data := r.Value[0].Timeseries[0].Data
				want := []float64{0, 0, 1, 0, 2}
				if len(data) != len(want) {
					t.Fatalf("%d data points, want %d: %v", len(data), len(want), data)
				}
				for i, w := range want {
					if data[i]["total"] != w {
						t.Errorf("bucket %d (%v): total %v, want %v", i, data[i]["timeStamp"], data[i]["total"], w)
					}
				}
				if data[0]["timeStamp"] != "2026-12-07T10:25:00Z" {
					t.Errorf("first bucket %v", data[0]["timeStamp"])
				}
			}},
		{name: "state average, maximum and minimum over 5 minutes", resource: srvA,
			query: url.Values{"metricnames": {"server_accessible"}, "timespan": {span}, "interval": {"PT5M"}, "aggregation": {"average,minimum,Maximum,count"}}, status: 200,
			check: func(t *testing.T, r response) {
				d := r.Value[0].Timeseries[0].Data
				if len(d) != 1 || d[0]["average"] != 0.5 || d[0]["minimum"] != 0.0 || d[0]["maximum"] != 1.0 || d[0]["count"] != 6.0 {
					t.Errorf("data %v", d)
				}
			}},
		{name: "all metrics by default, primary aggregations; empty buckets have no average", resource: srvA,
			query: url.Values{"timespan": {"2026-12-07T10:20:00Z/2026-12-07T10:22:00Z"}}, status: 200,
			check: func(t *testing.T, r response) {
				if len(r.Value) != len(metricOrder) {
					t.Fatalf("%d metrics", len(r.Value))
				}
				for _, v := range r.Value {
					for _, p := range v.Timeseries[0].Data {
						if _, ok := p["average"]; ok {
							t.Errorf("%s: empty bucket with an average: %v", v.Name.Value, p)
						}
						if definitions[v.Name.Value].primary == "Total" && p["total"] != 0.0 {
							t.Errorf("%s: empty bucket total %v", v.Name.Value, p["total"])
						}
					}
				}
			}},
		{name: "storage metrics under Azure's names and units", resource: srvA,
			query: url.Values{"metricnames": {"storage_percent,storage_used,storage_free"}, "timespan": {span}, "interval": {"FULL"}, "aggregation": {"Maximum,Average"}}, status: 200,
			check: func(t *testing.T, r response) {
				want := []struct {
					name, unit string
					max, avg   float64
				}{{"storage_percent", "Percent", 96, 68}, {"storage_used", "Bytes", 0.96 * volume, 0.68 * volume}, {"storage_free", "Bytes", 0.6 * volume, 0.32 * volume}}
				if len(r.Value) != len(want) {
					t.Fatalf("%d metrics", len(r.Value))
				}
				for i, w := range want {
					v := r.Value[i]
					d := v.Timeseries[0].Data
					if v.Name.Value != w.name || v.Unit != w.unit || len(d) != 1 {
						t.Fatalf("metric %d: %s in %s with %d points, want %s in %s", i, v.Name.Value, v.Unit, len(d), w.name, w.unit)
					}
					if max, avg := d[0]["maximum"].(float64), d[0]["average"].(float64); math.Abs(max-w.max) > 1 || math.Abs(avg-w.avg) > 1 {
						t.Errorf("%s: maximum %v, average %v; want %v, %v", w.name, max, avg, w.max, w.avg)
					}
				}
			}},
		{name: "FULL interval", resource: srvA,
			query: url.Values{"metricnames": {"key_checks_succeeded,key_checks_failed"}, "timespan": {span}, "interval": {"FULL"}}, status: 200,
			check: func(t *testing.T, r response) {
				if r.Value[0].Timeseries[0].Data[0]["total"] != 3.0 || r.Value[1].Timeseries[0].Data[0]["total"] != 3.0 {
					t.Errorf("totals %v %v", r.Value[0].Timeseries[0].Data, r.Value[1].Timeseries[0].Data)
				}
			}},
		{name: "a re-created server's history starts at its creation", resource: srvC,
			query: url.Values{"metricnames": {"key_checks_failed"}, "timespan": {span}, "interval": {"FULL"}}, status: 200,
			check: func(t *testing.T, r response) {
				if d := r.Value[0].Timeseries[0].Data; len(d) != 1 || d[0]["total"] != 2.0 || r.Region != "westus" {
					t.Errorf("data %v, region %s", d, r.Region)
				}
			}},
		{name: "unknown metric", resource: srvA, query: url.Values{"metricnames": {"cpu_percent"}}, status: 400, code: "BadRequest"},
		{name: "interval under a minute", resource: srvA, query: url.Values{"interval": {"PT10S"}}, status: 400, code: "BadRequest"},
		{name: "bad timespan", resource: srvA, query: url.Values{"timespan": {"yesterday"}}, status: 400, code: "BadRequest"},
		{name: "end before start", resource: srvA, query: url.Values{"timespan": {"2026-12-07T10:30:00Z/2026-12-07T10:00:00Z"}}, status: 400, code: "BadRequest"},
		{name: "bad aggregation", resource: srvA, query: url.Values{"aggregation": {"median"}}, status: 400, code: "BadRequest"},
		{name: "no such server", resource: strings.Replace(srvA, "/a", "/b", 1), query: url.Values{}, status: 404, code: "ResourceNotFound"},
		{name: "api-version", resource: srvA, query: url.Values{"api-version": {"2099-01-01"}}, status: 400, code: "NoRegisteredProviderFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			if q.Get("api-version") == "" {
				q.Set("api-version", "2023-10-01")
			}
			req := httptest.NewRequest(http.MethodGet, tc.resource+"/providers/Microsoft.Insights/metrics?"+q.Encode(), nil)
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, req)
			var r response
			if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || r.Error.Code != tc.code {
				t.Fatalf("%d %s, want %d %s: %s", w.Code, r.Error.Code, tc.status, tc.code, w.Body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestRingBounded(t *testing.T) {
	m := New(nil, slog.New(slog.DiscardHandler))
	base := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range RingSize + 10 {
		m.Record(srvA, KeyChecksFailed, base.Add(time.Duration(i)*time.Second), float64(i))
	}
	s := m.read(srvA, KeyChecksFailed)
	if len(s) != RingSize || s[0].v != 10 || s[len(s)-1].v != RingSize+9 {
		t.Fatalf("ring holds %d samples from %v to %v", len(s), s[0].v, s[len(s)-1].v)
	}
	m.Forget(strings.ToUpper(srvA))
	if len(m.read(srvA, KeyChecksFailed)) != 0 {
		t.Error("Forget left samples")
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"PT1M", time.Minute, true}, {"PT5M", 5 * time.Minute, true}, {"PT1H", time.Hour, true}, {"P1D", 24 * time.Hour, true},
		{"PT1H30M", 90 * time.Minute, true}, {"pt15m", 15 * time.Minute, true}, {"P", 0, false}, {"PT", 0, false}, {"1M", 0, false},
		// Past a year, and past what time.Duration holds (which would wrap to a small interval).
		{"P366D", 366 * 24 * time.Hour, true}, {"P367D", 0, false}, {"P213504D", 0, false}, {"PT9999999999999H", 0, false}} {
		got, ok := parseDuration(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseDuration(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok && formatDuration(got) != strings.ToUpper(tc.in) {
			t.Errorf("formatDuration(%v) = %s, want %s", got, formatDuration(got), strings.ToUpper(tc.in))
		}
	}
}
