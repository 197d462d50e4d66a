package volume

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHeaderVectors runs every testdata vector: good_* must decode and
// re-encode to an equal header; fail_* must be refused with the listed reason.
func TestHeaderVectors(t *testing.T) {
	tests := map[string]string{ // file -> "" for good, error substring for fail
		"good_rsa_oaep_256.json":        "",
		"good_service_key_a256kw.json":  "",
		"good_hsm_offset_time.json":     "",
		"good_compact.json":             "",
		"fail_version_2.json":           "version 2 is not supported",
		"fail_version_string.json":      "cannot unmarshal string",
		"fail_format.json":              `format "gocryptfs"`,
		"fail_unknown_field.json":       `unknown field "dek"`,
		"fail_plaintext_sized_key.json": "wrappedKey is 32 bytes",
		"fail_padded_base64.json":       "not unpadded base64url",
		"fail_std_base64.json":          "not unpadded base64url",
		"fail_algorithm.json":           `algorithm "RSA1_5"`,
		"fail_relative_key_id.json":     "not an absolute URI",
		"fail_key_id_query.json":        "query",
		"fail_key_version.json":         "keyVersion",
		"fail_missing_created.json":     "created",
		"fail_bad_created.json":         "created",
		"fail_missing_wrapped_key.json": "wrappedKey is 0 bytes",
		"fail_trailing_data.json":       "trailing data",
		"fail_empty.json":               "EOF",
		"fail_array.json":               "cannot unmarshal array",
	}
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[filepath.Base(f)]; !ok {
			t.Errorf("vector %s has no entry in the table", f)
		}
	}
	for name, wantErr := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "good_") != (wantErr == "") {
				t.Fatalf("table entry for %s contradicts its name", name)
			}
			h, err := DecodeHeader(b)
			if wantErr != "" {
				if err == nil {
					t.Fatalf("DecodeHeader accepted a bad header: %+v", h)
				}
				if !errors.Is(err, ErrBadHeader) {
					t.Errorf("error %v does not wrap ErrBadHeader", err)
				}
				if !strings.Contains(err.Error(), wantErr) {
					t.Errorf("error %q does not mention %q", err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeHeader: %v", err)
			}
			again, err := EncodeHeader(h)
			if err != nil {
				t.Fatalf("EncodeHeader: %v", err)
			}
			h2, err := DecodeHeader(again)
			if err != nil {
				t.Fatalf("DecodeHeader(EncodeHeader(h)): %v", err)
			}
			if !headersEqual(h, h2) {
				t.Errorf("round trip changed the header:\n%+v\n%+v", h, h2)
			}
		})
	}
}

func headersEqual(a, b *Header) bool {
	return a.KeyID == b.KeyID && a.KeyVersion == b.KeyVersion && a.Algorithm == b.Algorithm &&
		bytes.Equal(a.WrappedKey, b.WrappedKey) && a.Created.Equal(b.Created)
}

func TestWriteReadHeader(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "header.json")
	h := &Header{
		KeyID:      "https://vault1.vault.localhost:8443/keys/cmk1",
		KeyVersion: "abc123",
		Algorithm:  "RSA-OAEP-256",
		WrappedKey: bytes.Repeat([]byte{0xA5}, 256),
		Created:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if err := WriteHeader(ctx, path, h); err != nil {
		t.Fatal(err)
	}
	// Overwrite: the rename must replace the old file and leave no temp.
	h.KeyVersion = "def456"
	if err := WriteHeader(ctx, path, h); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHeader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !headersEqual(got, h) {
		t.Errorf("ReadHeader = %+v, want %+v", got, h)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only header.json", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("header mode %v, want 0600", st.Mode().Perm())
	}

	// An invalid header is refused before anything is written.
	bad := *h
	bad.WrappedKey = bytes.Repeat([]byte{1}, KeySize)
	if err := WriteHeader(ctx, path, &bad); !errors.Is(err, ErrBadHeader) {
		t.Errorf("WriteHeader(plaintext-sized key) = %v, want ErrBadHeader", err)
	}
	if got, err := ReadHeader(ctx, path); err != nil || got.KeyVersion != "def456" {
		t.Errorf("failed write changed the header: %+v, %v", got, err)
	}
}
