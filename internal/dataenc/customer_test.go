package dataenc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testKeyVersion is the version of the fake key store's key.
const testKeyVersion = "0123456789abcdef0123456789abcdef"

// fakeKeyStore answers wrapkey and unwrapkey for one RSA key, k, as Key Vault does, and
// refuses callers without the expected bearer token with 403.
func fakeKeyStore(t *testing.T, key *rsa.PrivateKey) *httptest.Server {
	t.Helper()
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "Forbidden", "message": "no permission"}})
			return
		}
		var req struct{ Alg, Value string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Alg != AlgRSAOAEP256 {
			t.Errorf("request body: %+v, %v", req, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		in, err := b64url.DecodeString(req.Value)
		if err != nil {
			t.Errorf("value is not base64url: %v", err)
		}
		var out []byte
		switch {
		case strings.HasSuffix(r.URL.Path, "/wrapkey"):
			out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, in, nil)
		case strings.HasSuffix(r.URL.Path, "/unwrapkey"):
			out, err = rsa.DecryptOAEP(sha256.New(), rand.Reader, key, in, nil)
		}
		if err != nil {
			t.Errorf("%s: %v", r.URL.Path, err)
		}
		kid := "https://" + r.Host + "/keys/k/" + testKeyVersion
		json.NewEncoder(w).Encode(map[string]string{"kid": kid, "value": b64url.EncodeToString(out)})
	}))
}

func TestCustomerManagedWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ks := fakeKeyStore(t, key)
	defer ks.Close()
	kid := ks.URL + "/keys/k/" + testKeyVersion
	c := CustomerManaged{HTTP: ks.Client(), KeyURI: ks.URL + "/keys/k",
		Token: func(context.Context, string) (string, error) { return "tok", nil }}
	dek, _ := NewDEK()
	env, err := c.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	if env.KeyID != kid || len(env.Wrapped) != 256 {
		t.Fatalf("envelope %s with %d wrapped bytes, want %s and 256", env.KeyID, len(env.Wrapped), kid)
	}
	back, err := c.Unwrap(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, dek) {
		t.Fatal("unwrap returned another DEK")
	}

	refused := CustomerManaged{HTTP: ks.Client(), KeyURI: c.KeyURI,
		Token: func(context.Context, string) (string, error) { return "other", nil }}
	if _, err := refused.Unwrap(ctx, env); !IsRefusal(err) {
		t.Fatalf("a 403 is %v, want a refusal", err)
	}
}

func TestKeyOpBody(t *testing.T) {
	b := keyOpBody(AlgRSAOAEP256, []byte{0xfb, 0xff, 0x00})
	var got struct{ Alg, Value string }
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Alg != AlgRSAOAEP256 || got.Value != "-_8A" {
		t.Fatalf("body %s", b)
	}
}
