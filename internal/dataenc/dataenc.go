// Package dataenc owns a server's data encryption key (DEK) envelope: a fresh 256-bit DEK is
// wrapped (RSA-OAEP-256) by a key-encryption key — the region's service-managed key or the
// customer's key in a key store — and only the wrapped form is ever persisted, together with the
// id and version of the key that wrapped it.
package dataenc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DEKSize is the size of a data encryption key in bytes (256 bits).
const DEKSize = 32

// AlgRSAOAEP256 is the wrap algorithm pgflex uses, as Key Vault names it.
const AlgRSAOAEP256 = "RSA-OAEP-256"

// Envelope is a wrapped DEK.
type Envelope struct {
	// KeyID is the full, versioned id of the key that wrapped the DEK.
	KeyID     string    `json:"kid"`
	Algorithm string    `json:"alg"`
	Wrapped   []byte    `json:"wrapped"`
	Created   time.Time `json:"created"`
}

// KeyVersion is the version segment of the envelope's key id (empty if it has none).
func (e *Envelope) KeyVersion() string {
	_, _, v, err := ParseKeyID(e.KeyID)
	if err != nil {
		return ""
	}
	return v
}

// NewDEK returns a fresh random DEK. The caller zeroes it (clear) when done.
func NewDEK() ([]byte, error) {
	dek := make([]byte, DEKSize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("generate DEK: %w", err)
	}
	return dek, nil
}

// Wrapper wraps and unwraps DEKs under one key-encryption key.
type Wrapper interface {
	Wrap(ctx context.Context, dek []byte) (*Envelope, error)
	Unwrap(ctx context.Context, env *Envelope) ([]byte, error)
}

// ServiceKeys is the embedded key store's in-process API for service-managed keys.
type ServiceKeys interface {
	WrapWithServiceKey(ctx context.Context, region string, dek []byte) (keyID string, wrapped []byte, err error)
	UnwrapWithServiceKey(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// ServiceManaged wraps under the region's service-managed key.
type ServiceManaged struct {
	Keys   ServiceKeys
	Region string
}

// Wrap wraps dek under the region's service key.
func (s ServiceManaged) Wrap(ctx context.Context, dek []byte) (*Envelope, error) {
	kid, wrapped, err := s.Keys.WrapWithServiceKey(ctx, s.Region, dek)
	if err != nil {
		return nil, fmt.Errorf("wrap DEK with the service-managed key of %s: %w", s.Region, err)
	}
	return &Envelope{KeyID: kid, Algorithm: AlgRSAOAEP256, Wrapped: wrapped, Created: time.Now().UTC()}, nil
}

// Unwrap unwraps an envelope made by Wrap.
func (s ServiceManaged) Unwrap(ctx context.Context, env *Envelope) ([]byte, error) {
	dek, err := s.Keys.UnwrapWithServiceKey(ctx, env.KeyID, env.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap DEK with the service-managed key: %w", err)
	}
	if len(dek) != DEKSize {
		clear(dek)
		return nil, fmt.Errorf("unwrapped DEK has %d bytes, want %d", len(dek), DEKSize)
	}
	return dek, nil
}

// ParseKeyID splits a key identifier https://{host}/keys/{name}[/{version}] into its vault URL
// (scheme and host), key name and version (empty for a versionless reference).
func ParseKeyID(kid string) (vaultURL, name, version string, err error) {
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("%w: '%s' %s", ErrMalformedKeyID, kid, why)
	}
	rest, ok := strings.CutPrefix(kid, "https://")
	if !ok {
		return bad("must start with https://")
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" {
		return bad("has no host")
	}
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || !strings.EqualFold(segs[0], "keys") {
		return bad("must be https://{vault}/keys/{name} or https://{vault}/keys/{name}/{version}")
	}
	name = segs[1]
	if name == "" || len(name) > 127 {
		return bad("has an empty or too long key name")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return bad("has a key name with characters other than letters, digits and hyphens")
		}
	}
	if len(segs) == 3 {
		version = segs[2]
		if len(version) != 32 || strings.Trim(strings.ToLower(version), "0123456789abcdef") != "" {
			return bad("has a version that is not 32 hexadecimal characters")
		}
	}
	return "https://" + host, name, version, nil
}

// ErrMalformedKeyID reports a key identifier that is not a Key Vault key URI.
var ErrMalformedKeyID = errors.New("malformed key identifier")
