package backup

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// DEKSize is the size in bytes of a repository's backup DEK.
const DEKSize = 32

// passphraseSalt versions the derivation: a new scheme gets a new salt.
const passphraseSalt = "pgflex/backup/repo-cipher-pass/v1"

// Passphrase derives the pgBackRest passphrase (repo-cipher-pass) of a
// stanza's repository from that repository's 32-byte backup DEK:
//
//	base64url-nopad( HKDF-SHA256(secret = dek,
//	                             salt   = "pgflex/backup/repo-cipher-pass/v1",
//	                             info   = stanza,
//	                             length = 32) )
//
// 43 ASCII characters. Binding the stanza into the derivation means two
// repositories never share a passphrase even if a DEK were reused. The
// passphrase depends only on the DEK and the stanza, not on the
// repository's index, because a restore may open the source's repository 2
// as its own repository 1. The caller zeroes the result (Passphrases.Wipe).
func Passphrase(dek []byte, stanza string) ([]byte, error) {
	if len(dek) != DEKSize {
		return nil, fmt.Errorf("backup: DEK must be %d bytes, got %d", DEKSize, len(dek))
	}
	if err := validateStanzaName(stanza); err != nil {
		return nil, err
	}
	raw, err := hkdf.Key(sha256.New, dek, []byte(passphraseSalt), stanza, 32)
	if err != nil {
		return nil, fmt.Errorf("backup: derive passphrase: %w", err)
	}
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
	base64.RawURLEncoding.Encode(out, raw)
	clear(raw)
	return out, nil
}

// Passphrases are the cipher passphrases of a stanza's repositories, by
// repository index (1 or 2). A repository that is not encrypted, or whose
// key is unavailable, has no entry.
type Passphrases map[int][]byte

// Wipe zeroes every passphrase and empties p.
func (p Passphrases) Wipe() {
	for k, v := range p {
		clear(v)
		delete(p, k)
	}
}

// clone copies p (the copy is wiped independently).
func (p Passphrases) clone() Passphrases {
	c := make(Passphrases, len(p))
	for k, v := range p {
		c[k] = append([]byte(nil), v...)
	}
	return c
}
