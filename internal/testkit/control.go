package testkit

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ScanNames walks roots and reports the entries (files, directories, links...) whose base name
// holds a needle: a file name is plaintext too. Files counts the entries whose names it read
// (the roots themselves excluded), Bytes their names' length. Like ScanFiles it fails t on a
// missing root or any error but an entry vanishing meanwhile.
func ScanNames(t testing.TB, roots []string, needles Needles) ScanResult {
	t.Helper()
	var res ScanResult
	for _, root := range roots {
		if _, err := os.Lstat(root); err != nil {
			t.Fatalf("scan root %s: %v", root, err)
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if vanished(err) && path != root {
					return nil
				}
				return err
			}
			if path == root {
				return nil
			}
			res.Files++
			res.Bytes += int64(len(d.Name()))
			for _, name := range needles.Find([]byte(d.Name())) {
				res.Hits = append(res.Hits, Hit{Path: path, Needle: name})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scan names under %s: %v", root, err)
		}
	}
	return res
}

// Plant writes every needle into a file of its own in dir (made if missing), between other
// bytes, and returns dir. Scanned together with what must hold no needle, it is the scan's
// positive control: check it with Missing(needles, dir), and that no hit is outside dir.
func Plant(t testing.TB, dir string, needles Needles) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(needles))
	for name := range needles {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		b := append(append([]byte("planted: "), needles[name]...), " :planted\n"...)
		if err := os.WriteFile(filepath.Join(dir, "planted-"+strconv.Itoa(i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Missing are the needles (by name, sorted) found nowhere under path.
func (r ScanResult) Missing(needles Needles, path string) []string {
	var out []string
	for name, needle := range needles {
		if len(needle) > 0 && !r.Has(name, path) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Outside are the hits not under path (a file, or any file below a directory).
func (r ScanResult) Outside(path string) []Hit {
	var out []Hit
	for _, h := range r.Hits {
		if h.Path != path && !strings.HasPrefix(h.Path, path+"/") {
			out = append(out, h)
		}
	}
	return out
}
