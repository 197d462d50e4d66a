package pgrouter

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/testkit"
)

// The benchmarks measure what the router costs against connecting the server's own port
// directly, in the same run: each iteration does both, alternating which goes first, and the
// results are reported side by side with their ratio. Both sides use the same host name (for
// SNI and verification) and dial 127.0.0.1, so name resolution is not part of either figure.
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/pgrouter

// benchSides are the two ways to reach server alpha.
func benchSides(b *testing.B) (f *fixture, direct, routed int) {
	f = requireServers(b)
	rn := startRouter(b, f, Config{})
	_, p, _ := net.SplitHostPort(f.servers["alpha"].addr)
	direct, _ = strconv.Atoi(p)
	return f, direct, rn.port
}

func loopback(ctx context.Context, host string) ([]string, error) { return []string{"127.0.0.1"}, nil }

// timed runs fn for the direct and the routed side in alternating order and adds each one's
// duration to its total.
func timed(b *testing.B, i int, direct, routed func() error, dt, rt *time.Duration) {
	sides := []struct {
		fn  func() error
		sum *time.Duration
	}{{direct, dt}, {routed, rt}}
	if i%2 == 1 {
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, s := range sides {
		start := time.Now()
		if err := s.fn(); err != nil {
			b.Fatal(err)
		}
		*s.sum += time.Since(start)
	}
}

func report(b *testing.B, unit string, direct, routed time.Duration, n int) {
	dm := float64(direct.Microseconds()) / 1000 / float64(n)
	rm := float64(routed.Microseconds()) / 1000 / float64(n)
	b.ReportMetric(dm, "direct-"+unit)
	b.ReportMetric(rm, "router-"+unit)
	b.ReportMetric(rm/dm, "router/direct")
}

// BenchmarkConnectPgx: connect (TCP, SSLRequest, TLS 1.3, SCRAM), SELECT 1, close, with pgx and
// sslmode=require.
func BenchmarkConnectPgx(b *testing.B) {
	f, direct, routed := benchSides(b)
	ctx := context.Background()
	once := func(port int) func() error {
		cfg := f.pgxConfig(b, host("alpha"), port, "require")
		cfg.LookupFunc = loopback
		return func() error {
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return err
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				return err
			}
			return conn.Close(ctx)
		}
	}
	var dt, rt time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timed(b, i, once(direct), once(routed), &dt, &rt)
	}
	report(b, "ms/conn", dt, rt, b.N)
}

// BenchmarkConnectPsql: psql -c 'SELECT 1' with sslmode=require (a process per connection, as
// a user or a script runs it).
func BenchmarkConnectPsql(b *testing.B) {
	testkit.Require(b, testkit.PSQL)
	_, direct, routed := benchSides(b)
	once := func(port int) func() error {
		conninfo := fmt.Sprintf("host=%s hostaddr=127.0.0.1 port=%d user=%s dbname=postgres sslmode=require", host("alpha"), port, testAdmin)
		return func() error {
			cmd := exec.Command("psql", conninfo, "-X", "-A", "-t", "-c", "SELECT 1")
			cmd.Env = append(cmd.Environ(), "PGPASSWORD="+testPassword)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "1" {
				return fmt.Errorf("psql: %v %s", err, out)
			}
			return nil
		}
	}
	var dt, rt time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timed(b, i, once(direct), once(routed), &dt, &rt)
	}
	report(b, "ms/conn", dt, rt, b.N)
}

// copyBytes is how much each COPY moves.
const copyBytes = 64 << 20

// BenchmarkCopy: a bulk COPY through the splice against the same COPY direct, each way: out
// (COPY ... TO STDOUT, the server sending) and in (COPY ... FROM STDIN, the client sending), on
// one open connection per side, so that only the data path is measured.
func BenchmarkCopy(b *testing.B) {
	f, direct, routed := benchSides(b)
	ctx := context.Background()
	conns := map[int]*pgx.Conn{}
	for _, port := range []int{direct, routed} {
		cfg := f.pgxConfig(b, host("alpha"), port, "require")
		cfg.LookupFunc = loopback
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TEMP TABLE sink (line text)"); err != nil {
			b.Fatal(err)
		}
		conns[port] = conn
	}
	line := strings.Repeat("x", 1023) + "\n"
	rows := copyBytes / len(line)
	out := func(port int) func() error {
		return func() error {
			tag, err := conns[port].PgConn().CopyTo(ctx, io.Discard,
				fmt.Sprintf("COPY (SELECT repeat('x', 1023) FROM generate_series(1, %d)) TO STDOUT", rows))
			if err == nil && tag.RowsAffected() != int64(rows) {
				err = fmt.Errorf("copied %d rows", tag.RowsAffected())
			}
			return err
		}
	}
	in := func(port int) func() error {
		return func() error {
			pr, pw := io.Pipe()
			go func() {
				for range rows {
					if _, err := io.WriteString(pw, line); err != nil {
						return
					}
				}
				pw.Close()
			}()
			_, err := conns[port].PgConn().CopyFrom(ctx, pr, "COPY sink FROM STDIN")
			pr.Close()
			if err == nil {
				_, err = conns[port].Exec(ctx, "TRUNCATE sink")
			}
			return err
		}
	}
	for _, dir := range []struct {
		name string
		fn   func(int) func() error
	}{{"out", out}, {"in", in}} {
		b.Run(dir.name, func(b *testing.B) {
			var dt, rt time.Duration
			b.SetBytes(2 * copyBytes)
			for i := 0; i < b.N; i++ {
				timed(b, i, dir.fn(direct), dir.fn(routed), &dt, &rt)
			}
			mb := float64(copyBytes) / (1 << 20) * float64(b.N)
			b.ReportMetric(mb/dt.Seconds(), "direct-MB/s")
			b.ReportMetric(mb/rt.Seconds(), "router-MB/s")
			b.ReportMetric(dt.Seconds()/rt.Seconds(), "router/direct-throughput")
		})
	}
}
