package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/volume"
)

// page is PostgreSQL's block size: the unit every figure here is per.
const page = 8 << 10

// cipherResult is what the kernel's filesystem encryption costs per 8 KiB
// page with the disk taken out: a volume.Fscrypt volume whose image lives in
// tmpfs, a plain directory in its filesystem's root against its data
// directory (v2 policy, AES-256-XTS contents, AES-256-CTS names),
// alternating.
type cipherResult struct {
	loopDIO bool
	// Per page: write (8 KiB writes, then one fsync, so the pages are
	// encrypted on writeback) and cold random read (page cache dropped with
	// POSIX_FADV_DONTNEED, readahead off, pages read in a random order, as
	// an index scan reads a heap), in the plain and in the encrypted
	// directory.
	writePlain, writeEnc, readPlain, readEnc time.Duration
	// Cold sequential read with readahead, per page: the decryption in
	// bulk, without the latency of one read per page.
	seqPlain, seqEnc time.Duration
	// The cipher alone through the kernel's crypto API (AF_ALG, the same
	// xts(aes) implementation fscrypt uses), per 8 KiB, less the cost of
	// the same calls through ecb(cipher_null); and Go's AES-256-GCM in user
	// space (AES-NI) for comparison.
	algEnc, algDec, goGCM time.Duration
	// algErr says why algEnc and algDec are missing (a kernel without
	// CONFIG_CRYPTO_USER_API_SKCIPHER has no AF_ALG).
	algErr error
}

func (r cipherResult) String() string {
	alg := fmt.Sprintf("xts(aes) enc %s dec %s", us(r.algEnc), us(r.algDec))
	if r.algErr != nil {
		alg = fmt.Sprintf("xts(aes) alone: %v", r.algErr)
	}
	return fmt.Sprintf("per 8KiB page: write %s→%s (+%s)  cold random read %s→%s (+%s)  cold sequential read %s→%s (+%s)  %s  Go AES-GCM %s (loop dio=%v)",
		us(r.writePlain), us(r.writeEnc), us(r.writeEnc-r.writePlain), us(r.readPlain), us(r.readEnc), us(r.readEnc-r.readPlain),
		us(r.seqPlain), us(r.seqEnc), us(r.seqEnc-r.seqPlain), alg, us(r.goGCM), r.loopDIO)
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3) }

// measureCipher measures cipherResult with mib MiB per sample, three samples
// per directory, and returns the medians.
func measureCipher(ctx context.Context, workDir string, mib int, log *slog.Logger) (res cipherResult, err error) {
	dir := filepath.Join(workDir, "cipher")
	if err := resetWorkDir(dir); err != nil {
		return res, err
	}
	tmp := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return res, err
	}
	// Undo everything in reverse, with a fresh context (also after Ctrl-C).
	var undo []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var uerr error
		for i := len(undo) - 1; i >= 0; i-- {
			uerr = errors.Join(uerr, undo[i](cctx))
		}
		if uerr == nil {
			uerr = cleanWorkDir(dir)
		}
		err = errors.Join(err, uerr)
	}()
	imgSize := int64(2*mib+128) << 20
	if _, err := command(ctx, "mount", "-t", "tmpfs", "-o", "mode=0700,size="+sizeMiB(imgSize+(16<<20)), "pgflex-bench", tmp); err != nil {
		return res, err
	}
	undo = append(undo, func(ctx context.Context) error { return unmountDir(ctx, tmp) })
	// The service's own fscrypt volume, its image in tmpfs: the same
	// mkfs, loop device, mount options, key derivation and policy.
	key := make([]byte, volume.KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return res, err
	}
	v := &volume.Volume{Dir: filepath.Join(tmp, "vol"), Layer: &volume.Fscrypt{Logger: log}, Logger: log, Size: imgSize}
	if err := v.Create(ctx, key); err != nil {
		return res, err
	}
	if err := v.Mount(ctx, key); err != nil {
		return res, err
	}
	undo = append(undo, v.Unmount)
	if res.loopDIO, err = loopDirectIO(filepath.Join(v.CipherDir(), "volume.img")); err != nil {
		return res, err
	}
	// The plain directory sits in the filesystem's unencrypted root, beside
	// the encrypted data directory.
	encDir, plainDir := v.DataDir(), filepath.Join(v.MountDir(), "plain")
	if err := os.Mkdir(plainDir, 0o700); err != nil {
		return res, err
	}
	undo = append(undo, func(context.Context) error { return os.RemoveAll(plainDir) })

	var wp, we, rp, re, sp, se []time.Duration
	for i := 0; i < 3; i++ {
		dirs := []string{plainDir, encDir}
		if i%2 == 1 {
			dirs = []string{encDir, plainDir}
		}
		for _, d := range dirs {
			w, r, sq, err := pageSample(ctx, d, mib, uint64(i))
			if err != nil {
				return res, err
			}
			if d == plainDir {
				wp, rp, sp = append(wp, w), append(rp, r), append(sp, sq)
			} else {
				we, re, se = append(we, w), append(re, r), append(se, sq)
			}
		}
	}
	res.writePlain, res.writeEnc, res.readPlain, res.readEnc = median(wp), median(we), median(rp), median(re)
	res.seqPlain, res.seqEnc = median(sp), median(se)
	res.algEnc, res.algDec, res.algErr = algCost(ctx, mib<<20/page)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.goGCM, err = goGCMCost(mib << 20 / page)
	return res, err
}

// pageSample writes a file of mib MiB in dir, 8 KiB at a time, fsyncs it,
// then reads it back cold 8 KiB at a time, in a random order and in order;
// it returns the time per page of each.
func pageSample(ctx context.Context, dir string, mib int, seed uint64) (write, read, seq time.Duration, err error) {
	pages := mib << 20 / page
	path := filepath.Join(dir, "sample")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := make([]byte, page)
	for i := range buf {
		buf[i] = byte(i*7 + 1) // not zeros: nothing in the path may special-case them
	}
	t := time.Now()
	for p := 0; p < pages; p++ {
		if _, err := f.WriteAt(buf, int64(p)*page); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, 0, 0, err
	}
	write = time.Since(t) / time.Duration(pages)
	if err := ctx.Err(); err != nil {
		return 0, 0, 0, err
	}
	fd := int(f.Fd())
	// Random order, readahead off: one 8 KiB read, and one decryption,
	// per page, as an index scan reads a heap.
	order := mrand.New(mrand.NewPCG(seed, 1)).Perm(pages)
	if read, err = coldRead(fd, order, unix.FADV_RANDOM); err != nil {
		return 0, 0, 0, err
	}
	// In order, with readahead: large reads whose pages are decrypted in
	// bulk, so the per-read latency drops out and the cipher remains.
	for i := range order {
		order[i] = i
	}
	if seq, err = coldRead(fd, order, unix.FADV_SEQUENTIAL); err != nil {
		return 0, 0, 0, err
	}
	return write, read, seq, ctx.Err()
}

// coldRead evicts the file from the page cache, checks that it is gone,
// then reads the pages in order with the given readahead advice and returns
// the time per page.
func coldRead(fd int, order []int, advice int) (time.Duration, error) {
	size := int64(len(order)) * page
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, err
	}
	if n, err := residentPages(fd, size); err != nil || n != 0 {
		return 0, fmt.Errorf("page cache not dropped: %d pages resident (%v)", n, err)
	}
	if err := unix.Fadvise(fd, 0, 0, advice); err != nil {
		return 0, err
	}
	buf := make([]byte, page)
	t := time.Now()
	for _, p := range order {
		if _, err := unix.Pread(fd, buf, int64(p)*page); err != nil {
			return 0, err
		}
	}
	return time.Since(t) / time.Duration(len(order)), nil
}

// residentPages counts the file's pages in the page cache (mincore).
func residentPages(fd int, size int64) (int, error) {
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+int64(os.Getpagesize())-1)/int64(os.Getpagesize()))
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, fmt.Errorf("mincore: %w", e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, nil
}

// loopDirectIO reports whether the loop device serving img runs with
// direct I/O.
func loopDirectIO(img string) (bool, error) {
	devs, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return false, err
	}
	for _, d := range devs {
		b, err := os.ReadFile(d)
		if err != nil || strings.TrimSpace(string(b)) != img {
			continue
		}
		dio, err := os.ReadFile(filepath.Join(filepath.Dir(d), "dio"))
		return strings.TrimSpace(string(dio)) == "1", err
	}
	return false, fmt.Errorf("no loop device serves %s", img)
}
