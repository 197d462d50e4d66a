package keyvault_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/auth"
)

// TestKeyStoreRefusals covers what Azure's SDK never sends: requests without or with bad
// tokens, malformed bodies, unknown algorithms, names and hosts. Each is refused in Key
// Vault's error shape and changes nothing.
func TestKeyStoreRefusals(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	e.createVault("rg", "refusals", nil)
	c := e.keys("refusals", nil)
	created, err := c.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := e.vaultURL("refusals")
	tok := e.kvToken()
	wrapURL := base + "/keys/k/" + created.Key.KID.Version() + "/wrapkey?api-version=7.5"
	goodBody := `{"alg":"RSA-OAEP-256","value":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + `"}`
	if a := e.do("POST", wrapURL, tok, goodBody); a.status != 200 {
		t.Fatalf("a good raw wrap fails: %d %s", a.status, a.raw)
	}

	// The bearer challenge: what the Azure SDKs need to find the token issuer and audience.
	port := e.prof.Endpoint[strings.LastIndex(e.prof.Endpoint, ":")+1:]
	a := e.do("POST", wrapURL, "", "")
	wantChallenge := fmt.Sprintf(`Bearer authorization="%s/%s", resource="https://%s:%s"`, e.prof.Endpoint, e.tenant, e.prof.KeyVaultDNSSuffix, port)
	if a.status != 401 || a.header.Get("WWW-Authenticate") != wantChallenge || a.errCode() != "Unauthorized" ||
		a.errMessage() != "AKV10000: Request is missing a Bearer or PoP token." {
		t.Fatalf("no token: %d %q %s", a.status, a.header.Get("WWW-Authenticate"), a.raw)
	}

	// Forged and misdirected tokens.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims auth.Claims
	json.Unmarshal(payload, &claims)
	tampered := claims
	tampered.ObjectID = "00000000-0000-0000-0000-000000000001"
	tb, _ := json.Marshal(tampered)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	selfSigned, _ := auth.SignJWT(otherKey, auth.KeyID(&otherKey.PublicKey), claims)
	expiredClaims := claims
	expiredClaims.Expiry = time.Now().Add(-2 * time.Hour).Unix()
	expired, _ := auth.SignJWT(otherKey, auth.KeyID(&otherKey.PublicKey), expiredClaims)
	for _, c := range []struct {
		name, token, message string
	}{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tb) + "." + parts[2], "AKV10046"},
		{"signed by another key", selfSigned, "AKV10046"},
		{"expired and forged", expired, "AKV10046"},
		{"ARM audience", e.token("https://management.azure.com/.default"), "AKV10022: Invalid audience"},
		{"not a JWT", "garbage", "malformed"},
	} {
		a := e.do("POST", wrapURL, c.token, goodBody)
		if a.status != 401 || a.errCode() != "Unauthorized" || !strings.Contains(a.errMessage(), c.message) || a.header.Get("WWW-Authenticate") != wantChallenge {
			t.Errorf("%s: %d %s", c.name, a.status, a.raw)
		}
	}

	// Bad requests from an authorized caller.
	ver := created.Key.KID.Version()
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed base64url", "POST", "/keys/k/" + ver + "/wrapkey?api-version=7.5", `{"alg":"RSA-OAEP-256","value":"a+b/c=="}`, 400, "BadParameter"},
		{"wrong algorithm", "POST", "/keys/k/" + ver + "/wrapkey?api-version=7.5", `{"alg":"RSA-OAEP-384","value":"AAAA"}`, 400, "BadParameter"},
		{"symmetric algorithm", "POST", "/keys/k/unwrapkey?api-version=7.5", `{"alg":"A256KW","value":"AAAA"}`, 400, "BadParameter"},
		{"garbage ciphertext", "POST", "/keys/k/unwrapkey?api-version=7.5", `{"alg":"RSA-OAEP-256","value":"AAAA"}`, 400, "BadParameter"},
		{"no value", "POST", "/keys/k/wrapkey?api-version=7.5", `{"alg":"RSA-OAEP-256"}`, 400, "BadParameter"},
		{"malformed JSON", "POST", "/keys/k/wrapkey?api-version=7.5", `{"alg":`, 400, "BadParameter"},
		{"value too long", "POST", "/keys/k/wrapkey?api-version=7.5", `{"alg":"RSA-OAEP-256","value":"` + base64.RawURLEncoding.EncodeToString(make([]byte, 200)) + `"}`, 400, "BadParameter"},
		{"bad sign digest", "POST", "/keys/k/sign?api-version=7.5", `{"alg":"RS256","value":"AAAA"}`, 400, "BadParameter"},
		{"no api-version", "GET", "/keys/k", "", 400, "BadParameter"},
		{"unknown api-version", "GET", "/keys/k?api-version=1.0", "", 400, "BadParameter"},
		{"invalid key name", "POST", "/keys/bad_name/create?api-version=7.5", `{"kty":"RSA"}`, 400, "BadParameter"},
		{"small key", "POST", "/keys/small/create?api-version=7.5", `{"kty":"RSA","key_size":1024}`, 400, "BadParameter"},
		{"EC key", "POST", "/keys/ec/create?api-version=7.5", `{"kty":"EC","crv":"P-256"}`, 400, "BadParameter"},
		{"HSM key in a vault", "POST", "/keys/hsm/create?api-version=7.5", `{"kty":"RSA-HSM"}`, 400, "BadParameter"},
		{"unknown key op", "POST", "/keys/ops/create?api-version=7.5", `{"kty":"RSA","key_ops":["fly"]}`, 400, "BadParameter"},
		{"exp before nbf", "POST", "/keys/window/create?api-version=7.5", `{"kty":"RSA","attributes":{"nbf":2000000000,"exp":1900000000}}`, 400, "BadParameter"},
		{"too many results", "GET", "/keys?api-version=7.5&maxresults=26", "", 400, "BadParameter"},
		{"unknown version", "GET", "/keys/k/0123456789abcdef0123456789abcdef?api-version=7.5", "", 404, "KeyNotFound"},
		{"unknown key", "POST", "/keys/missing/wrapkey?api-version=7.5", goodBody, 404, "KeyNotFound"},
		{"recover a live key", "POST", "/deletedkeys/k/recover?api-version=7.5", "", 404, "KeyNotFound"},
		{"unknown operation", "GET", "/secrets?api-version=7.5", "", 404, "NotFound"},
		{"backup", "POST", "/keys/k/backup?api-version=7.5", "", 501, "NotSupported"},
	} {
		a := e.do(c.method, base+c.path, tok, c.body)
		if a.status != c.status || a.errCode() != c.code || a.errMessage() == "" {
			t.Errorf("%s: want %d %s, got %d %s", c.name, c.status, c.code, a.status, a.raw)
		}
	}
	// None of it created a key.
	if a := e.do("GET", base+"/keys?api-version=7.5", tok, ""); len(a.body["value"].([]any)) != 1 {
		t.Fatalf("refused requests left keys behind: %s", a.raw)
	}

	// Paging follows nextLink.
	for _, n := range []string{"k2", "k3"} {
		if _, err := c.CreateKey(ctx, n, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	pages, next := 0, base+"/keys?api-version=7.5&maxresults=2"
	for next != "" {
		a := e.do("GET", next, tok, "")
		pages++
		next, _ = a.body["nextLink"].(string)
	}
	if pages != 2 {
		t.Fatalf("3 keys at 2 per page took %d pages", pages)
	}

	// Hosts that are not vaults: unknown, soft-deleted, and the service-managed key vault.
	unknown := strings.Replace(base, "refusals.", "no-such-vault.", 1)
	if a := e.do("GET", unknown+"/keys?api-version=7.5", tok, ""); a.status != 404 || a.errCode() != "VaultNotFound" {
		t.Fatalf("unknown vault host: %d %s", a.status, a.raw)
	}
	service := strings.Replace(base, "refusals.", "pgflex--service.", 1)
	if a := e.do("GET", service+"/keys?api-version=7.5", "", ""); a.status != 401 || a.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("service vault without a token: %d %s", a.status, a.raw)
	}
	if a := e.do("GET", service+"/keys/smk-eastus?api-version=7.5", tok, ""); a.status != 403 || a.errCode() != "Forbidden" {
		t.Fatalf("service vault with the administrator's token: %d %s", a.status, a.raw)
	}
	if _, err := e.vaults.Delete(ctx, "rg", "refusals", nil); err != nil {
		t.Fatal(err)
	}
	if a := e.do("POST", wrapURL, tok, goodBody); a.status != 404 || a.errCode() != "VaultNotFound" {
		t.Fatalf("a soft-deleted vault's keys are reachable: %d %s", a.status, a.raw)
	}
}
