package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

const (
	testEndpoint = "https://127.0.0.1:8443"
	testTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	adminObject  = "0a0a0a0a-0000-4000-8000-00000000000a"
	userObject   = "0b0b0b0b-0000-4000-8000-00000000000b"
	goneObject   = "0c0c0c0c-0000-4000-8000-00000000000c"
)

// testIssuer is an Issuer over a fresh store holding an administrator, a principal that is not
// one, and a principal that was deleted; its clock stands at vectorNow.
func testIssuer(t *testing.T) (*Issuer, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	err = st.Update(context.Background(), func(tx store.Tx) error {
		for _, p := range []*Principal{
			{ObjectID: adminObject, ClientID: "c-admin", TenantID: testTenant, Type: TypeServicePrincipal, Admin: true},
			{ObjectID: userObject, ClientID: "c-user", TenantID: testTenant, Type: TypeServicePrincipal},
			{ObjectID: goneObject, ClientID: "c-gone", TenantID: testTenant, Type: TypeServicePrincipal},
		} {
			if err := PutPrincipal(tx, p); err != nil {
				return err
			}
		}
		return DeletePrincipal(tx, goneObject)
	})
	if err != nil {
		t.Fatal(err)
	}
	i := NewIssuer(key, testEndpoint, testTenant, st, Audiences{ARM: "https://management.azure.com", KeyVault: "https://vault.localhost"})
	i.now = func() time.Time { return vectorNow }
	return i, key
}

// issuerClaims are the claims the issuer would put in an ARM token for oid.
func issuerClaims(oid string) Claims {
	now := vectorNow.Unix()
	return Claims{Issuer: testEndpoint + "/" + testTenant + "/v2.0", Subject: oid, Audience: "https://management.azure.com",
		IssuedAt: now - 60, NotBefore: now - 60, Expiry: now + 3540, ObjectID: oid, TenantID: testTenant}
}

// TestIssuerVerify: beyond verifyJWT's checks, Verify refuses a token for another issuer or
// audience and one whose principal does not exist (any more); it accepts what the issuer signs.
func TestIssuerVerify(t *testing.T) {
	i, key := testIssuer(t)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(*Claims)) Claims {
		c := issuerClaims(adminObject)
		change(&c)
		return c
	}
	cases := []struct {
		name   string
		signer *rsa.PrivateKey
		claims Claims
		want   error
	}{
		{"the issuer's own token", key, issuerClaims(adminObject), nil},
		{"audience with a trailing slash", key, with(func(c *Claims) { c.Audience += "/" }), nil},
		{"audience in another case", key, with(func(c *Claims) { c.Audience = "HTTPS://Management.Azure.com" }), nil},
		{"another audience", key, with(func(c *Claims) { c.Audience = "https://vault.localhost" }), ErrWrongAudience},
		{"an audience that only starts like it", key, with(func(c *Claims) { c.Audience = "https://management.azure.com.evil" }), ErrWrongAudience},
		{"no audience", key, with(func(c *Claims) { c.Audience = "" }), ErrWrongAudience},
		{"another issuer", key, with(func(c *Claims) { c.Issuer = "https://login.microsoftonline.com/" + testTenant + "/v2.0" }), ErrWrongIssuer},
		{"another tenant's issuer", key, with(func(c *Claims) { c.Issuer = testEndpoint + "/00000000-0000-0000-0000-000000000000/v2.0" }), ErrWrongIssuer},
		{"no issuer", key, with(func(c *Claims) { c.Issuer = "" }), ErrWrongIssuer},
		{"unknown principal", key, issuerClaims("0d0d0d0d-0000-4000-8000-00000000000d"), ErrUnknownPrincipal},
		{"deleted principal", key, issuerClaims(goneObject), ErrUnknownPrincipal},
		{"no oid", key, with(func(c *Claims) { c.ObjectID = "" }), ErrUnknownPrincipal},
		{"expired", key, with(func(c *Claims) { c.Expiry = vectorNow.Add(-clockSkew - time.Second).Unix() }), ErrExpired},
		{"not yet valid", key, with(func(c *Claims) { c.NotBefore = vectorNow.Add(clockSkew + time.Second).Unix() }), ErrNotYetValid},
		{"signed by another key under the issuer's kid", forger, issuerClaims(adminObject), ErrSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := SignJWT(c.signer, i.kid, c.claims)
			if err != nil {
				t.Fatal(err)
			}
			got, p, err := i.Verify(context.Background(), tok, i.aud.ARM)
			if c.want != nil {
				if !errors.Is(err, c.want) || p != nil {
					t.Fatalf("Verify = %v, %v; want %v", p, err, c.want)
				}
				return
			}
			if err != nil || p == nil || p.ObjectID != adminObject || got.ObjectID != adminObject {
				t.Fatalf("Verify = %+v, %+v, %v", got, p, err)
			}
		})
	}
	// Any of the audiences given will do; none given, none will.
	tok, _ := SignJWT(key, i.kid, with(func(c *Claims) { c.Audience = "https://vault.localhost" }))
	if _, _, err := i.Verify(context.Background(), tok, i.aud.ARM, i.aud.KeyVault); err != nil {
		t.Errorf("a key-store token for [ARM, key store]: %v", err)
	}
	if _, _, err := i.Verify(context.Background(), tok); !errors.Is(err, ErrWrongAudience) {
		t.Errorf("a token verified for no audience: %v", err)
	}
}

// TestARMAuthenticator: each refusal reaches ARM with the status and code Azure gives it.
func TestARMAuthenticator(t *testing.T) {
	i, key := testIssuer(t)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k *rsa.PrivateKey, kid string, c Claims) string {
		tok, err := SignJWT(k, kid, c)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	admin := issuerClaims(adminObject)
	expired, wrongAud, wrongIss, early := admin, admin, admin, admin
	expired.Expiry = vectorNow.Add(-2 * time.Hour).Unix()
	wrongAud.Audience = "https://vault.localhost"
	wrongIss.Issuer = "https://login.microsoftonline.com/" + testTenant + "/v2.0"
	early.NotBefore = vectorNow.Add(time.Hour).Unix()
	cases := []struct {
		name, header string
		status       int
		code         string
	}{
		{"the administrator", sign(key, i.kid, admin), 0, ""},
		{"no header", "", 401, "AuthenticationFailed"},
		{"not a bearer token", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", 401, "AuthenticationFailed"},
		{"garbage", "Bearer not.a.jwt", 401, "InvalidAuthenticationToken"},
		{"signed by another key under the issuer's kid", sign(forger, i.kid, admin), 401, "InvalidAuthenticationToken"},
		{"signed by another key under its own kid", sign(forger, KeyID(&forger.PublicKey), admin), 401, "InvalidAuthenticationToken"},
		{"expired", sign(key, i.kid, expired), 401, "ExpiredAuthenticationToken"},
		{"not yet valid", sign(key, i.kid, early), 401, "InvalidAuthenticationToken"},
		{"another audience", sign(key, i.kid, wrongAud), 401, "InvalidAuthenticationTokenAudience"},
		{"another issuer", sign(key, i.kid, wrongIss), 401, "InvalidAuthenticationTokenTenant"},
		{"a deleted principal", sign(key, i.kid, issuerClaims(goneObject)), 401, "InvalidAuthenticationToken"},
		{"a principal that is not the administrator", sign(key, i.kid, issuerClaims(userObject)), 403, "AuthorizationFailed"},
	}
	authn := i.ARMAuthenticator()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/subscriptions/x/resourcegroups/rg?api-version=2021-04-01", nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			p, err := authn(r)
			if c.code == "" {
				if err != nil || p.ObjectID != adminObject || !p.Admin {
					t.Fatalf("authenticator = %+v, %v", p, err)
				}
				return
			}
			var ae *arm.Error
			if !errors.As(err, &ae) || ae.Status != c.status || ae.Code != c.code || ae.Message == "" {
				t.Fatalf("authenticator error = %v (%T); want %d %s", err, err, c.status, c.code)
			}
		})
	}
}
