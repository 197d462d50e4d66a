package postgres

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// SCRAM-SHA-256 parameters PostgreSQL uses for verifiers it computes itself.
const (
	scramIterations = 4096
	scramSaltSize   = 16
)

// ErrPasswordCharset is returned for passwords that are not printable ASCII.
//
// PostgreSQL and libpq normalise non-ASCII passwords with SASLprep before
// hashing; a verifier computed here without it would not match what clients
// send, so such passwords are refused rather than silently unusable.
var ErrPasswordCharset = errors.New("postgres: password must be printable ASCII")

// ScramVerifier computes the SCRAM-SHA-256 verifier PostgreSQL stores for
// password ("SCRAM-SHA-256$4096:salt$StoredKey:ServerKey", RFC 5802/7677),
// with a fresh random salt. Sending this instead of the password means the
// plaintext never reaches the server: not its log, not pg_stat_activity,
// not a failed statement's error report.
func ScramVerifier(password []byte) (string, error) {
	salt := make([]byte, scramSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	return scramVerifier(password, salt, scramIterations)
}

func scramVerifier(password, salt []byte, iterations int) (string, error) {
	if len(password) == 0 {
		return "", errors.New("postgres: empty password")
	}
	for _, c := range password {
		if c < 0x20 || c > 0x7e {
			return "", ErrPasswordCharset
		}
	}
	salted := pbkdf2SHA256(password, salt, iterations)
	defer clear(salted)
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	defer clear(clientKey)
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, []byte("Server Key"))
	enc := base64.StdEncoding
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations,
		enc.EncodeToString(salt), enc.EncodeToString(storedKey[:]), enc.EncodeToString(serverKey)), nil
}

// pbkdf2SHA256 is PBKDF2-HMAC-SHA-256 (RFC 8018) for a single 32-byte block.
// It is written out because crypto/pbkdf2 takes the password as a string,
// which cannot be zeroed afterwards.
func pbkdf2SHA256(password, salt []byte, iterations int) []byte {
	mac := hmac.New(sha256.New, password)
	mac.Write(salt)
	var idx [4]byte
	binary.BigEndian.PutUint32(idx[:], 1)
	mac.Write(idx[:])
	u := mac.Sum(nil)
	out := append([]byte(nil), u...)
	for i := 1; i < iterations; i++ {
		mac.Reset()
		mac.Write(u)
		u = mac.Sum(u[:0])
		for j := range out {
			out[j] ^= u[j]
		}
	}
	clear(u)
	return out
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
