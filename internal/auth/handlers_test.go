package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/store"
)

const (
	testGraph    = "https://graph.localhost:8443"
	identityObj  = "0e0e0e0e-0000-4000-8000-00000000000e"
	identityCID  = "c-identity"
	adminClient  = "c-admin"
	otherTenant  = "00000000-0000-0000-0000-000000000000"
	mgmtResource = "https://management.core.windows.net/"
)

// routedIssuer is testIssuer with Graph among its audiences, a client secret for the
// administrator, a managed identity (no secret), and its routes on a mux.
func routedIssuer(t *testing.T) (*Issuer, *http.ServeMux, string) {
	t.Helper()
	i, _ := testIssuer(t)
	i.aud.Graph = testGraph
	secret, hash := NewSecret()
	err := i.st.Update(context.Background(), func(tx store.Tx) error {
		p, err := GetPrincipal(tx, adminObject)
		if err != nil {
			return err
		}
		p.SecretHash = hash
		if err := PutPrincipal(tx, p); err != nil {
			return err
		}
		return PutPrincipal(tx, &Principal{ObjectID: identityObj, ClientID: identityCID, TenantID: testTenant, Type: TypeManagedIdentity,
			ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi"})
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	i.RegisterRoutes(mux)
	return i, mux, secret
}

func serve(t *testing.T, h http.Handler, r *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s answered %d with no JSON object: %q", r.Method, r.URL, w.Code, w.Body.String())
	}
	return w.Code, body, w.Result().Header
}

// TestDiscoveryDocuments: every authority's document names its own authorization, token and
// key endpoints (MSAL requires the first two), and the token endpoint's first path segment
// is what MSAL takes for the tenant: adfs for the ADFS-style authority az signs in at.
func TestDiscoveryDocuments(t *testing.T) {
	_, mux, _ := routedIssuer(t)
	base := testEndpoint + "/" + testTenant
	cases := []struct {
		path                         string
		authorize, token, jwks, tent string
	}{
		{"/adfs/.well-known/openid-configuration", testEndpoint + "/adfs/oauth2/authorize", testEndpoint + "/adfs/oauth2/token", testEndpoint + "/adfs/discovery/keys", "adfs"},
		{"/" + testTenant + "/v2.0/.well-known/openid-configuration", base + "/oauth2/v2.0/authorize", base + "/oauth2/v2.0/token", base + "/discovery/v2.0/keys", testTenant},
		{"/" + strings.ToUpper(testTenant) + "/v2.0/.well-known/openid-configuration", base + "/oauth2/v2.0/authorize", base + "/oauth2/v2.0/token", base + "/discovery/v2.0/keys", testTenant},
		{"/" + testTenant + "/.well-known/openid-configuration", base + "/oauth2/authorize", base + "/oauth2/token", testEndpoint + "/discovery/keys", testTenant},
		{"/.well-known/openid-configuration", base + "/oauth2/v2.0/authorize", base + "/oauth2/v2.0/token", base + "/discovery/v2.0/keys", testTenant},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			status, doc, _ := serve(t, mux, httptest.NewRequest(http.MethodGet, c.path, nil))
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, doc)
			}
			if doc["issuer"] != base+"/v2.0" || doc["authorization_endpoint"] != c.authorize || doc["token_endpoint"] != c.token || doc["jwks_uri"] != c.jwks {
				t.Fatalf("document = %v", doc)
			}
			u, _ := url.Parse(doc["token_endpoint"].(string))
			if seg := strings.Split(u.Path, "/")[1]; seg != c.tent {
				t.Fatalf("MSAL would take tenant %q from the token endpoint, want %q", seg, c.tent)
			}
			// Every endpoint named is served.
			for _, k := range []string{"jwks_uri"} {
				u, _ := url.Parse(doc[k].(string))
				if st, body, _ := serve(t, mux, httptest.NewRequest(http.MethodGet, u.Path, nil)); st != http.StatusOK || body["keys"] == nil {
					t.Fatalf("%s %s: %d %v", k, u.Path, st, body)
				}
			}
		})
	}
	status, body, _ := serve(t, mux, httptest.NewRequest(http.MethodGet, "/"+otherTenant+"/v2.0/.well-known/openid-configuration", nil))
	if status != http.StatusBadRequest || !strings.HasPrefix(body["error_description"].(string), "AADSTS90002: Tenant '"+otherTenant+"' not found.") {
		t.Fatalf("another tenant's document: %d %v", status, body)
	}
}

// TestAuthorizeRefused: there is no interactive sign-in; the authorization endpoints say so in
// OAuth's error shape rather than redirecting anywhere.
func TestAuthorizeRefused(t *testing.T) {
	_, mux, _ := routedIssuer(t)
	for _, path := range []string{"/adfs/oauth2/authorize", "/" + testTenant + "/oauth2/v2.0/authorize", "/" + testTenant + "/oauth2/authorize"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			r := httptest.NewRequest(method, path+"?response_type=code&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&redirect_uri=http%3A%2F%2Fevil.example%2F", nil)
			status, body, h := serve(t, mux, r)
			if status != http.StatusBadRequest || body["error"] != "unsupported_response_type" ||
				!strings.HasPrefix(body["error_description"].(string), "AADSTS700054: Interactive sign-in is not available") || h.Get("Location") != "" {
				t.Errorf("%s %s: %d %v %v", method, path, status, body, h)
			}
			if codes, _ := body["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(700054) {
				t.Errorf("%s %s: error_codes %v", method, path, body["error_codes"])
			}
		}
	}
}

// TestTokenForms: the token endpoints take the client-credentials form as MSAL (az), the
// v1 clients and Azure's SDKs send it, and refuse every other with Entra ID's AADSTS texts.
func TestTokenForms(t *testing.T) {
	i, mux, secret := routedIssuer(t)
	adfs, v2, v1 := "/adfs/oauth2/token", "/"+testTenant+"/oauth2/v2.0/token", "/"+testTenant+"/oauth2/token"
	good := func(extra ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {adminClient}, "client_secret": {secret}}
		for j := 0; j+1 < len(extra); j += 2 {
			if extra[j+1] == "" {
				v.Del(extra[j])
			} else {
				v.Set(extra[j], extra[j+1])
			}
		}
		return v
	}
	cases := []struct {
		name, path string
		form       url.Values
		status     int
		audience   string // for a token
		err, desc  string // for a refusal: error and the start of error_description
	}{
		// Exactly what az 2.45's MSAL posts for az login --service-principal.
		{"msal arm scope", adfs, good("scope", mgmtResource+"/.default", "client_info", "1",
			"claims", `{"access_token": {"xms_cc": {"values": ["CP1"]}}}`), 200, "https://management.azure.com", "", ""},
		{"msal graph scope", adfs, good("scope", testGraph+"//.default", "client_info", "1"), 200, testGraph, "", ""},
		{"az rest key store resource", adfs, good("scope", "https://vault.localhost/.default"), 200, "https://vault.localhost", "", ""},
		{"key store challenge with port", adfs, good("scope", "https://vault.localhost:8443/.default"), 200, "https://vault.localhost", "", ""},
		{"adfs v1 resource", adfs, good("resource", mgmtResource), 200, "https://management.azure.com", "", ""},
		{"v2 scope", v2, good("scope", "https://management.azure.com/.default"), 200, "https://management.azure.com", "", ""},
		{"v1 resource", v1, good("resource", "https://management.azure.com/"), 200, "https://management.azure.com", "", ""},
		{"no grant type", adfs, good("grant_type", "", "scope", mgmtResource+"/.default"), 400, "", "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."},
		{"password grant", adfs, good("grant_type", "password", "scope", mgmtResource+"/.default"), 400, "", "unsupported_grant_type", "AADSTS70003:"},
		{"device code grant", v2, good("grant_type", "urn:ietf:params:oauth:grant-type:device_code", "scope", mgmtResource+"/.default"), 400, "", "unsupported_grant_type", "AADSTS70003:"},
		{"no client id", adfs, good("client_id", "", "scope", mgmtResource+"/.default"), 400, "", "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'."},
		{"no secret", adfs, good("client_secret", "", "scope", mgmtResource+"/.default"), 401, "", "invalid_client", "AADSTS7000216:"},
		{"certificate assertion", adfs, good("client_secret", "", "client_assertion", "eyJ.x.y",
			"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "scope", mgmtResource+"/.default"), 401, "", "invalid_client", "AADSTS700027:"},
		{"wrong secret", adfs, good("client_secret", "not-it", "scope", mgmtResource+"/.default"), 401, "", "invalid_client", "AADSTS7000215: Invalid client secret provided."},
		{"unknown client", adfs, good("client_id", "c-nobody", "scope", mgmtResource+"/.default"), 400, "", "unauthorized_client", "AADSTS700016: Application with identifier 'c-nobody' was not found in the directory '" + testTenant + "'."},
		{"managed identity has no secret to present", adfs, good("client_id", identityCID, "scope", "https://vault.localhost/.default"), 401, "", "invalid_client", "AADSTS7000215:"},
		{"unknown resource", adfs, good("scope", "https://graph.microsoft.com/.default"), 400, "", "invalid_scope", "AADSTS70011:"},
		{"two resources", adfs, good("scope", mgmtResource+"/.default "+testGraph+"/.default"), 400, "", "invalid_scope", "AADSTS70011:"},
		{"graph host on another port", adfs, good("scope", "https://graph.localhost:9443/.default"), 400, "", "invalid_scope", "AADSTS70011:"},
		{"no scope", adfs, good(), 400, "", "invalid_scope", "AADSTS70011:"},
		{"v2 ignores resource", v2, good("resource", mgmtResource), 400, "", "invalid_scope", "AADSTS70011:"},
		{"another tenant", "/" + otherTenant + "/oauth2/v2.0/token", good("scope", mgmtResource+"/.default"), 400, "", "invalid_tenant", "AADSTS90002:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			status, body, h := serve(t, mux, r)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, body)
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
			}
			if c.err != "" {
				desc, _ := body["error_description"].(string)
				if body["error"] != c.err || !strings.HasPrefix(desc, c.desc) {
					t.Fatalf("refusal = %v; want %s, %q", body, c.err, c.desc)
				}
				var n int
				fmt.Sscanf(desc, "AADSTS%d:", &n)
				if codes, _ := body["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(n) {
					t.Errorf("error_codes = %v, want [%d]", body["error_codes"], n)
				}
				return
			}
			tok, _ := body["access_token"].(string)
			claims, p, err := i.Verify(context.Background(), tok, c.audience)
			if err != nil || p.ObjectID != adminObject || claims.Audience != c.audience || body["token_type"] != "Bearer" {
				t.Fatalf("token for %s: %+v, %v, %v (%v)", c.audience, claims, p, err, body)
			}
		})
	}
}
