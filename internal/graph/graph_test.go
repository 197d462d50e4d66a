package graph

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	base     = "https://graph.localhost:8443"
	adminOID = "0a0a0a0a-0000-4000-8000-00000000000a"
	adminCID = "1a1a1a1a-0000-4000-8000-00000000001a"
	userOID  = "0b0b0b0b-0000-4000-8000-00000000000b"
	userCID  = "1b1b1b1b-0000-4000-8000-00000000001b"
	miOID    = "0c0c0c0c-0000-4000-8000-00000000000c"
	miCID    = "1c1c1c1c-0000-4000-8000-00000000001c"
	miRID    = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi"
)

// fixture is a Graph service over a directory of an administrator, another service principal
// (O'Brien, to exercise quoting) and a managed identity, with tokens for the first two.
func fixture(t *testing.T) (*Service, map[string]string) {
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
	adminSecret, adminHash := auth.NewSecret()
	userSecret, userHash := auth.NewSecret()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	err = st.Update(context.Background(), func(tx store.Tx) error {
		for _, p := range []*auth.Principal{
			{ObjectID: adminOID, ClientID: adminCID, TenantID: tenant, DisplayName: "pgflex-admin", Type: auth.TypeServicePrincipal, Admin: true, SecretHash: adminHash, Created: created},
			{ObjectID: userOID, ClientID: userCID, TenantID: tenant, DisplayName: "O'Brien app", Type: auth.TypeServicePrincipal, SecretHash: userHash, Created: created},
			{ObjectID: miOID, ClientID: miCID, TenantID: tenant, DisplayName: "mi", Type: auth.TypeManagedIdentity, ResourceID: miRID, Created: created},
		} {
			if err := auth.PutPrincipal(tx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	iss := auth.NewIssuer(key, "https://127.0.0.1:8443", tenant, st, auth.Audiences{ARM: "https://management.azure.com", KeyVault: "https://vault.localhost", Graph: base})
	tok := func(cid, secret, scope string) string {
		s, _, err := iss.IssueClientCredentials(context.Background(), cid, secret, scope)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return New(iss, st, base+"/", slog.New(slog.NewTextHandler(io.Discard, nil))), map[string]string{
		"admin":     tok(adminCID, adminSecret, base+"//.default"),
		"user":      tok(userCID, userSecret, base+"/.default"),
		"admin-arm": tok(adminCID, adminSecret, "https://management.core.windows.net//.default"),
	}
}

func spFilter(name string) string {
	return "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("servicePrincipalNames/any(c:c eq '"+strings.ReplaceAll(name, "'", "''")+"')")
}

// TestGraph: the calls az makes for the signed-in principal are answered in Graph's shapes,
// and every refusal has Graph's status, code and message.
func TestGraph(t *testing.T) {
	s, toks := fixture(t)
	cases := []struct {
		name, method, path, auth string
		status                   int
		code, msg                string   // a refusal
		ids                      []string // the objects answered, for a success
		entity                   bool     // a single object rather than a list
	}{
		{"/me with an application's token", "GET", "/v1.0/me", "Bearer " + toks["admin"], 400, "BadRequest", "/me request is only valid with delegated authentication flow.", nil, false},
		{"az keyvault create's fallback", "GET", spFilter(adminCID), "Bearer " + toks["admin"], 200, "", "", []string{adminOID}, false},
		{"a name nobody has", "GET", spFilter("systemAssignedIdentity"), "Bearer " + toks["admin"], 200, "", "", []string{}, false},
		{"a managed identity by its resource id", "GET", spFilter(miRID), "Bearer " + toks["admin"], 200, "", "", []string{miOID}, false},
		{"appId eq", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("appId eq '"+strings.ToUpper(userCID)+"'"), "Bearer " + toks["admin"], 200, "", "", []string{userOID}, false},
		{"displayName eq with a quote", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("displayName eq 'O''Brien app'"), "Bearer " + toks["admin"], 200, "", "", []string{userOID}, false},
		{"startswith", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("startswith(displayName,'pgflex')"), "Bearer " + toks["admin"], 200, "", "", []string{adminOID}, false},
		{"everything, for the administrator", "GET", "/v1.0/servicePrincipals", "Bearer " + toks["admin"], 200, "", "", []string{adminOID, userOID, miOID}, false},
		{"by object id", "GET", "/v1.0/servicePrincipals/" + userOID, "Bearer " + toks["admin"], 200, "", "", []string{userOID}, true},
		{"by appId key", "GET", "/v1.0/servicePrincipals(appId='" + adminCID + "')", "Bearer " + toks["admin"], 200, "", "", []string{adminOID}, true},
		{"beta", "GET", "/beta/servicePrincipals/" + adminOID, "Bearer " + toks["admin"], 200, "", "", []string{adminOID}, true},
		{"another principal reads itself", "GET", spFilter(userCID), "Bearer " + toks["user"], 200, "", "", []string{userOID}, false},
		// Another principal learns nothing of the directory: what matches and what does not
		// look alike (no refusal that would tell a match, one startswith at a time).
		{"another principal filters for the administrator", "GET", spFilter(adminCID), "Bearer " + toks["user"], 200, "", "", []string{}, false},
		{"another principal filters for a name nobody has", "GET", spFilter("nobody-has-this"), "Bearer " + toks["user"], 200, "", "", []string{}, false},
		{"another principal probes by prefix", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("startswith(displayName,'pgflex')"), "Bearer " + toks["user"], 200, "", "", []string{}, false},
		{"another principal probes a managed identity", "GET", spFilter(miRID), "Bearer " + toks["user"], 200, "", "", []string{}, false},
		{"another principal lists everything", "GET", "/v1.0/servicePrincipals", "Bearer " + toks["user"], 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", nil, false},
		{"another principal probes an id", "GET", "/v1.0/servicePrincipals/" + adminOID, "Bearer " + toks["user"], 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", nil, false},
		{"unknown id", "GET", "/v1.0/servicePrincipals/0f0f0f0f-0000-4000-8000-00000000000f", "Bearer " + toks["admin"], 404, "Request_ResourceNotFound", "Resource '0f0f0f0f-0000-4000-8000-00000000000f' does not exist or one of its queried reference-property objects are not present.", nil, false},
		{"unsupported property", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("homepage eq 'x'"), "Bearer " + toks["admin"], 400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property 'homepage' of resource 'ServicePrincipal'.", nil, false},
		{"any over another collection", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("tags/any(c:c eq 'x')"), "Bearer " + toks["admin"], 400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property 'tags' of resource 'ServicePrincipal'.", nil, false},
		{"malformed filter", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("appId eq x"), "Bearer " + toks["admin"], 400, "BadRequest", "Invalid filter clause", nil, false},
		{"mismatched lambda variable", "GET", "/v1.0/servicePrincipals?$filter=" + url.QueryEscape("servicePrincipalNames/any(c:d eq 'x')"), "Bearer " + toks["admin"], 400, "BadRequest", "Invalid filter clause", nil, false},
		{"unsupported option", "GET", "/v1.0/servicePrincipals?$top=1", "Bearer " + toks["admin"], 400, "BadRequest", "Query option '$top' is not supported.", nil, false},
		{"users", "GET", "/v1.0/users", "Bearer " + toks["admin"], 400, "BadRequest", "Resource not found for the segment 'users'.", nil, false},
		{"another version", "GET", "/v2.0/me", "Bearer " + toks["admin"], 400, "BadRequest", "Invalid version: v2.0", nil, false},
		{"a write", "POST", "/v1.0/servicePrincipals", "Bearer " + toks["admin"], 405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.", nil, false},
		{"no token", "GET", "/v1.0/me", "", 401, "InvalidAuthenticationToken", "Access token is empty.", nil, false},
		{"not a bearer token", "GET", "/v1.0/me", "Basic eDp5", 401, "InvalidAuthenticationToken", "Access token is empty.", nil, false},
		{"not a JWT", "GET", "/v1.0/me", "Bearer abc", 401, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217", nil, false},
		{"a resource-manager token", "GET", spFilter(adminCID), "Bearer " + toks["admin-arm"], 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", nil, false},
		{"a tampered token", "GET", spFilter(adminCID), "Bearer " + toks["admin"][:len(toks["admin"])-4] + "AAAA", 401, "InvalidAuthenticationToken", "Access token validation failure.", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, nil)
			r.Host = "graph.localhost:8443"
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			r.Header.Set("client-request-id", "11111111-2222-4333-8444-555555555555")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%d, not JSON: %q", w.Code, w.Body.String())
			}
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %v", w.Code, c.status, body)
			}
			if w.Header().Get("client-request-id") != "11111111-2222-4333-8444-555555555555" || w.Header().Get("request-id") == "" {
				t.Errorf("headers %v", w.Header())
			}
			if c.code != "" {
				e, _ := body["error"].(map[string]any)
				inner, _ := e["innerError"].(map[string]any)
				if e["code"] != c.code || e["message"] != c.msg || inner["request-id"] != w.Header().Get("request-id") || inner["client-request-id"] != "11111111-2222-4333-8444-555555555555" {
					t.Fatalf("error = %v; want %s %q", body, c.code, c.msg)
				}
				if (c.status == 401) != strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
				}
				return
			}
			var objs []any
			if c.entity {
				if !strings.HasSuffix(body["@odata.context"].(string), "/$metadata#servicePrincipals/$entity") {
					t.Errorf("@odata.context = %v", body["@odata.context"])
				}
				objs = []any{body}
			} else {
				if body["@odata.context"] != base+"/v1.0/$metadata#servicePrincipals" {
					t.Errorf("@odata.context = %v", body["@odata.context"])
				}
				objs, _ = body["value"].([]any)
			}
			var ids []string
			for _, o := range objs {
				ids = append(ids, o.(map[string]any)["id"].(string))
			}
			if strings.Join(ids, ",") != strings.Join(c.ids, ",") {
				t.Fatalf("ids = %v, want %v", ids, c.ids)
			}
		})
	}
}

// TestServicePrincipalShape: the fields az and Graph's clients read, for an application and a
// managed identity.
func TestServicePrincipalShape(t *testing.T) {
	app := ServicePrincipal(&auth.Principal{ObjectID: adminOID, ClientID: adminCID, TenantID: tenant, DisplayName: "pgflex-admin", Type: auth.TypeServicePrincipal})
	mi := ServicePrincipal(&auth.Principal{ObjectID: miOID, ClientID: miCID, TenantID: tenant, DisplayName: "mi", Type: auth.TypeManagedIdentity, ResourceID: miRID})
	for _, c := range []struct {
		got, want any
	}{
		{app["id"], adminOID}, {app["appId"], adminCID}, {app["displayName"], "pgflex-admin"}, {app["servicePrincipalType"], "Application"},
		{app["appOwnerOrganizationId"], tenant}, {app["accountEnabled"], true}, {strings.Join(app["servicePrincipalNames"].([]string), ","), adminCID},
		{mi["servicePrincipalType"], "ManagedIdentity"}, {strings.Join(mi["servicePrincipalNames"].([]string), ","), miCID + "," + miRID},
		{strings.Join(mi["alternativeNames"].([]string), ","), "isExplicit=True," + miRID}, {mi["appOwnerOrganizationId"], nil},
	} {
		if c.got != c.want {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
}
