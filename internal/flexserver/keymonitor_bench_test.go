package flexserver_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// BenchmarkKeyMonitorLatency measures, over many trials on one CMK server with the default
// monitor interval (5 s): revocation (key disabled) → connections refused; access restored →
// Ready and serving; rotation → DEK wrapped by the new version. It reports median and p99 of
// each, as multiples of the interval too (target: at most 2x), and the key-store calls the
// monitor makes per server per hour (target: one read per interval = 720/h).
//
//	go test -run '^$' -bench KeyMonitorLatency -benchtime 1x ./internal/flexserver
//
// PGFLEX_BENCH_TRIALS sets the number of trials (default 10).
func BenchmarkKeyMonitorLatency(b *testing.B) {
	requireDataPlane(b)
	trials := 10
	if s := os.Getenv("PGFLEX_BENCH_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	const interval = 5 * time.Second
	runDir := testenv.RuntimeDir(b)
	d := testenv.Start(b, testenv.Options{Args: []string{"--runtime-dir", runDir, "--key-check-interval", interval.String()}})
	createGroup(b, d, "rg", "eastus")
	k := newKMS(b, d, "rg", "kvbench", false)
	kid := k.createKey("dek")
	id := k.createIdentity("bench-id")
	k.grant(id.principal)
	versionless := kid[:strings.LastIndex(kid, "/")]
	srv := cmkServer(b, d, "rg", "bench", versionless, id)

	// until measures how long cond takes to hold, polling every 20 ms; a benchmark that waits
	// for something that does not come fails after the deadline, saying what it waited for.
	until := func(what string, cond func() bool) time.Duration {
		b.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 20*interval {
				b.Fatalf("%s: not within %s", what, 20*interval)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	var revoke, restore, rotate []time.Duration
	for i := 0; i < trials; i++ {
		// Revocation: disable the key, time until a connection is refused.
		k.setAttributes("dek", "", map[string]any{"enabled": false})
		revoke = append(revoke, until("connections refused after the key was disabled", func() bool {
			c, err := connect(b, d, srv, "postgres")
			if err != nil {
				return true
			}
			c.Close(context.Background())
			return false
		}))
		// Restore: enable, time until Ready and a query succeeds.
		k.setAttributes("dek", "", map[string]any{"enabled": true})
		restore = append(restore, until("a query served after the key was enabled", func() bool {
			c, err := connect(b, d, srv, "postgres")
			if err != nil {
				return false
			}
			defer c.Close(context.Background())
			var one int
			return c.QueryRow(context.Background(), "SELECT 1").Scan(&one) == nil
		}))
		// Rotation: time until the server's DEK is wrapped by the new version.
		start := time.Now()
		nk := k.rotate("dek")
		want := nk[strings.LastIndex(nk, "/")+1:]
		until("the DEK wrapped by "+want, func() bool { return versionInUse(b, d, "rg", "bench") == want })
		rotate = append(rotate, time.Since(start))
	}
	report := func(name string, ds []time.Duration) {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		med, p99 := ds[len(ds)/2], ds[min(len(ds)-1, (len(ds)*99)/100)]
		b.ReportMetric(med.Seconds(), name+"-median-s")
		b.ReportMetric(p99.Seconds(), name+"-p99-s")
		b.ReportMetric(p99.Seconds()/interval.Seconds(), name+"-p99/interval")
		fmt.Printf("%-28s median %6.2fs  p99 %6.2fs  (p99 = %.2f x interval; %d trials)\n", name, med.Seconds(), p99.Seconds(), p99.Seconds()/interval.Seconds(), len(ds))
	}
	report("revoked->refused", revoke)
	report("restored->ready", restore)
	report("rotated->rewrapped", rotate)

	// Steady state: key-store calls per server per hour, from the monitor's own counters over a
	// measuring window (a measurement, not a wait for anything).
	before := storeCalls(b, d)
	window := 6 * interval
	time.Sleep(window)
	after := storeCalls(b, d)
	for op, n := range after {
		perHour := float64(n-before[op]) * float64(time.Hour) / float64(window)
		b.ReportMetric(perHour, op+"-calls/server/h")
		fmt.Printf("steady state: %-10s %7.0f calls per server per hour (one per interval = %.0f)\n", op, perHour, float64(time.Hour)/float64(interval))
	}
}

// storeCalls reads pgflex_key_store_calls_total by operation from /metrics.
func storeCalls(b testing.TB, d *testenv.Daemon) map[string]float64 {
	b.Helper()
	out := map[string]float64{"get": 0, "wrapKey": 0, "unwrapKey": 0}
	for series, v := range metrics(b, d) {
		if op, ok := strings.CutPrefix(series, `pgflex_key_store_calls_total{op="`); ok {
			out[strings.TrimSuffix(op, `"}`)] = v
		}
	}
	return out
}
