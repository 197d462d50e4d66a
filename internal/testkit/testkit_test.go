package testkit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatal ends only the goroutine it runs in, so that a test can
// check that a helper fails when it must.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Helper()           {}

// failsIn runs f with a recorder and reports whether it failed.
func failsIn(t *testing.T, f func(tb testing.TB)) bool {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.fatal != ""
}

func TestScanFiles(t *testing.T) {
	dir := t.TempDir()
	secret := []byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xfa, 0xfb}
	needles := Needles{}.AddSecret("dek", secret).Add("marker", []byte("pgflex-marker-0123456789"))
	forms := map[string]string{
		"raw": string(secret), "hex": "deadbeef01020304fafb", "HEX": "DEADBEEF01020304FAFB",
		"b64": base64.StdEncoding.EncodeToString(secret), "b64raw": base64.RawStdEncoding.EncodeToString(secret),
		"url": base64.URLEncoding.EncodeToString(secret), "urlraw": base64.RawURLEncoding.EncodeToString(secret),
	}
	for name, content := range forms {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("before "+content+" after"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub", "skipped"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "sub", "m"), []byte("x pgflex-marker-0123456789 y"), 0o600)
	os.WriteFile(filepath.Join(dir, "sub", "skipped", "m"), []byte("pgflex-marker-0123456789"), 0o600)
	res := ScanFiles(t, []string{dir}, needles, ScanOptions{Skip: []string{filepath.Join(dir, "sub", "skipped")}})
	if res.Files != len(forms)+1 {
		t.Errorf("read %d files, want %d", res.Files, len(forms)+1)
	}
	for name := range forms {
		if len(res.Hits) == 0 || !anyHitIn(res, filepath.Join(dir, name)) {
			t.Errorf("the %s form was not found", name)
		}
	}
	if !res.Has("marker", filepath.Join(dir, "sub", "m")) || res.Has("marker", filepath.Join(dir, "sub", "skipped")) {
		t.Errorf("marker hits: %v", res.Paths("marker"))
	}
	// A root that is not there fails the scan: it cannot pass for "nothing found".
	if !failsIn(t, func(tb testing.TB) { ScanFiles(tb, []string{filepath.Join(dir, "nope")}, needles, ScanOptions{}) }) {
		t.Error("a missing root did not fail the scan")
	}
	// So does an unreadable file (for root: a directory it may not list does not exist).
	if os.Geteuid() != 0 {
		os.Chmod(filepath.Join(dir, "hex"), 0)
		if !failsIn(t, func(tb testing.TB) { ScanFiles(tb, []string{dir}, needles, ScanOptions{}) }) {
			t.Error("an unreadable file did not fail the scan")
		}
	}
}

func anyHitIn(r ScanResult, path string) bool {
	for _, h := range r.Hits {
		if h.Path == path {
			return true
		}
	}
	return false
}

// TestWatch: a short-lived child's environment is seen while it lives.
func TestWatch(t *testing.T) {
	secret := "pgflex-watch-secret-" + time.Now().Format("150405.000000")
	w := Watch(Needles{}.Add("secret", []byte(secret)))
	defer w.Stop()
	cmd := exec.Command("sleep", "0.3")
	cmd.Env = []string{"SECRET=" + secret}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	w.Stop()
	var found bool
	for _, h := range w.Hits() {
		if h.Needle == "secret" && h.Where == "environ" && h.Exe == "sleep" && h.PID == cmd.Process.Pid {
			found = true
		}
	}
	if !found || w.Seen("sleep") == 0 || w.Sweeps() < 2 {
		t.Errorf("the child was not seen: hits %v, seen %d, sweeps %d", w.Hits(), w.Seen("sleep"), w.Sweeps())
	}
}

func TestMountsTokenEventually(t *testing.T) {
	if !Mounted(t, "/") || !Mounted(t, "/proc") {
		t.Error("/ or /proc is not a mount point")
	}
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"oid":"1234","aud":"x"}`))
	if got := TokenOID(t, "h."+claims+".s"); got != "1234" {
		t.Errorf("TokenOID = %q", got)
	}
	n := 0
	Eventually(t, time.Second, "the third poll", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if !failsIn(t, func(tb testing.TB) {
		Eventually(tb, 100*time.Millisecond, "never", func() error { return errors.New("no") })
	}) {
		t.Error("Eventually did not fail")
	}
}

func TestRequireFailsUnderRequireAll(t *testing.T) {
	t.Setenv(RequireEnv, "all")
	// A part that is always missing in a test: none is, so fake one through PATH.
	t.Setenv("PATH", t.TempDir())
	if !failsIn(t, func(tb testing.TB) { Require(tb, PSQL) }) {
		t.Error("a missing part did not fail the test under " + RequireEnv + "=all")
	}
}

// TestScanUnfoldAndEveryRoot: a needle broken over lines (PEM) or JSON-escaped is found only
// with Unfold; a root holding nothing fails a scan with EveryRoot.
func TestScanUnfoldAndEveryRoot(t *testing.T) {
	dir, empty := t.TempDir(), t.TempDir()
	needle := []byte("MIIEowIBAAKCAQEAwidelyKnownPrefixOfAnRSAKey0123456789")
	wrapped := append(append(append([]byte{}, needle[:20]...), '\n'), needle[20:]...)
	escaped := append(append(append([]byte{}, needle[:30]...), []byte(`\n`)...), needle[30:]...)
	os.WriteFile(filepath.Join(dir, "key.pem"), wrapped, 0o600)
	os.WriteFile(filepath.Join(dir, "key.json"), escaped, 0o600)
	n := Needles{}.Add("key", needle)
	if res := ScanFiles(t, []string{dir}, n, ScanOptions{}); len(res.Hits) != 0 {
		t.Errorf("found without unfolding: %v", res.Hits)
	}
	res := ScanFiles(t, []string{dir}, n, ScanOptions{Unfold: true})
	if !res.Has("key", filepath.Join(dir, "key.pem")) || !res.Has("key", filepath.Join(dir, "key.json")) || len(res.Hits) != 2 {
		t.Errorf("unfolded hits: %v", res.Hits)
	}
	if !failsIn(t, func(tb testing.TB) { ScanFiles(tb, []string{dir, empty}, n, ScanOptions{EveryRoot: true}) }) {
		t.Error("a root with no file did not fail the scan")
	}
}

// TestScanSparseLargeFile: a needle in the data of a large sparse file (a volume image) is
// found, also across the boundary of two scan chunks, and the holes are not read.
func TestScanSparseLargeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "image")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	needle := []byte("pgflex-sparse-needle-0123456789")
	// One copy straddling the first chunk boundary, one deep in the file.
	for _, off := range []int64{scanChunk - 10, size - 4096*3} {
		if _, err := f.WriteAt(needle, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	res := ScanFiles(t, []string{dir}, Needles{}.Add("needle", needle), ScanOptions{})
	if !res.Has("needle", path) {
		t.Fatal("the needle in the sparse file's data was not found")
	}
	if res.Bytes >= size/4 {
		t.Errorf("read %d bytes of a 1 GiB file holding a few KiB of data: holes were read", res.Bytes)
	}
	// One data extent longer than a chunk, the needle across the chunks' boundary: found
	// whole thanks to the overlap.
	fill := bytes.Repeat([]byte("x"), scanChunk+1<<20)
	copy(fill[scanChunk-10:], needle)
	if err := os.WriteFile(path, fill, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	if res := ScanFiles(t, []string{dir}, Needles{}.Add("needle", needle), ScanOptions{}); !res.Has("needle", path) {
		t.Fatal("a needle across two chunks was not found")
	}
}
