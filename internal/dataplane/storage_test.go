package dataplane

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStorageDiskUsage: what a gocryptfs server's ciphertext takes is counted as du does:
// allocated blocks (a sparse file counts for what it holds), each hard-linked file once.
func TestStorageDiskUsage(t *testing.T) {
	blocks := func(t *testing.T, path string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		return uint64(st.Blocks) * 512
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, dir string) (want uint64)
	}{
		{"empty directory", func(t *testing.T, dir string) uint64 { return blocks(t, dir) }},
		{"a written file", func(t *testing.T, dir string) uint64 {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			if b := blocks(t, p); b < 1<<20 {
				t.Fatalf("a written MiB takes %d bytes", b)
			}
			return blocks(t, dir) + blocks(t, p)
		}},
		{"a sparse file counts for what it holds", func(t *testing.T, dir string) uint64 {
			p := filepath.Join(dir, "sparse")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(1 << 30); err != nil {
				t.Fatal(err)
			}
			if b := blocks(t, p); b >= 1<<20 {
				t.Fatalf("a sparse GiB takes %d bytes", b)
			}
			return blocks(t, dir) + blocks(t, p)
		}},
		{"a hard link counts once, nested directories count", func(t *testing.T, dir string) uint64 {
			sub := filepath.Join(dir, "a", "b")
			if err := os.MkdirAll(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(sub, "f")
			if err := os.WriteFile(p, make([]byte, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(p, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			return blocks(t, dir) + blocks(t, filepath.Join(dir, "a")) + blocks(t, sub) + blocks(t, p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := tc.build(t, dir)
			got, err := diskUsage(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("diskUsage = %d, want %d", got, want)
			}
		})
	}
}
