package flexserver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
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
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		b.Skip("needs root and /dev/fuse to run servers")
	}
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

	var revoke, restore, rotate []time.Duration
	for i := 0; i < trials; i++ {
		// Revocation: disable the key, time until a connection is refused.
		start := time.Now()
		k.setAttributes("dek", "", map[string]any{"enabled": false})
		for {
			c, err := connect(b, d, srv, "postgres")
			if err != nil {
				break
			}
			c.Close(context.Background())
			time.Sleep(20 * time.Millisecond)
		}
		revoke = append(revoke, time.Since(start))
		// Restore: enable, time until Ready and a query succeeds.
		start = time.Now()
		k.setAttributes("dek", "", map[string]any{"enabled": true})
		for {
			if c, err := connect(b, d, srv, "postgres"); err == nil {
				var one int
				err = c.QueryRow(context.Background(), "SELECT 1").Scan(&one)
				c.Close(context.Background())
				if err == nil {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		restore = append(restore, time.Since(start))
		// Rotation: time until the server's DEK is wrapped by the new version.
		start = time.Now()
		nk := k.rotate("dek")
		want := nk[strings.LastIndex(nk, "/")+1:]
		for versionInUse(b, d, "rg", "bench") != want {
			time.Sleep(20 * time.Millisecond)
		}
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

	// Steady state: key-store calls per server per hour, from the monitor's own counters.
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
	r := d.Do(b, http.MethodGet, "/metrics", "", nil)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.Raw))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "pgflex_key_store_calls_total{") {
			continue
		}
		op := line[strings.Index(line, `op="`)+4:]
		op = op[:strings.Index(op, `"`)]
		v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		out[op] = v
	}
	for _, op := range []string{"get", "wrapKey", "unwrapKey"} {
		if _, ok := out[op]; !ok {
			out[op] = 0
		}
	}
	return out
}
