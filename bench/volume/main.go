// Command volume measures what each storage layer of a server's data
// directory costs PostgreSQL, against a plain directory of the same disk, in
// one run: the kernel's filesystem encryption (fscrypt on an ext4 image on a
// loop device), gocryptfs (FUSE), an optional second gocryptfs build, and the
// same loop-device ext4 image without encryption (the ceiling any image-based
// layer can reach here). Per layer it times `pgbench -i`, runs TPC-B and
// select-only with small shared_buffers, and measures one 8 KiB
// write+fdatasync; once per round it measures what the kernel's cipher costs
// per 8 KiB page. Rounds are interleaved, the order rotated each round, and
// every figure is reported as a ratio to plain in the same round (median and
// range). See bench/README.md.
//
// The servers are built with pgflex's own packages (internal/volume,
// internal/postgres) and their default options, so what it measures is what
// the service runs; flags override single options, and -pg-variant runs
// every layer again with other PostgreSQL parameters.
//
//	go run ./bench/volume                                   # every layer, 3 rounds of 30 s
//	go run ./bench/volume -duration 10s -rounds 1 -layers plain,fscrypt
//
// It must run as root (mounts, loop devices, and PostgreSQL runs as an
// unprivileged user).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/volume"
)

type config struct {
	duration       time.Duration // TPC-B
	selectDuration time.Duration // select-only, cold page cache
	warmDuration   time.Duration // select-only, warm page cache
	rounds         int
	scale          int
	clients        int
	jobs           int
	workDir        string
	layers         []string
	volumeSize     int64 // bytes, for layers with a size of their own (loop, fscrypt)
	gc             volume.GocryptfsOptions
	gcwbBin        string
	settings       postgres.Settings
	selectSB       postgres.Size // shared_buffers for select-only
	variants       []variant
	cipherMiB      int
	cipherOnly     bool
	checkpoint     bool // CHECKPOINT between load and TPC-B
}

// variant is a set of PostgreSQL parameters every layer runs with, written as
// the server's user configuration (postgres.WriteUserConfig, included last in
// postgresql.conf, so it wins over pgflex's defaults).
type variant struct {
	name   string
	params map[string]string
}

// variantFlag collects -pg-variant NAME:param=value,param=value.
type variantFlag struct{ v *[]variant }

func (f variantFlag) String() string { return "" }

func (f variantFlag) Set(s string) error {
	name, list, ok := strings.Cut(s, ":")
	if !ok || name == "" || name == "default" {
		return fmt.Errorf("want NAME:param=value[,param=value...], NAME not \"default\"; got %q", s)
	}
	v := variant{name: name, params: map[string]string{}}
	for _, kv := range strings.Split(list, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want param=value in %q", kv)
		}
		v.params[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	if _, err := postgres.RenderUserConfig(v.params); err != nil {
		return err
	}
	*f.v = append(*f.v, v)
	return nil
}

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "pgbench TPC-B run length")
	flag.DurationVar(&c.selectDuration, "select-duration", 0, "pgbench select-only run length from a cold page cache (default: -duration)")
	flag.DurationVar(&c.warmDuration, "warm-duration", 10*time.Second, "pgbench select-only run length with the page cache warm")
	flag.IntVar(&c.rounds, "rounds", 3, "interleaved rounds")
	flag.IntVar(&c.scale, "scale", 20, "pgbench -i scale")
	flag.IntVar(&c.clients, "clients", 4, "pgbench -c")
	flag.IntVar(&c.jobs, "jobs", 2, "pgbench -j")
	flag.StringVar(&c.workDir, "workdir", "/var/tmp/pgflex-bench", "scratch directory on the disk under test (emptied)")
	layers := flag.String("layers", "", "comma-separated layers to measure, of "+strings.Join(layerNames(), ",")+
		" (default: all but gocryptfs-wbc, which is added when -gocryptfs-wbc-bin is set); plain is always measured")
	sizeGB := flag.Int64("volume-size-gb", 16, "size of the loop and fscrypt images (GiB)")
	flag.StringVar(&c.gcwbBin, "gocryptfs-wbc-bin", "", "gocryptfs binary for the gocryptfs-wbc layer (a build with FUSE writeback cache)")
	flag.BoolVar(&c.gc.XChaCha, "gocryptfs-xchacha", false, "gocryptfs: XChaCha20-Poly1305 instead of AES-GCM")
	flag.BoolVar(&c.gc.Prealloc, "gocryptfs-prealloc", false, "gocryptfs: keep preallocation")
	flag.BoolVar(&c.gc.NoKernelCache, "gocryptfs-no-kernel-cache", false, "gocryptfs: no -kernel_cache")
	flag.StringVar(&c.settings.WALSyncMethod, "wal-sync-method", "", "override wal_sync_method")
	flag.DurationVar(&c.settings.CommitDelay, "commit-delay", 0, "override commit_delay")
	flag.IntVar(&c.settings.CommitSiblings, "commit-siblings", 0, "override commit_siblings")
	flag.DurationVar(&c.settings.CheckpointTimeout, "checkpoint-timeout", 0, "override checkpoint_timeout")
	sb := flag.Int("shared-buffers-mb", 0, "override shared_buffers (MB) for load and TPC-B")
	selSB := flag.Int("select-shared-buffers-mb", 16, "shared_buffers (MB) for select-only, small so that reads go past it")
	wb := flag.Int("wal-buffers-mb", 0, "override wal_buffers (MB)")
	maxWAL := flag.Int("max-wal-size-mb", 0, "override max_wal_size (MB)")
	flag.BoolVar(&c.settings.SkipWALInitZero, "skip-wal-init-zero", false, "wal_init_zero=off (unsafe with -noprealloc, for measurement)")
	flag.Var(variantFlag{&c.variants}, "pg-variant", "NAME:param=value,... — also run every layer with these PostgreSQL parameters (repeatable)")
	flag.IntVar(&c.cipherMiB, "cipher-mib", 64, "MiB written and read per cipher-cost sample (0: skip)")
	flag.BoolVar(&c.checkpoint, "checkpoint-before-tpcb", false, "CHECKPOINT after the load, so that TPC-B writes full-page images as a server between checkpoints does")
	flag.BoolVar(&c.cipherOnly, "cipher-only", false, "measure only the cipher cost per page")
	flag.Parse()
	c.settings.SharedBuffers = postgres.Size(*sb) * postgres.MB
	c.settings.WALBuffers = postgres.Size(*wb) * postgres.MB
	c.settings.MaxWALSize = postgres.Size(*maxWAL) * postgres.MB
	c.selectSB = postgres.Size(*selSB) * postgres.MB
	c.volumeSize = *sizeGB << 30
	if c.selectDuration == 0 {
		c.selectDuration = c.duration
	}
	c.variants = append([]variant{{name: "default"}}, c.variants...)
	var err error
	if c.layers, err = chooseLayers(*layers, c.gcwbBin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	if os.Getenv(nsEnv) == "" {
		os.Exit(inOwnMountNamespace())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log) // volume.ProbeHost logs through the default logger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// nsEnv marks the benchmark re-executed in its own mount namespace.
const nsEnv = "PGFLEX_BENCH_MOUNT_NS"

// inOwnMountNamespace runs this program again in a mount namespace of its
// own (Go makes its mounts private: nothing propagates back) and returns
// its exit code. The machine is shared: a process that makes its own
// mount namespace while the benchmark has a volume mounted (a sandboxed
// PostgreSQL of a test suite) would keep a copy of that mount, holding the
// loop device and the tmpfs under it after the benchmark unmounted them.
// In a namespace of its own the benchmark's mounts are seen by its own
// processes only, and go when they end.
func inOwnMountNamespace() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: own mount namespace:", err)
		return 1
	}
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s) // the child cleans up and exits
		}
	}()
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// chooseLayers parses -layers: known names, no repeats, plain first.
func chooseLayers(s, gcwbBin string) ([]string, error) {
	var names []string
	if s == "" {
		names = []string{"plain", "loop", "fscrypt", "gocryptfs"}
		if gcwbBin != "" {
			names = append(names, "gocryptfs-wbc")
		}
	} else {
		for _, n := range strings.Split(s, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(layerNames(), n) {
				return nil, fmt.Errorf("unknown layer %q (have %s)", n, strings.Join(layerNames(), ", "))
			}
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if slices.Contains(names, "gocryptfs-wbc") && gcwbBin == "" {
		return nil, errors.New("layer gocryptfs-wbc needs -gocryptfs-wbc-bin")
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "plain" })
	return append([]string{"plain"}, names...), nil
}

// cell is one layer run with one variant of the PostgreSQL parameters.
type cell struct {
	layer   string
	variant int
}

func run(ctx context.Context, c config, log *slog.Logger) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root")
	}
	// One account for the benchmark's servers (the daemon gives each server its own).
	user, err := osuser.Ensure(ctx, "pgflex-bench", osuser.Options{Comment: "pgflex benchmark"})
	if err != nil {
		return err
	}
	if err := resetWorkDir(c.workDir); err != nil {
		return err
	}
	// Leave no scratch data behind, also after an error or Ctrl-C (every
	// layer has been unmounted by then; a mount left is refused, not erased).
	defer func() { err = errors.Join(err, cleanWorkDir(c.workDir)) }()
	host := hostFacts(ctx, c)
	fmt.Print(host.markdown())
	fmt.Printf("\nconfig: layers=%s duration=%s select-duration=%s warm-duration=%s rounds=%d scale=%d clients=%d jobs=%d volume-size=%dGiB select shared_buffers=%dMB checkpoint-before-tpcb=%v\n",
		strings.Join(c.layers, ","), c.duration, c.selectDuration, c.warmDuration, c.rounds, c.scale, c.clients, c.jobs, c.volumeSize>>30, c.selectSB/postgres.MB, c.checkpoint)
	fmt.Printf("gocryptfs: init %v, mount %v\n", c.gc.InitArgs(), c.gc.MountArgs())
	conf, _ := withPort(c.settings, 1, "/x").PostgresqlConf()
	fmt.Printf("postgresql.conf (tuning):\n%s\n", grepConf(conf, "shared_buffers|wal_|commit_|checkpoint_|max_wal|min_wal|fsync|full_page|synchronous_commit|maintenance"))
	for _, v := range c.variants[1:] {
		fmt.Printf("variant %s: %v\n", v.name, v.params)
	}

	catalog := layerCatalog(c, log)
	var cells []cell
	for vi := range c.variants {
		for _, l := range c.layers {
			cells = append(cells, cell{l, vi})
		}
	}
	results := map[cell][]result{}
	var ciphers []cipherResult
	for r := 0; r < c.rounds; r++ {
		if c.cipherMiB > 0 {
			cr, err := measureCipher(ctx, c.workDir, c.cipherMiB, log)
			if err != nil {
				return fmt.Errorf("round %d cipher cost: %w", r+1, err)
			}
			ciphers = append(ciphers, cr)
			fmt.Printf("round %d cipher: %s\n", r+1, cr)
		}
		// Rotate the order each round, the starts spread evenly over the
		// cells, so that no layer always runs first or in the same part
		// of the run (the machine's load drifts).
		k := r * len(cells) / c.rounds % len(cells)
		order := append(slices.Clone(cells[k:]), cells[:k]...)
		if c.cipherOnly {
			continue
		}
		for _, cl := range order {
			t := time.Now()
			res, err := oneRun(ctx, c, user, catalog[cl.layer], c.variants[cl.variant], log)
			if err != nil {
				return fmt.Errorf("round %d %s/%s: %w", r+1, cl.layer, c.variants[cl.variant].name, err)
			}
			results[cl] = append(results[cl], res)
			fmt.Printf("round %d %-14s %-10s %s  (%.0fs)\n", r+1, cl.layer, c.variants[cl.variant].name, res, time.Since(t).Seconds())
		}
	}
	fmt.Println()
	fmt.Print(host.markdown())
	fmt.Println()
	if c.cipherOnly {
		fmt.Print(cipherTable(ciphers))
		return nil
	}
	fmt.Print(report(c, results, ciphers))
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
