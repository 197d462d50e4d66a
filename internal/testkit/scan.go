package testkit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Needles are named byte strings a scan looks for.
type Needles map[string][]byte

// Add adds needle under name.
func (n Needles) Add(name string, needle []byte) Needles {
	n[name] = needle
	return n
}

// AddSecret adds every form a secret could be written in: raw, hex (lower and upper case),
// base64 and base64url, each padded and not.
func (n Needles) AddSecret(name string, secret []byte) Needles {
	n[name] = secret
	h := hex.EncodeToString(secret)
	n[name+" (hex)"] = []byte(h)
	n[name+" (HEX)"] = []byte(strings.ToUpper(h))
	n[name+" (base64)"] = []byte(base64.StdEncoding.EncodeToString(secret))
	n[name+" (base64, unpadded)"] = []byte(base64.RawStdEncoding.EncodeToString(secret))
	n[name+" (base64url)"] = []byte(base64.URLEncoding.EncodeToString(secret))
	n[name+" (base64url, unpadded)"] = []byte(base64.RawURLEncoding.EncodeToString(secret))
	return n
}

// Find returns the names of the needles in b.
func (n Needles) Find(b []byte) []string {
	var out []string
	for name, needle := range n {
		if len(needle) > 0 && bytes.Contains(b, needle) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Hit is a needle found in a file.
type Hit struct {
	Path   string
	Needle string
}

// ScanResult is what a scan read and found.
type ScanResult struct {
	Files int   // regular files read
	Bytes int64 // bytes read
	Hits  []Hit
}

// Has reports whether needle was found under path (a file, or any file below a directory).
func (r ScanResult) Has(needle, path string) bool {
	for _, h := range r.Hits {
		if h.Needle == needle && (h.Path == path || strings.HasPrefix(h.Path, path+"/")) {
			return true
		}
	}
	return false
}

// Paths are the files where needle was found.
func (r ScanResult) Paths(needle string) []string {
	var out []string
	for _, h := range r.Hits {
		if h.Needle == needle {
			out = append(out, h.Path)
		}
	}
	return out
}

// ScanOptions tune a scan.
type ScanOptions struct {
	// Skip are paths (files or directories) not read.
	Skip []string
	// SkipVolumeMounts leaves out every FUSE mount under the roots (plaintext views of encrypted
	// volumes, which hold what a scan of ciphertext must not find elsewhere).
	SkipVolumeMounts bool
	// Unfold also searches each file with its line breaks removed, raw and JSON-escaped: PEM
	// and other wrapped encodings break lines.
	Unfold bool
	// EveryRoot fails the scan when a root holds no file it read.
	EveryRoot bool
}

// unfoldings are the ways a file is searched besides as it is, with Unfold.
func unfoldings(b []byte) [][]byte {
	out := [][]byte{b}
	joined := bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
	if len(joined) != len(b) {
		out = append(out, joined)
	}
	if unescaped := bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(`\r`), nil), []byte(`\n`), nil); len(unescaped) != len(b) {
		out = append(out, unescaped)
	}
	return out
}

// ScanFiles reads every regular file under roots and reports which needles each holds. It
// fails t on any error but a file or directory vanishing meanwhile (a running server's), so a
// wrong root or an unreadable file cannot pass for "nothing found"; a root that does not exist
// fails too. Check Files (or a positive control) to show the scan read what it should.
func ScanFiles(t testing.TB, roots []string, needles Needles, opts ScanOptions) ScanResult {
	t.Helper()
	skip := map[string]bool{}
	for _, s := range opts.Skip {
		skip[filepath.Clean(s)] = true
	}
	if opts.SkipVolumeMounts {
		for _, m := range Mounts(t) {
			if m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.") || m.FSType == "ext4" && strings.HasPrefix(m.Source, "/dev/loop") {
				skip[m.Point] = true
			}
		}
	}
	var res ScanResult
	m := needles.Matcher()
	for _, root := range roots {
		if _, err := os.Lstat(root); err != nil {
			t.Fatalf("scan root %s: %v", root, err)
		}
		before := res.Files
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if vanished(err) && path != root {
					return nil
				}
				return err
			}
			if skip[path] {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			found := map[string]bool{}
			read, err := readData(path, m.MaxLen(), func(b []byte) {
				forms := [][]byte{b}
				if opts.Unfold {
					forms = unfoldings(b)
				}
				for _, f := range forms {
					for _, name := range m.Find(f) {
						if !found[name] {
							found[name] = true
							res.Hits = append(res.Hits, Hit{Path: path, Needle: name})
						}
					}
				}
			})
			if err != nil {
				if vanished(err) {
					return nil
				}
				return err
			}
			res.Files++
			res.Bytes += read
			return nil
		})
		if err != nil {
			t.Fatalf("scan %s: %v", root, err)
		}
		if opts.EveryRoot && res.Files == before {
			t.Fatalf("the scan read no file under %s", root)
		}
	}
	return res
}

// scanChunk is how much of a large file is searched at once.
const scanChunk = 16 << 20

// readData calls visit with what path holds: the whole file when it is small; for a large one
// (a volume's sparse image) its data only — holes (SEEK_HOLE) read as zeros and hold no
// needle — in chunks that overlap by overlap-1 bytes, so a needle across two chunks is whole in
// one of them. It returns the bytes read.
func readData(path string, overlap int, visit func([]byte)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() <= scanChunk {
		b, err := io.ReadAll(f)
		if err != nil {
			return 0, err
		}
		visit(b)
		return int64(len(b)), nil
	}
	var total int64
	buf := make([]byte, scanChunk+max(overlap-1, 0))
	for off := int64(0); off < fi.Size(); {
		data, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return total, err
		}
		hole, err := f.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return total, err
		}
		for pos := data; pos < hole; pos += scanChunk {
			n := min(int64(len(buf)), hole-pos)
			got, err := f.ReadAt(buf[:n], pos)
			if err != nil && !errors.Is(err, io.EOF) {
				return total, err
			}
			visit(buf[:got])
			total += int64(got)
		}
		off = hole
	}
	return total, nil
}

// vanished: the file went away between listing and reading, or its mount did.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ESTALE)
}
