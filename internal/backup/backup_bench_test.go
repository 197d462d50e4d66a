package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/postgres"
)

// benchScales are the pgbench scales measured; PGFLEX_BENCH_SCALES
// overrides ("10,50" by default: about 160 MB and 750 MB).
func benchScales(b *testing.B) []int {
	spec := os.Getenv("PGFLEX_BENCH_SCALES")
	if spec == "" {
		spec = "10,50"
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("PGFLEX_BENCH_SCALES: %q", spec)
		}
		out = append(out, n)
	}
	return out
}

// newBenchSource is a server whose stanza has an encrypted repository 1
// and an unencrypted repository 2 (the baseline), loaded by pgbench -i.
func newBenchSource(b *testing.B, e *testEnv, scale int, tuning Tuning) *testServer {
	b.Helper()
	src := e.newSourceWith(b, func(s *Stanza) {
		s.Repos = append(s.Repos, Repo{Index: RepoGeo, Path: RepoPath(e.regionRoot("plain"), s.Name), plaintext: true})
		s.Tuning = tuning
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", src.inst.SocketDir, "-p", strconv.Itoa(src.inst.Port), "-U", postgres.DefaultSuperuser, "postgres")
	cmd.Env = baseEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v: %s", err, out)
	}
	if err := src.stanza.Check(ctx, src.pp); err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkBackupRestore measures full backup throughput and restore time
// against database size, for an encrypted repository (aes-256-cbc) and an
// unencrypted one, interleaved on the same server in the same run (backups
// in ABBA order after a warm-up, restores alternating); the ratio
// enc/plain of throughput is the cost of encryption (target ≥ 0.85).
// Throughput is the database size over the whole Backup call (checkpoint,
// copy, waiting for the WAL to be archived); restore time is Restore's
// (files, then recovery and promotion), files-s the pgBackRest part.
//
//	go test -run '^$' -bench BackupRestore -benchtime 2x -timeout 60m ./internal/backup
func BenchmarkBackupRestore(b *testing.B) {
	e := newTestEnv(b)
	for _, scale := range benchScales(b) {
		b.Run(fmt.Sprintf("scale=%d", scale), func(b *testing.B) {
			src := newBenchSource(b, e, scale, Tuning{})
			ctx := context.Background()
			// Warm-up, unmeasured: the volume keeps plaintext pages in
			// the kernel's cache (-kernel_cache), so whichever backup ran
			// first would pay alone for reading through FUSE.
			if _, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoGeo}); err != nil {
				b.Fatal(err)
			}
			var encDur, plainDur, encRestore, plainRestore, encFiles, plainFiles time.Duration
			var size int64
			b.ResetTimer()
			for i := range b.N {
				// ABBA: each kind runs first and last equally often.
				for _, repo := range []int{RepoPrimary, RepoGeo, RepoGeo, RepoPrimary} {
					start := time.Now()
					bk, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: repo})
					if err != nil {
						b.Fatal(err)
					}
					d := time.Since(start)
					size = bk.Size
					if repo == RepoPrimary {
						encDur += d
					} else {
						plainDur += d
					}
				}
				order := []int{RepoPrimary, RepoGeo}
				if i%2 == 1 {
					order = []int{RepoGeo, RepoPrimary}
				}
				for _, repo := range order {
					start := time.Now()
					res, err := e.benchRestore(ctx, b, src, repo)
					if err != nil {
						b.Fatal(err)
					}
					d := time.Since(start)
					if repo == RepoPrimary {
						encRestore += d
						encFiles += res.FilesTime
					} else {
						plainRestore += d
						plainFiles += res.FilesTime
					}
				}
			}
			b.StopTimer()
			n := float64(b.N)
			mb := float64(size) / (1 << 20)
			encMBs := mb / (encDur.Seconds() / (2 * n))
			plainMBs := mb / (plainDur.Seconds() / (2 * n))
			b.ReportMetric(mb, "db-MB")
			b.ReportMetric(encMBs, "enc-MB/s")
			b.ReportMetric(plainMBs, "plain-MB/s")
			b.ReportMetric(encMBs/plainMBs, "enc/plain")
			b.ReportMetric(encRestore.Seconds()/n, "enc-restore-s")
			b.ReportMetric(plainRestore.Seconds()/n, "plain-restore-s")
			b.ReportMetric(encFiles.Seconds()/n, "enc-files-s")
			b.ReportMetric(plainFiles.Seconds()/n, "plain-files-s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkBackupTuning compares pgBackRest settings for an encrypted full
// backup of one server (PGFLEX_BENCH_SCALES' first scale), interleaved.
func BenchmarkBackupTuning(b *testing.B) {
	e := newTestEnv(b)
	src := newBenchSource(b, e, benchScales(b)[0], Tuning{})
	ctx := context.Background()
	tunings := []struct {
		name string
		t    Tuning
	}{
		{"lz4-p2", Tuning{CompressType: "lz4", ProcessMax: 2}},
		{"lz4-p1", Tuning{CompressType: "lz4", ProcessMax: 1}},
		{"none-p2", Tuning{CompressType: "none", ProcessMax: 2}},
		{"zst-p2", Tuning{CompressType: "zst", ProcessMax: 2}},
		{"lz4-p2-buf4M", Tuning{CompressType: "lz4", ProcessMax: 2, BufferSize: 4 << 20}},
	}
	durs := make([]time.Duration, len(tunings))
	var size int64
	if _, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoPrimary}); err != nil { // warm-up
		b.Fatal(err)
	}
	b.ResetTimer()
	for it := range b.N {
		for j := range tunings {
			i := j
			if it%2 == 1 { // reverse order every other round
				i = len(tunings) - 1 - j
			}
			tu := tunings[i]
			src.stanza.Tuning = tu.t
			if err := src.stanza.WriteConfig(ctx); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			bk, err := src.stanza.Backup(ctx, src.pp, BackupOptions{Repo: RepoPrimary})
			if err != nil {
				b.Fatal(err)
			}
			durs[i] += time.Since(start)
			size = bk.Size
		}
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20)
	for i, tu := range tunings {
		b.ReportMetric(mb/(durs[i].Seconds()/float64(b.N)), tu.name+"-MB/s")
	}
	b.ReportMetric(0, "ns/op")
}

// benchRestore restores the latest state of src's repository into a new
// volume, then stops the server and unmounts at once (large volumes).
func (e *testEnv) benchRestore(ctx context.Context, b *testing.B, src *testServer, repo int) (RestoreResult, error) {
	b.Helper()
	r, err := src.stanza.repo(repo)
	if err != nil {
		return RestoreResult{}, err
	}
	// PGFLEX_BENCH_RESTORE_PROCESS_MAX overrides the restore's process-max
	// (default 2), to compare parallel restores with serial ones.
	var tuning Tuning
	if v := os.Getenv("PGFLEX_BENCH_RESTORE_PROCESS_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("PGFLEX_BENCH_RESTORE_PROCESS_MAX: %v", err)
		}
		tuning.ProcessMax = n
	}
	name := "r" + randomHex(b, 6)
	db, bk := accounts(b, name)
	vol := e.newVolume(b, name)
	inst := e.newInstance(b, name, vol, db)
	res, err := Restore(ctx, RestoreOptions{
		Tuning:       tuning,
		Source:       Source{Stanza: src.name, RepoPath: r.Path, Passphrase: src.pp[repo], Account: src.bk, plaintext: r.plaintext},
		Instance:     inst,
		WorkDir:      e.tmp + "/servers/" + name + "/restore",
		HelperBinary: e.helper.Binary,
		Configure:    func(ctx context.Context) error { return e.configure(ctx, inst, bk, "") },
		Logger:       e.logger,
	})
	stopInstance(b, inst)
	unmountOrEnd(b, vol)
	_ = os.RemoveAll(vol.Dir)
	return res, err
}
