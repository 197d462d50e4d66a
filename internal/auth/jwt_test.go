package auth

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The token vectors in testdata/*.jwt are compact JWTs as they travel in an Authorization
// header, signed (or not) by the key whose public half is testdata/jwt_signer.pub.pem. Each is
// verified at vectorNow; good_* must be accepted, fail_* refused with the error of the table.
// go test ./internal/auth -run TestJWTVectors -update-vectors writes them again with a new key
// (the private key is not kept).

var updateVectors = flag.Bool("update-vectors", false, "write testdata/*.jwt and testdata/jwt_signer.pub.pem again, with a new key")

// vectorNow is the verification time of every vector: 2026-01-01T00:00:00Z.
var vectorNow = time.Unix(1767225600, 0)

const (
	vectorIssuer = "https://127.0.0.1:8443/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
	vectorOID    = "3f1c1a7e-2b57-4f2a-9a43-6c2f6ad0c0a1"
)

// jwtVectors maps each vector to the error verifyJWT must refuse it with (nil: accepted).
var jwtVectors = map[string]error{
	"good_valid.jwt":                   nil,
	"good_expiry_within_skew.jwt":      nil, // expired exactly the allowed skew ago
	"good_not_before_within_skew.jwt":  nil, // valid from exactly the allowed skew ahead
	"good_no_not_before.jwt":           nil,
	"fail_expired.jwt":                 ErrExpired, // a second beyond the skew
	"fail_not_yet_valid.jwt":           ErrNotYetValid,
	"fail_no_expiry.jwt":               ErrExpired,
	"fail_bad_signature_known_kid.jwt": ErrSignature, // another key's signature under the signer's kid
	"fail_unknown_kid.jwt":             ErrSignature,
	"fail_no_kid.jwt":                  ErrSignature,
	"fail_tampered_claims.jwt":         ErrSignature, // another oid under a good token's signature
	"fail_expired_and_forged.jwt":      ErrSignature, // the signature is checked before the claims
	"fail_empty_signature.jwt":         ErrSignature,
	"fail_alg_none.jwt":                ErrSignature,
	"fail_alg_hs256_public_key.jwt":    ErrSignature, // HMAC keyed with the signer's public key
	"fail_alg_rs512.jwt":               ErrSignature,
	"fail_alg_ps256.jwt":               ErrSignature,
	"fail_alg_lowercase.jwt":           ErrSignature, // "rs256": alg names are case-sensitive
	"fail_empty.jwt":                   ErrMalformed,
	"fail_two_segments.jwt":            ErrMalformed,
	"fail_four_segments.jwt":           ErrMalformed,
	"fail_header_not_base64url.jwt":    ErrMalformed,
	"fail_header_not_json.jwt":         ErrMalformed,
	"fail_signature_not_base64url.jwt": ErrMalformed,
	"fail_claims_not_base64url.jwt":    ErrMalformed, // signed, but not decodable
	"fail_claims_not_json.jwt":         ErrMalformed,
	"fail_claims_wrong_type.jwt":       ErrMalformed, // "exp": "tomorrow"
}

func TestJWTVectors(t *testing.T) {
	if *updateVectors {
		writeJWTVectors(t)
	}
	keys := map[string]*rsa.PublicKey{}
	pub := readVectorKey(t)
	keys[KeyID(pub)] = pub

	files, err := filepath.Glob("testdata/*.jwt")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := jwtVectors[filepath.Base(f)]; !ok {
			t.Errorf("vector %s has no entry in the table", f)
		}
	}
	for name, want := range jwtVectors {
		t.Run(name, func(t *testing.T) {
			if strings.HasPrefix(name, "good_") != (want == nil) {
				t.Fatalf("table entry for %s contradicts its name", name)
			}
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatalf("%v (go test -run TestJWTVectors -update-vectors writes the vectors)", err)
			}
			c, err := verifyJWT(strings.TrimSuffix(string(b), "\n"), keys, vectorNow)
			if want != nil {
				if !errors.Is(err, want) {
					t.Fatalf("verifyJWT = %+v, %v; want %v", c, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("verifyJWT refused a good token: %v", err)
			}
			if c.ObjectID != vectorOID || c.Issuer != vectorIssuer || c.Audience != "https://management.azure.com" {
				t.Fatalf("claims = %+v", c)
			}
		})
	}
}

// TestJWTVectorsNeedTheKey: the good vectors are accepted for their key only, so the table's
// refusals are not an artefact of a key the test failed to load.
func TestJWTVectorsNeedTheKey(t *testing.T) {
	b, err := os.ReadFile("testdata/good_valid.jwt")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSuffix(string(b), "\n")
	pub := readVectorKey(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The signer's kid, but another public key: the signature does not verify.
	if _, err := verifyJWT(tok, map[string]*rsa.PublicKey{KeyID(pub): &other.PublicKey}, vectorNow); !errors.Is(err, ErrSignature) {
		t.Fatalf("a good token verified under another key: %v", err)
	}
	if _, err := verifyJWT(tok, nil, vectorNow); !errors.Is(err, ErrSignature) {
		t.Fatalf("a good token verified with no keys: %v", err)
	}
}

// TestSignJWTRoundTrip: what SignJWT signs, verifyJWT accepts with the same claims; the kid is
// the key's RFC 7638 thumbprint.
func TestSignJWTRoundTrip(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := vectorClaims()
	c.AppID, c.IDType, c.ManagedIdentityID, c.TokenID, c.Version = "app", "app", "/subscriptions/x/mi", "uti", "2.0"
	tok, err := SignJWT(key, KeyID(&key.PublicKey), c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verifyJWT(tok, map[string]*rsa.PublicKey{KeyID(&key.PublicKey): &key.PublicKey}, vectorNow)
	if err != nil || got != c {
		t.Fatalf("verifyJWT = %+v, %v; want %+v", got, err, c)
	}
	var h jwtHeader
	hb, _ := b64.DecodeString(strings.Split(tok, ".")[0])
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "RS256" || h.Typ != "JWT" || h.Kid != KeyID(&key.PublicKey) || len(h.Kid) != 43 {
		t.Fatalf("header = %s", hb)
	}
}

func readVectorKey(t *testing.T) *rsa.PublicKey {
	t.Helper()
	b, err := os.ReadFile("testdata/jwt_signer.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("testdata/jwt_signer.pub.pem: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("testdata/jwt_signer.pub.pem holds a %T", k)
	}
	return pub
}

func vectorClaims() Claims {
	now := vectorNow.Unix()
	return Claims{Issuer: vectorIssuer, Subject: vectorOID, Audience: "https://management.azure.com", IssuedAt: now - 600,
		NotBefore: now - 600, Expiry: now + 3000, ObjectID: vectorOID, TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"}
}

// writeJWTVectors makes every vector of the table with a new signer key.
func writeJWTVectors(t *testing.T) {
	t.Helper()
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid := KeyID(&signer.PublicKey)
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64.EncodeToString(b)
	}
	// sign signs header.payload as they are, with the algorithm named.
	sign := func(alg string, key *rsa.PrivateKey, header, payload string) string {
		in := header + "." + payload
		var sig []byte
		var err error
		switch alg {
		case "RS256":
			sum := sha256.Sum256([]byte(in))
			sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
		case "RS512":
			sum := sha512.Sum512([]byte(in))
			sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA512, sum[:])
		case "PS256":
			sum := sha256.Sum256([]byte(in))
			sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], nil)
		default:
			t.Fatalf("no signer for %s", alg)
		}
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + b64.EncodeToString(sig)
	}
	hdr := func(alg, kid string) string { return enc(jwtHeader{Alg: alg, Typ: "JWT", Kid: kid}) }
	// claims are the standard claims with changes; a nil value drops the claim.
	claims := func(changes map[string]any) string {
		var m map[string]any
		b, _ := json.Marshal(vectorClaims())
		json.Unmarshal(b, &m)
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return enc(m)
	}
	now := vectorNow.Unix()
	good := claims(nil)
	valid := sign("RS256", signer, hdr("RS256", kid), good)
	parts := strings.Split(valid, ".")
	pubDER, err := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	mac := hmac.New(sha256.New, pubPEM)
	hsIn := hdr("HS256", kid) + "." + good
	mac.Write([]byte(hsIn))

	vectors := map[string]string{
		"good_valid.jwt":                   valid,
		"good_expiry_within_skew.jwt":      sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"exp": now - 60, "nbf": now - 3660, "iat": now - 3660})),
		"good_not_before_within_skew.jwt":  sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"nbf": now + 60, "iat": now + 60, "exp": now + 3660})),
		"good_no_not_before.jwt":           sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"nbf": nil})),
		"fail_expired.jwt":                 sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"exp": now - 61, "nbf": now - 3661, "iat": now - 3661})),
		"fail_not_yet_valid.jwt":           sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"nbf": now + 61, "iat": now + 61, "exp": now + 3661})),
		"fail_no_expiry.jwt":               sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"exp": nil})),
		"fail_bad_signature_known_kid.jwt": sign("RS256", forger, hdr("RS256", kid), good),
		"fail_unknown_kid.jwt":             sign("RS256", forger, hdr("RS256", KeyID(&forger.PublicKey)), good),
		"fail_no_kid.jwt":                  sign("RS256", signer, hdr("RS256", ""), good),
		"fail_tampered_claims.jwt":         parts[0] + "." + claims(map[string]any{"oid": "00000000-0000-0000-0000-0000000000ad", "sub": "00000000-0000-0000-0000-0000000000ad"}) + "." + parts[2],
		"fail_expired_and_forged.jwt":      sign("RS256", forger, hdr("RS256", kid), claims(map[string]any{"exp": now - 7200})),
		"fail_empty_signature.jwt":         parts[0] + "." + parts[1] + ".",
		"fail_alg_none.jwt":                hdr("none", kid) + "." + good + ".",
		"fail_alg_hs256_public_key.jwt":    hsIn + "." + b64.EncodeToString(mac.Sum(nil)),
		"fail_alg_rs512.jwt":               sign("RS512", signer, hdr("RS512", kid), good),
		"fail_alg_ps256.jwt":               sign("PS256", signer, hdr("PS256", kid), good),
		"fail_alg_lowercase.jwt":           sign("RS256", signer, hdr("rs256", kid), good),
		"fail_empty.jwt":                   "",
		"fail_two_segments.jwt":            parts[0] + "." + parts[1],
		"fail_four_segments.jwt":           valid + "." + parts[2],
		"fail_header_not_base64url.jwt": func() string {
			h, _ := json.Marshal(jwtHeader{Alg: "RS256", Typ: "JWT", Kid: kid})
			return sign("RS256", signer, base64.StdEncoding.EncodeToString(h)+"=", good)
		}(),
		"fail_header_not_json.jwt":         sign("RS256", signer, b64.EncodeToString([]byte(`{"alg":"RS256","kid":`)), good),
		"fail_signature_not_base64url.jwt": parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/==",
		"fail_claims_not_base64url.jwt":    sign("RS256", signer, hdr("RS256", kid), base64.StdEncoding.EncodeToString([]byte(`{"oid":"`+vectorOID+`","exp":`+"9999999999"+`}`))+"=="),
		"fail_claims_not_json.jwt":         sign("RS256", signer, hdr("RS256", kid), b64.EncodeToString([]byte("not json"))),
		"fail_claims_wrong_type.jwt":       sign("RS256", signer, hdr("RS256", kid), claims(map[string]any{"exp": "tomorrow"})),
	}
	old, _ := filepath.Glob("testdata/*.jwt")
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/jwt_signer.pub.pem", pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(vectors))
	for name := range vectors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := jwtVectors[name]; !ok {
			t.Fatalf("vector %s is not in the table", name)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), []byte(vectors[name]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(vectors) != len(jwtVectors) {
		t.Fatalf("%d vectors written for %d table entries", len(vectors), len(jwtVectors))
	}
}
