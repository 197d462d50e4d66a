package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// report renders the results as markdown tables: per variant of the
// PostgreSQL parameters, each layer's medians and its ratios to plain in the
// same round; the effect of each variant against the default on the same
// layer; and the cipher cost per page.
func report(c config, res map[cell][]result, ciphers []cipherResult) string {
	var b strings.Builder
	for vi, v := range c.variants {
		title := "PostgreSQL defaults (internal/postgres)"
		if vi > 0 {
			title = fmt.Sprintf("variant %s: %s", v.name, params(v))
		}
		fmt.Fprintf(&b, "### %s — %d round(s), TPC-B %s, select-only %s cold + %s warm (shared_buffers %dMB)\n\n",
			title, c.rounds, c.duration, c.selectDuration, c.warmDuration, c.selectSB>>20)
		b.WriteString("| layer | TPC-B TPS | TPC-B ratio | `pgbench -i -s " + fmt.Sprint(c.scale) + "` s | load time ratio | load + flush ratio | select-only TPS (cold) | select-only ratio (cold) | select-only ratio (warm) | 8 KiB write+fdatasync µs |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
		plain := res[cell{"plain", vi}]
		for _, l := range c.layers {
			r := res[cell{l, vi}]
			fmt.Fprintf(&b, "| %s | %.0f | %s | %.1f | %s | %s | %.0f | %s | %s | %.0f |\n", l,
				median(pick(r, tps)), ratios(r, plain, tps), median(pick(r, load)), ratios(r, plain, load), ratios(r, plain, loadFlush),
				median(pick(r, sel)), ratios(r, plain, sel), ratios(r, plain, warm), median(pick(r, syncUS)))
		}
		b.WriteString("\nRatios: layer/plain in the same round, median (range). TPS: higher is better; load time: lower is better. " +
			"Load + flush: `pgbench -i` and then fsync of every file, the writeback the load left to the kernel. " +
			"Select-only cold: this layer's files evicted from the page cache first; warm: every file read once first.\n\n")
		b.WriteString("What was written (medians):\n\n| layer | database MiB | WAL of the load MiB | TPC-B WAL KiB per transaction | checkpoints (time/WAL) in load + TPC-B |\n|---|---|---|---|---|\n")
		for _, l := range c.layers {
			r := res[cell{l, vi}]
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.1f | %.0f |\n", l, median(pick(r, func(r result) float64 { return r.dbBytes / (1 << 20) })),
				median(pick(r, func(r result) float64 { return r.loadWAL / (1 << 20) })),
				median(pick(r, func(r result) float64 { return r.walPerTx / (1 << 10) })), median(pick(r, ckpts)))
		}
		b.WriteString("\n")
	}
	if len(c.variants) > 1 {
		b.WriteString("### Each variant against the defaults on the same layer (same round)\n\n")
		b.WriteString("| variant | layer | TPC-B | load + flush time | select-only (cold) | TPC-B ratio to plain (same variant) | load + flush ratio to plain (same variant) |\n|---|---|---|---|---|---|---|\n")
		for vi, v := range c.variants[1:] {
			for _, l := range c.layers {
				r, d, p := res[cell{l, vi + 1}], res[cell{l, 0}], res[cell{"plain", vi + 1}]
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", v.name, l,
					ratios(r, d, tps), ratios(r, d, loadFlush), ratios(r, d, sel), ratios(r, p, tps), ratios(r, p, loadFlush))
			}
		}
		b.WriteString("\n")
	}
	if len(ciphers) > 0 {
		b.WriteString(cipherTable(ciphers))
	}
	return b.String()
}

func params(v variant) string {
	var kv []string
	for k, val := range v.params {
		kv = append(kv, k+"="+val)
	}
	slices.Sort(kv)
	return strings.Join(kv, ", ")
}

func tps(r result) float64  { return r.tps }
func load(r result) float64 { return r.load.Seconds() }
func loadFlush(r result) float64 {
	return (r.load + r.flush).Seconds()
}
func sel(r result) float64    { return r.selectTPS }
func warm(r result) float64   { return r.warmTPS }
func ckpts(r result) float64  { return float64(r.checkpoints) }
func syncUS(r result) float64 { return float64(r.syncLat.Nanoseconds()) / 1e3 }

func pick(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// ratios is "median (min–max)" of a[i]/b[i] over the rounds.
func ratios(a, b []result, f func(result) float64) string {
	var v []float64
	for i := range min(len(a), len(b)) {
		v = append(v, f(a[i])/f(b[i]))
	}
	return spread(v, "%.2f")
}

func spread(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := fmt.Sprintf(format, median(s))
	if len(s) == 1 {
		return m
	}
	return fmt.Sprintf("%s ("+format+"–"+format+")", m, s[0], s[len(s)-1])
}

func cipherTable(cs []cipherResult) string {
	var b strings.Builder
	col := func(f func(cipherResult) time.Duration) string {
		v := make([]float64, len(cs))
		for i, c := range cs {
			v[i] = float64(f(c).Nanoseconds()) / 1e3
		}
		return spread(v, "%.1f")
	}
	fmt.Fprintf(&b, "### Cipher cost per 8 KiB page, disk taken out (ext4 on a tmpfs-backed loop device, direct I/O %v; median (range) over %d round(s), µs)\n\n", cs[0].loopDIO, len(cs))
	b.WriteString("| per 8 KiB page | plain directory | fscrypt directory | cost of the encryption |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| write, then fsync (encrypt on writeback) | %s | %s | %s |\n",
		col(func(c cipherResult) time.Duration { return c.writePlain }), col(func(c cipherResult) time.Duration { return c.writeEnc }),
		col(func(c cipherResult) time.Duration { return c.writeEnc - c.writePlain }))
	fmt.Fprintf(&b, "| cold random read, no readahead (decrypt per read) | %s | %s | %s |\n",
		col(func(c cipherResult) time.Duration { return c.readPlain }), col(func(c cipherResult) time.Duration { return c.readEnc }),
		col(func(c cipherResult) time.Duration { return c.readEnc - c.readPlain }))
	fmt.Fprintf(&b, "| cold sequential read, readahead (decrypt in bulk) | %s | %s | %s |\n",
		col(func(c cipherResult) time.Duration { return c.seqPlain }), col(func(c cipherResult) time.Duration { return c.seqEnc }),
		col(func(c cipherResult) time.Duration { return c.seqEnc - c.seqPlain }))
	if cs[0].algErr == nil {
		fmt.Fprintf(&b, "| xts(aes) alone, kernel crypto API (AF_ALG, less cipher_null) | | enc %s, dec %s | |\n",
			col(func(c cipherResult) time.Duration { return c.algEnc }), col(func(c cipherResult) time.Duration { return c.algDec }))
	} else {
		fmt.Fprintf(&b, "| xts(aes) alone, kernel crypto API | | not measured: %v | |\n", cs[0].algErr)
	}
	fmt.Fprintf(&b, "| AES-256-GCM in Go (user space, AES-NI) | | %s | |\n\n", col(func(c cipherResult) time.Duration { return c.goGCM }))
	return b.String()
}
