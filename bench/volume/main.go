// Command volume measures what the encrypted volume costs PostgreSQL: pgbench
// TPC-B throughput and `pgbench -i` load time with the data directory inside
// an encrypted volume, against the same server on a plain directory of the
// same disk, interleaved over several rounds. See bench/README.md.
//
// It builds both servers with pgflex's own packages (internal/volume,
// internal/postgres) and their default options, so what it measures is what
// the service runs; flags override single options to try alternatives.
//
//	go run ./bench/volume                 # 3 rounds, 60 s runs
//	go run ./bench/volume -duration 15s   # quick
//
// It must run as root (mounts, and PostgreSQL runs as an unprivileged user).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/volume"
)

type config struct {
	duration time.Duration
	rounds   int
	scale    int
	clients  int
	jobs     int
	workDir  string
	gc       volume.GocryptfsOptions
	settings postgres.Settings
}

type result struct {
	load time.Duration
	tps  float64
}

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "pgbench TPC-B run length")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds (plain, encrypted)")
	flag.IntVar(&c.scale, "scale", 20, "pgbench -i scale")
	flag.IntVar(&c.clients, "clients", 4, "pgbench -c")
	flag.IntVar(&c.jobs, "jobs", 2, "pgbench -j")
	flag.StringVar(&c.workDir, "workdir", "/var/tmp/pgflex-bench", "scratch directory on the disk under test (emptied)")
	flag.BoolVar(&c.gc.XChaCha, "gocryptfs-xchacha", false, "gocryptfs: XChaCha20-Poly1305 instead of AES-GCM")
	flag.BoolVar(&c.gc.Prealloc, "gocryptfs-prealloc", false, "gocryptfs: keep preallocation")
	flag.BoolVar(&c.gc.NoKernelCache, "gocryptfs-no-kernel-cache", false, "gocryptfs: no -kernel_cache")
	flag.StringVar(&c.settings.WALSyncMethod, "wal-sync-method", "", "override wal_sync_method")
	flag.DurationVar(&c.settings.CommitDelay, "commit-delay", 0, "override commit_delay")
	flag.IntVar(&c.settings.CommitSiblings, "commit-siblings", 0, "override commit_siblings")
	sb := flag.Int("shared-buffers-mb", 0, "override shared_buffers (MB)")
	wb := flag.Int("wal-buffers-mb", 0, "override wal_buffers (MB)")
	flag.BoolVar(&c.settings.SkipWALInitZero, "skip-wal-init-zero", false, "wal_init_zero=off (unsafe with -noprealloc, for measurement)")
	flag.Parse()
	c.settings.SharedBuffers = postgres.Size(*sb) * postgres.MB
	c.settings.WALBuffers = postgres.Size(*wb) * postgres.MB

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root")
	}
	// One account for the benchmark's servers (the daemon gives each server its own).
	user, err := osuser.Ensure(ctx, "pgflex-bench", osuser.Options{Comment: "pgflex benchmark"})
	if err != nil {
		return err
	}
	fmt.Printf("config: duration=%s rounds=%d scale=%d clients=%d jobs=%d\n", c.duration, c.rounds, c.scale, c.clients, c.jobs)
	fmt.Printf("gocryptfs: init %v, mount %v\n", c.gc.InitArgs(), c.gc.MountArgs())
	conf, _ := withPort(c.settings, 1, "/x").PostgresqlConf()
	fmt.Printf("postgresql.conf (tuning):\n%s\n", grepConf(conf, "shared_buffers|wal_|commit_|checkpoint_|max_wal|min_wal|fsync|full_page|synchronous_commit|maintenance"))

	var plain, enc []result
	for r := 0; r < c.rounds; r++ {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, encrypted := range order {
			res, err := oneRun(ctx, c, user, encrypted, log)
			if err != nil {
				return fmt.Errorf("round %d encrypted=%v: %w", r+1, encrypted, err)
			}
			name := "plain"
			if encrypted {
				name = "encrypted"
				enc = append(enc, res)
			} else {
				plain = append(plain, res)
			}
			fmt.Printf("round %d %-9s load %6.2fs  tps %8.1f\n", r+1, name, res.load.Seconds(), res.tps)
		}
	}
	// Leave no scratch data behind, but never delete through a mount.
	if st, err := (&volume.Volume{Dir: filepath.Join(c.workDir, "vol")}).Status(ctx); err == nil && st == volume.NotMounted {
		if err := os.RemoveAll(c.workDir); err != nil {
			return err
		}
	}
	var tpsRatio, loadRatio []float64
	for i := range plain {
		tpsRatio = append(tpsRatio, enc[i].tps/plain[i].tps)
		loadRatio = append(loadRatio, enc[i].load.Seconds()/plain[i].load.Seconds())
	}
	report := func(name string, v []float64, target string) {
		s := slices.Clone(v)
		slices.Sort(s)
		fmt.Printf("%s ratio (encrypted/plain): median %.2f, range %.2f-%.2f  (target %s)\n", name, s[len(s)/2], s[0], s[len(s)-1], target)
	}
	report("TPS ", tpsRatio, ">= 0.90")
	report("load", loadRatio, "<= 1.5")
	return nil
}

func withPort(s postgres.Settings, port int, socketDir string) postgres.Settings {
	s.Port, s.SocketDir = port, socketDir
	return s
}

func grepConf(conf []byte, pattern string) string {
	re := regexp.MustCompile(`^(` + pattern + `)`)
	var out []string
	for _, l := range strings.Split(string(conf), "\n") {
		if re.MatchString(l) {
			out = append(out, "  "+l)
		}
	}
	return strings.Join(out, "\n")
}

// oneRun builds a fresh server (in a fresh volume when encrypted), loads it
// and runs TPC-B, then tears everything down.
func oneRun(ctx context.Context, c config, user osuser.User, encrypted bool, log *slog.Logger) (res result, err error) {
	if err := os.RemoveAll(c.workDir); err != nil {
		return res, err
	}
	if err := os.MkdirAll(c.workDir, 0o711); err != nil {
		return res, err
	}
	if err := os.Chmod(c.workDir, 0o711); err != nil {
		return res, err
	}
	parent := filepath.Join(c.workDir, "plain")
	if encrypted {
		key := make([]byte, volume.KeySize)
		if _, err := rand.Read(key); err != nil {
			return res, err
		}
		defer clear(key)
		vol := &volume.Volume{Dir: filepath.Join(c.workDir, "vol"), Layer: &volume.Gocryptfs{Options: c.gc, Logger: log}, Logger: log}
		if err := vol.Create(ctx, key); err != nil {
			return res, err
		}
		if err := vol.Mount(ctx, key); err != nil {
			return res, err
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if uerr := vol.Unmount(uctx); uerr != nil && err == nil {
				err = uerr
			}
		}()
		parent = vol.MountDir()
	} else if err := os.Mkdir(parent, 0o711); err != nil {
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
	if err := postgres.WriteConfig(ctx, dataDir, user, s); err != nil {
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
			if err == nil {
				err = serr
			}
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
	out, err := pgbench(ctx, append(slices.Clone(base), "-c", strconv.Itoa(c.clients), "-j", strconv.Itoa(c.jobs),
		"-T", strconv.Itoa(int(c.duration.Seconds())), "postgres")...)
	if err != nil {
		return res, err
	}
	m := regexp.MustCompile(`(?m)^tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	res.tps, err = strconv.ParseFloat(string(m[1]), 64)
	return res, err
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
