package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
)

// result is one layer's figures in one round.
type result struct {
	load      time.Duration // pgbench -i
	tps       float64       // TPC-B
	flush     time.Duration // fsync of every file after the load: the writeback it left to the kernel
	selectTPS float64       // select-only, small shared_buffers, from a cold page cache
	warmTPS   float64       // select-only again, every file read once through the layer first
	progress  []float64     // cold select-only TPS per sixth of the run
	// checkpoints started by time or WAL volume (not shutdown) during the
	// load and TPC-B: the only ones checkpoint spacing could remove.
	checkpoints int
	syncLat     time.Duration // median 8 KiB overwrite + fdatasync in the layer, before initdb
	// What the layer had to encrypt and write: the database's size and the
	// WAL written by the load, and WAL bytes per TPC-B transaction.
	dbBytes, loadWAL, walPerTx float64
}

func (r result) String() string {
	p := make([]string, len(r.progress))
	for i, v := range r.progress {
		p[i] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	return fmt.Sprintf("load %5.2fs+flush %5.2fs  tpc-b %7.1f tps  select-only cold %7.1f tps (%s) warm %7.1f tps  8KiB write+fdatasync %4.0fµs  checkpoints %d  db %.0fMiB load WAL %.0fMiB TPC-B WAL %.1fKiB/tx",
		r.load.Seconds(), r.flush.Seconds(), r.tps, r.selectTPS, strings.Join(p, " "), r.warmTPS, float64(r.syncLat.Nanoseconds())/1e3, r.checkpoints,
		r.dbBytes/(1<<20), r.loadWAL/(1<<20), r.walPerTx/(1<<10))
}

// resetWorkDir empties the scratch directory, refusing to delete through a
// mount (a mount left by an interrupted run must be looked at, not erased).
func resetWorkDir(dir string) error {
	if err := refuseMounts(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	return os.Chmod(dir, 0o711)
}

// cleanWorkDir leaves no scratch data behind.
func cleanWorkDir(dir string) error {
	if err := refuseMounts(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// refuseMounts reports an error if anything is mounted at or below dir.
func refuseMounts(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return fmt.Errorf("%s is still mounted (left by an earlier run?); unmount it first", mp)
		}
	}
	return nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space etc.).
func unescapeMount(s string) string {
	return regexp.MustCompile(`\\[0-7]{3}`).ReplaceAllStringFunc(s, func(e string) string {
		n, _ := strconv.ParseUint(e[1:], 8, 8)
		return string(rune(n))
	})
}

// oneRun builds a fresh server on a fresh layer, loads it, makes the load
// durable, runs TPC-B, then restarts it with small shared_buffers and runs
// select-only from a cold and from a warm page cache, then tears everything
// down.
func oneRun(ctx context.Context, c config, user osuser.User, l layer, v variant, log *slog.Logger) (res result, err error) {
	dir := filepath.Join(c.workDir, l.name)
	if err := resetWorkDir(dir); err != nil {
		return res, err
	}
	parent, closeLayer, err := l.open(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if cerr := closeLayer(cctx); cerr != nil {
			err = errors.Join(err, cerr)
		} else {
			err = errors.Join(err, cleanWorkDir(dir))
		}
	}()
	if res.syncLat, err = syncLatency(ctx, parent); err != nil {
		return res, err
	}
	dataDir := filepath.Join(parent, "pgdata")
	if err := postgres.InitDB(ctx, postgres.InitOptions{DataDir: dataDir, User: user}); err != nil {
		return res, err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return res, err
	}
	if err := postgres.InstallServerCertificate(ctx, dataDir, user, certPEM, keyPEM); err != nil {
		return res, err
	}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	s := withPort(c.settings, port, filepath.Join(c.workDir, "run"))
	if err := os.MkdirAll(s.SocketDir, 0o755); err != nil {
		return res, err
	}
	if err := postgres.WriteConfig(ctx, dataDir, user, s); err != nil {
		return res, err
	}
	if err := postgres.WriteUserConfig(ctx, dataDir, user, v.params); err != nil {
		return res, err
	}
	inst := &postgres.Instance{DataDir: dataDir, User: user, Port: port, SocketDir: s.SocketDir, Logger: log}
	if err := inst.Start(ctx); err != nil {
		return res, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if serr := inst.Stop(sctx, postgres.StopFast); serr != nil {
			_ = inst.Stop(sctx, postgres.StopImmediate)
			err = errors.Join(err, serr)
		}
	}()

	// pgbench connects over the Unix socket as the service superuser
	// (peer authentication as root), keeping TLS out of the measurement.
	base := []string{"-h", s.SocketDir, "-p", strconv.Itoa(port), "-U", postgres.DefaultSuperuser}
	start := time.Now()
	if _, err := pgbench(ctx, append(slices.Clone(base), "-i", "-q", "-s", strconv.Itoa(c.scale), "postgres")...); err != nil {
		return res, err
	}
	res.load = time.Since(start)
	// What the load left in the page cache the kernel writes back (and
	// fscrypt encrypts) later; made durable here, timed apart, so that it
	// neither hides from the load's figure nor runs into TPC-B's.
	start = time.Now()
	if err := syncFiles(dataDir, false); err != nil {
		return res, err
	}
	res.flush = time.Since(start)
	if c.checkpoint {
		if _, err := queryFloat(ctx, inst, "checkpoint"); err != nil {
			return res, err
		}
	}
	w0, err := walBytes(ctx, inst)
	if err != nil {
		return res, err
	}
	res.loadWAL = w0
	if res.tps, _, err = pgbenchTPS(ctx, c, base, c.duration); err != nil {
		return res, err
	}
	w1, err := walBytes(ctx, inst)
	if err != nil {
		return res, err
	}
	res.walPerTx = (w1 - w0) / (res.tps * c.duration.Seconds())
	if res.dbBytes, err = queryFloat(ctx, inst, "select pg_database_size('postgres')::float8"); err != nil {
		return res, err
	}
	if res.checkpoints, err = countCheckpoints(filepath.Join(dataDir, "log")); err != nil {
		return res, err
	}

	// Select-only: shared_buffers too small for the data, so most reads
	// go to the kernel. First from a cold page cache for this layer's
	// files (every page read is read from the disk and decrypted), then
	// with every file read once through the layer (the kernel's cache
	// holds the plaintext, as on a server that has run for a while).
	if err := inst.Stop(ctx, postgres.StopFast); err != nil {
		return res, err
	}
	s.SharedBuffers = c.selectSB
	if err := postgres.WriteConfig(ctx, dataDir, user, s); err != nil {
		return res, err
	}
	if err := syncFiles(dir, true); err != nil {
		return res, err
	}
	if err := inst.Start(ctx); err != nil {
		return res, err
	}
	if res.selectTPS, res.progress, err = pgbenchTPS(ctx, c, append(slices.Clone(base), "-S"), c.selectDuration); err != nil {
		return res, err
	}
	if err := readFiles(dataDir); err != nil {
		return res, err
	}
	if res.warmTPS, _, err = pgbenchTPS(ctx, c, append(slices.Clone(base), "-S"), c.warmDuration); err != nil {
		return res, err
	}
	return res, nil
}

// walBytes is the WAL the server has written since it was made (pg_stat_wal
// is kept across clean restarts).
func walBytes(ctx context.Context, inst *postgres.Instance) (float64, error) {
	return queryFloat(ctx, inst, "select wal_bytes::float8 from pg_stat_wal")
}

// queryFloat runs sql as the superuser and returns its one float8, or
// nothing for a statement that returns no row (CHECKPOINT).
func queryFloat(ctx context.Context, inst *postgres.Instance, sql string) (float64, error) {
	conn, err := inst.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if !strings.HasPrefix(sql, "select") {
		_, err := conn.Exec(ctx, sql)
		return 0, err
	}
	var v float64
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		return 0, fmt.Errorf("%s: %w", sql, err)
	}
	return v, nil
}

var checkpointRE = regexp.MustCompile(`(?m)checkpoint starting: [a-z ]*\b(time|wal)\b`)

// countCheckpoints counts the checkpoints the server's log (log_checkpoints
// is on) says were started by checkpoint_timeout or max_wal_size.
func countCheckpoints(logDir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(logDir, "*.log"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		n += len(checkpointRE.FindAll(b, -1))
	}
	return n, nil
}

var (
	tpsRE      = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	progressRE = regexp.MustCompile(`(?m)^progress: [0-9.]+ s, ([0-9.]+) tps`)
)

// pgbenchTPS runs pgbench for d and returns its TPS and the TPS of each of
// six progress intervals.
func pgbenchTPS(ctx context.Context, c config, base []string, d time.Duration) (float64, []float64, error) {
	secs := max(1, int(d.Seconds()))
	out, err := pgbench(ctx, append(slices.Clone(base), "-c", strconv.Itoa(c.clients), "-j", strconv.Itoa(c.jobs),
		"-T", strconv.Itoa(secs), "-P", strconv.Itoa(max(1, secs/6)), "postgres")...)
	if err != nil {
		return 0, nil, err
	}
	m := tpsRE.FindSubmatch(out)
	if m == nil {
		return 0, nil, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	var progress []float64
	for _, p := range progressRE.FindAllSubmatch(out, -1) {
		v, perr := strconv.ParseFloat(string(p[1]), 64)
		if perr != nil {
			return 0, nil, perr
		}
		progress = append(progress, v)
	}
	return tps, progress, err
}

func pgbench(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(postgres.DefaultBinDir, "pgbench"), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pgbench %v: %w\n%s", args, err, out.Bytes())
	}
	return out.Bytes(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncFiles fsyncs every file under dir and, if drop, evicts it from the
// page cache (POSIX_FADV_DONTNEED): for a layer's directory, the plaintext
// through its mount and the ciphertext or image beneath. Dropping is scoped
// to this benchmark's files on purpose: the machine is shared, and a global
// drop_caches would slow (and distort the measurements of) everyone else.
// What stays cached is metadata (inodes, dentries), as on a server that has
// been up for a while.
func syncFiles(dir string, drop bool) error {
	return eachFile(dir, func(path string, f *os.File) error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", path, err)
		}
		if !drop {
			return nil
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("fadvise %s: %w", path, err)
		}
		return nil
	})
}

// readFiles reads every file under dir once, so that the page cache holds
// them.
func readFiles(dir string) error {
	buf := make([]byte, 1<<20)
	return eachFile(dir, func(path string, f *os.File) error {
		for {
			if _, err := f.Read(buf); err == io.EOF {
				return nil
			} else if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
		}
	})
}

// eachFile opens every regular file under dir read-only and calls fn. A
// file the running server removed meanwhile (pg_internal.init, temporary
// files) is skipped.
func eachFile(dir string, fn func(path string, f *os.File) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		return fn(path, f)
	})
}

// syncLatency is the median time of an 8 KiB overwrite + fdatasync in dir:
// what one commit's WAL flush costs at least on this layer (PostgreSQL
// overwrites zero-filled WAL segments, as wal_init_zero=on makes them).
func syncLatency(ctx context.Context, dir string) (time.Duration, error) {
	const page, pages = 8 << 10, 400
	path := filepath.Join(dir, "synclat")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, page)
	if _, err := f.Write(make([]byte, page*pages)); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	lat := make([]time.Duration, 0, pages)
	for i := 0; i < pages; i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		buf[0] = byte(i + 1)
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*page); err != nil {
			return 0, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(t))
	}
	return median(lat), nil
}

// median of v; of an even count, the mean of the middle two.
func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}
