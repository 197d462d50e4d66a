package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealRoundTripAndTamper(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "root.key")
	b, err := LoadOrCreateRootKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key mode %v", fi.Mode().Perm())
	}
	secret := []byte("very secret signing key material")
	path := filepath.Join(dir, "x.sealed")
	if err := b.WriteFile(path, secret, []byte("purpose-a")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, secret) {
		t.Fatal("sealed file contains the plaintext")
	}
	// The same root key file opens it again after a "restart".
	b2, err := LoadOrCreateRootKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.ReadFile(path, []byte("purpose-a"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	cases := []struct {
		name string
		mut  func() ([]byte, []byte)
	}{
		{"wrong aad", func() ([]byte, []byte) { return raw, []byte("purpose-b") }},
		{"flipped byte", func() ([]byte, []byte) {
			c := bytes.Clone(raw)
			c[len(c)-1] ^= 1
			return c, []byte("purpose-a")
		}},
		{"truncated", func() ([]byte, []byte) { return raw[:10], []byte("purpose-a") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, aad := tc.mut()
			if _, err := b.Open(data, aad); err == nil {
				t.Fatal("Open accepted tampered input")
			}
		})
	}
	other, _ := New(bytes.Repeat([]byte{7}, 32))
	if _, err := other.Open(raw, []byte("purpose-a")); err == nil {
		t.Fatal("another root key opened the blob")
	}
}
