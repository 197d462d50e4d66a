// Package seal encrypts pgflex's own secrets at rest (the token-signing key, the TLS keys, the key
// store's private keys) under one root key with AES-256-GCM.
//
// The root key is the one secret that stays in a file (0600) of the data directory; a deployment
// can keep that file on a separate, protected mount. Everything else secret is sealed under it.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/pgflex/pgflex/internal/fsutil"
)

const rootKeySize = 32

// Box seals and opens data under the root key.
type Box struct {
	aead cipher.AEAD
}

// New makes a Box from a 32-byte key. The caller may zero key afterwards.
func New(key []byte) (*Box, error) {
	if len(key) != rootKeySize {
		return nil, fmt.Errorf("root key must be %d bytes, got %d", rootKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreateRootKey reads the root key file, creating it (0600, random) if it does not exist.
func LoadOrCreateRootKey(path string) (*Box, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, rootKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate root key: %w", err)
		}
		if err := fsutil.WriteFileAtomic(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("write root key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read root key: %w", err)
	}
	defer clear(key)
	b, err := New(key)
	if err != nil {
		return nil, fmt.Errorf("root key %s: %w", path, err)
	}
	return b, nil
}

// Seal encrypts plaintext; aad binds the ciphertext to its purpose (for example the key's name),
// so that one sealed blob cannot be swapped for another.
func (b *Box) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return b.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal produced with the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, errors.New("sealed data is too short")
	}
	pt, err := b.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("sealed data does not open under the root key (wrong key or tampered data)")
	}
	return pt, nil
}

// WriteFile seals plaintext into path atomically (0600).
func (b *Box) WriteFile(path string, plaintext, aad []byte) error {
	return fsutil.WriteFileAtomic(path, b.Seal(plaintext, aad), 0o600)
}

// ReadFile opens a file written by WriteFile.
func (b *Box) ReadFile(path string, aad []byte) ([]byte, error) {
	sealed, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pt, err := b.Open(sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pt, nil
}
