package volume

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestGocryptfsWriteReachesCiphertext checks what the Gocryptfs layer's durability argument
// rests on: a write(2) on the mount has reached the ciphertext file when it returns, before
// any fsync, so a crash of gocryptfs loses nothing written. It fails on a gocryptfs whose
// FUSE mount has the kernel's writeback cache, which keeps writes in the kernel until fsync,
// close or writeback (see the Gocryptfs doc for why that build was rejected).
func TestGocryptfsWriteReachesCiphertext(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	v := newTestVolume(t)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("Mount: %v", err)
	}
	path := filepath.Join(v.MountDir(), "relation")
	page := bytes.Repeat([]byte("0123456789abcdef"), 8192/16) // one PostgreSQL page
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(page); err != nil {
		t.Fatal(err)
	}
	// gocryptfs's layout: an 18-byte header, then per 4 KiB block a 16-byte nonce and a
	// 16-byte tag.
	want := int64(18 + 2*(4096+32))
	if size := fileSize(t, cipherFile(t, v)); size != want {
		t.Fatalf("ciphertext is %d bytes after write(2) returned, want %d: the kernel is caching writes (FUSE writeback cache)", size, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Unmounting drops the kernel's cache: what is read next was decrypted from the ciphertext.
	if err := v.Unmount(ctx); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("remount: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, page) {
		t.Fatalf("after remount the file is %d bytes and differs from the %d written", len(got), len(page))
	}
}

// cipherFile is the ciphertext of the one file in v's root.
func cipherFile(t *testing.T, v *Volume) string {
	t.Helper()
	entries, err := os.ReadDir(v.CipherDir())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != gocryptfsConf && e.Name() != "gocryptfs.diriv" {
			files = append(files, filepath.Join(v.CipherDir(), e.Name()))
		}
	}
	if len(files) != 1 {
		t.Fatalf("cipher dir holds %v; want one encrypted file", entries)
	}
	return files[0]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
