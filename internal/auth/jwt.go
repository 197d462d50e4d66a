package auth

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims are the token claims pgflex issues and checks, named as Entra ID names them.
type Claims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ObjectID  string `json:"oid"`
	TenantID  string `json:"tid"`
	AppID     string `json:"appid,omitempty"`
	IDType    string `json:"idtyp,omitempty"`
	// ManagedIdentityID is the resource id of the managed identity the token is for (xms_mirid).
	ManagedIdentityID string `json:"xms_mirid,omitempty"`
	TokenID           string `json:"uti,omitempty"`
	Version           string `json:"ver,omitempty"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

var b64 = base64.RawURLEncoding

// SignJWT produces a compact RS256 JWT signed by key. The issuer uses it; tests use it to mint
// tokens a client could not get (expired, forged) from a key they hold.
func SignJWT(key *rsa.PrivateKey, kid string, c Claims) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "RS256", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// Token verification failures, told apart because ARM answers each with its own code.
var (
	ErrMalformed   = errors.New("the token is malformed")
	ErrSignature   = errors.New("the token signature is invalid")
	ErrExpired     = errors.New("the token has expired")
	ErrNotYetValid = errors.New("the token is not valid yet")
)

// clockSkew tolerates small clock differences between issuer and verifier, as Entra ID does.
const clockSkew = time.Minute

// verifyJWT checks an RS256 token's signature with pub and its time window, and returns its claims.
func verifyJWT(token string, keys map[string]*rsa.PublicKey, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, ErrMalformed
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return c, ErrMalformed
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return c, ErrMalformed
	}
	// Only RS256: a token naming another algorithm (none, HS256) is refused outright.
	if h.Alg != "RS256" {
		return c, ErrSignature
	}
	pub := keys[h.Kid]
	if pub == nil {
		return c, ErrSignature
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return c, ErrMalformed
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return c, ErrSignature
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return c, ErrMalformed
	}
	if err := json.Unmarshal(pb, &c); err != nil {
		return c, ErrMalformed
	}
	if now.After(time.Unix(c.Expiry, 0).Add(clockSkew)) {
		return c, ErrExpired
	}
	if now.Add(clockSkew).Before(time.Unix(c.NotBefore, 0)) {
		return c, ErrNotYetValid
	}
	return c, nil
}

// keyID is the RFC 7638 thumbprint of an RSA public key, used as the JWT kid.
func keyID(pub *rsa.PublicKey) string {
	j := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64.EncodeToString(bigEndian(pub.E)), b64.EncodeToString(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(j))
	return b64.EncodeToString(sum[:])
}

func bigEndian(e int) []byte {
	var b []byte
	for e > 0 {
		b = append([]byte{byte(e)}, b...)
		e >>= 8
	}
	return b
}

// KeyID is the kid pgflex puts in tokens signed by key.
func KeyID(pub *rsa.PublicKey) string { return keyID(pub) }
