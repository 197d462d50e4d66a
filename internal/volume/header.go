package volume

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// HeaderFormat and HeaderVersion identify the wrapped-DEK header format.
const (
	HeaderFormat  = "pgflex-volume-header"
	HeaderVersion = 1
)

// maxHeaderSize bounds what ReadHeader reads: a header is a few hundred bytes.
const maxHeaderSize = 16 << 10

// Wrapped-key bounds: RSA-OAEP of a 4096-bit key gives 512 bytes, AES key
// wrap of a 32-byte key gives 40. A 32-byte "wrapped" key is refused: every
// wrapping adds bytes, so 32 bytes can only be a plaintext DEK by mistake.
const (
	minWrappedKeySize = 40
	maxWrappedKeySize = 1024
)

// headerAlgorithm reports whether a header may name this wrap algorithm
// (Key Vault's names).
func headerAlgorithm(a string) bool {
	switch a {
	case "RSA-OAEP-256", "RSA-OAEP", "A256KW":
		return true
	}
	return false
}

var keyVersionRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ErrBadHeader is wrapped by every header decoding and validation error.
var ErrBadHeader = errors.New("volume: bad header")

// Header is the record, kept beside a volume, of how its DEK is wrapped.
// It never contains the plaintext key.
//
// On disk it is one JSON object:
//
//	{"format":"pgflex-volume-header","version":1,
//	 "keyId":"https://v1.vault.localhost:8443/keys/k1","keyVersion":"5d2f...",
//	 "algorithm":"RSA-OAEP-256","wrappedKey":"<base64url, no padding>",
//	 "created":"2026-01-02T03:04:05Z"}
//
// Unknown fields, trailing data and other versions are refused, so a header
// written by a newer pgflex is not misread by an older one.
type Header struct {
	// KeyID is the URI of the key-encryption key, without version for a
	// versionless reference.
	KeyID string
	// KeyVersion is the KEK version that produced WrappedKey.
	KeyVersion string
	// Algorithm is the wrap algorithm, e.g. "RSA-OAEP-256".
	Algorithm string
	// WrappedKey is the DEK as wrapped by the KEK.
	WrappedKey []byte
	// Created is when this wrapping was made (UTC, second precision).
	Created time.Time
}

type headerJSON struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	KeyID      string `json:"keyId"`
	KeyVersion string `json:"keyVersion"`
	Algorithm  string `json:"algorithm"`
	WrappedKey string `json:"wrappedKey"`
	Created    string `json:"created"`
}

// Validate reports what is wrong with h, wrapping ErrBadHeader.
func (h *Header) Validate() error {
	u, err := url.Parse(h.KeyID)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%w: keyId %q is not an absolute URI with a host", ErrBadHeader, h.KeyID)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: keyId %q must not carry user info, query or fragment", ErrBadHeader, h.KeyID)
	}
	if !keyVersionRE.MatchString(h.KeyVersion) {
		return fmt.Errorf("%w: keyVersion %q must be 1-128 of [A-Za-z0-9_-]", ErrBadHeader, h.KeyVersion)
	}
	if !headerAlgorithm(h.Algorithm) {
		return fmt.Errorf("%w: algorithm %q is not one of RSA-OAEP-256, RSA-OAEP, A256KW", ErrBadHeader, h.Algorithm)
	}
	if n := len(h.WrappedKey); n < minWrappedKeySize || n > maxWrappedKeySize {
		return fmt.Errorf("%w: wrappedKey is %d bytes, want %d to %d (a 32-byte value would be an unwrapped key)", ErrBadHeader, n, minWrappedKeySize, maxWrappedKeySize)
	}
	if h.Created.IsZero() {
		return fmt.Errorf("%w: created is missing", ErrBadHeader)
	}
	return nil
}

// EncodeHeader returns the on-disk form of h after validating it.
func EncodeHeader(h *Header) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	j := headerJSON{
		Format:     HeaderFormat,
		Version:    HeaderVersion,
		KeyID:      h.KeyID,
		KeyVersion: h.KeyVersion,
		Algorithm:  h.Algorithm,
		WrappedKey: base64.RawURLEncoding.EncodeToString(h.WrappedKey),
		Created:    h.Created.UTC().Truncate(time.Second).Format(time.RFC3339),
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeHeader parses and validates the on-disk form of a header.
func DecodeHeader(b []byte) (*Header, error) {
	if len(b) > maxHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadHeader, len(b), maxHeaderSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j headerJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadHeader)
	}
	if j.Format != HeaderFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadHeader, j.Format, HeaderFormat)
	}
	if j.Version != HeaderVersion {
		return nil, fmt.Errorf("%w: version %d is not supported (want %d)", ErrBadHeader, j.Version, HeaderVersion)
	}
	wk, err := base64.RawURLEncoding.Strict().DecodeString(j.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("%w: wrappedKey is not unpadded base64url: %v", ErrBadHeader, err)
	}
	created, err := time.Parse(time.RFC3339, j.Created)
	if err != nil {
		return nil, fmt.Errorf("%w: created: %v", ErrBadHeader, err)
	}
	h := &Header{
		KeyID:      j.KeyID,
		KeyVersion: j.KeyVersion,
		Algorithm:  j.Algorithm,
		WrappedKey: wk,
		Created:    created.UTC(),
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// WriteHeader writes h to path atomically and durably: a temporary file in
// the same directory is written and fsynced, renamed over path, and the
// directory is fsynced, so a crash leaves either the old or the new header.
func WriteHeader(ctx context.Context, path string, h *Header) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := EncodeHeader(h)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return nil
}

// ReadHeader reads and validates the header at path.
func ReadHeader(ctx context.Context, path string) (*Header, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHeaderSize+1))
	if err != nil {
		return nil, fmt.Errorf("read header %s: %w", path, err)
	}
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, fmt.Errorf("read header %s: %w", path, err)
	}
	return h, nil
}
