package keyvault_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestDataPlaneAPIVersions drives the keys REST API at every api-version Azure's SDKs send —
// the previews included (az 2.45's azure-keyvault-keys sends 7.4-preview.1) — with raw HTTPS
// and with azkeys pinned to the version, and checks each answer carries the KeyAttributes of
// that version's swagger. Unknown versions get Key Vault's own refusal.
func TestDataPlaneAPIVersions(t *testing.T) {
	t.Parallel()
	e := newKVEnv(t)
	e.group("rg")
	e.createVault("rg", "versions-vault", nil)
	base := e.vaultURL("versions-vault")
	tok := e.kvToken()

	cases := []struct {
		version         string
		recoverableDays bool // KeyAttributes.recoverableDays: 7.1 on
		exportable      bool // KeyAttributes.exportable: 7.3-preview on
	}{
		{"7.0", false, false},
		{"7.1", true, false},
		{"7.2-preview", true, false},
		{"7.2", true, false},
		{"7.3-preview", true, true},
		{"7.3", true, true},
		{"7.4-preview.1", true, true},
		{"7.4", true, true},
		{"7.5-preview.1", true, true},
		{"7.5", true, true},
		{"7.6-preview.1", true, true},
		{"7.6-preview.2", true, true},
		{"7.6", true, true},
		{"2025-06-01", true, true},
		{"2025-07-01", true, true},
	}
	for i, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			name := fmt.Sprintf("k%d", i)
			q := "?api-version=" + c.version
			checkAttrs := func(what string, attrs any) {
				t.Helper()
				a, ok := attrs.(map[string]any)
				if !ok {
					t.Fatalf("%s: no attributes", what)
				}
				if _, has := a["recoverableDays"]; has != c.recoverableDays {
					t.Errorf("%s at %s: recoverableDays present = %v, want %v (%v)", what, c.version, has, c.recoverableDays, a)
				}
				if _, has := a["exportable"]; has != c.exportable {
					t.Errorf("%s at %s: exportable present = %v, want %v (%v)", what, c.version, has, c.exportable, a)
				}
				if a["enabled"] != true || a["recoveryLevel"] == nil {
					t.Errorf("%s at %s: attributes %v", what, c.version, a)
				}
			}

			// Raw HTTPS, exactly as an SDK at that version sends it.
			created := e.do(http.MethodPost, base+"/keys/"+name+"/create"+q, tok, `{"kty":"RSA","key_size":2048}`)
			if created.status != 200 {
				t.Fatalf("create at %s = %d %s", c.version, created.status, created.raw)
			}
			checkAttrs("create", created.body["attributes"])
			kid := created.body["key"].(map[string]any)["kid"].(string)
			got := e.do(http.MethodGet, base+"/keys/"+name+"/"+q, tok, "")
			if got.status != 200 || got.body["key"].(map[string]any)["kid"] != kid {
				t.Fatalf("get at %s = %d %s", c.version, got.status, got.raw)
			}
			checkAttrs("get", got.body["attributes"])
			list := e.do(http.MethodGet, base+"/keys"+q, tok, "")
			if list.status != 200 || len(list.body["value"].([]any)) == 0 {
				t.Fatalf("list at %s = %d %s", c.version, list.status, list.raw)
			}
			checkAttrs("list", list.body["value"].([]any)[0].(map[string]any)["attributes"])
			dek := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
			wrapped := e.do(http.MethodPost, kid+"/wrapkey"+q, tok, `{"alg":"RSA-OAEP-256","value":"`+dek+`"}`)
			if wrapped.status != 200 {
				t.Fatalf("wrap at %s = %d %s", c.version, wrapped.status, wrapped.raw)
			}
			back := e.do(http.MethodPost, kid+"/unwrapkey"+q, tok, `{"alg":"RSA-OAEP-256","value":"`+wrapped.body["value"].(string)+`"}`)
			if back.status != 200 || back.body["value"] != dek {
				t.Fatalf("unwrap at %s = %d %s", c.version, back.status, back.raw)
			}

			// Azure's SDK for Go pinned to the version: create, read, wrap and unwrap.
			opts := &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions}
			opts.APIVersion = c.version
			kc, err := azkeys.NewClient(base, e.cred, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sdkKey, err := kc.CreateKey(ctx, name+"sdk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
			if err != nil {
				t.Fatalf("azkeys at %s: create: %v", c.version, err)
			}
			if (sdkKey.Attributes.RecoverableDays != nil) != c.recoverableDays || (sdkKey.Attributes.Exportable != nil) != c.exportable {
				t.Errorf("azkeys at %s: recoverableDays %v exportable %v", c.version, sdkKey.Attributes.RecoverableDays, sdkKey.Attributes.Exportable)
			}
			w, err := kc.WrapKey(ctx, name+"sdk", sdkKey.Key.KID.Version(), azkeys.KeyOperationParameters{
				Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("a data encryption key, 32 bytes")}, nil)
			if err != nil {
				t.Fatalf("azkeys at %s: wrap: %v", c.version, err)
			}
			u, err := kc.UnwrapKey(ctx, name+"sdk", sdkKey.Key.KID.Version(), azkeys.KeyOperationParameters{
				Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil)
			if err != nil || string(u.Result) != "a data encryption key, 32 bytes" {
				t.Fatalf("azkeys at %s: unwrap: %q %v", c.version, u.Result, err)
			}
		})
	}

	// What Key Vault answers a version it does not know: 400 BadParameter, with its own text.
	for _, v := range []string{"7.9", "7.4-preview.9", "2016-10-01", "7.4-PREVIEW.1"} {
		a := e.do(http.MethodGet, base+"/keys?api-version="+v, tok, "")
		want := "The specified version (" + v + ") is not recognized. Consider using the latest supported version (2025-07-01)."
		if a.status != 400 || a.errCode() != "BadParameter" || a.errMessage() != want {
			t.Errorf("api-version %s = %d %s %q, want 400 BadParameter %q", v, a.status, a.errCode(), a.errMessage(), want)
		}
	}
	if a := e.do(http.MethodGet, base+"/keys", tok, ""); a.status != 400 || a.errCode() != "BadParameter" || !strings.Contains(a.errMessage(), "api-version") {
		t.Errorf("no api-version = %d %s", a.status, a.raw)
	}
}
