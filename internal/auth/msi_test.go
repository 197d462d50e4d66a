package auth

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// msiRefusal is the whole refusal of another account: it names no uid, neither the caller's
// nor the one served.
const msiRefusal = "The managed identity endpoint serves only processes of the daemon's own OS account on this host."

// TestMSIEndpoint: the administrator's token goes to the allowed OS account asking as
// az login --identity does (MSI_ENDPOINT: POST form, header Metadata: true), and to nobody else.
func TestMSIEndpoint(t *testing.T) {
	i, _, _ := routedIssuer(t)
	const allowed = 1000
	peer := func(uid uint32, ok bool) PeerUID { return func(*http.Request) (uint32, bool) { return uid, ok } }
	ep := func(p PeerUID) *MSIEndpoint {
		return &MSIEndpoint{Issuer: i, AdminObjectID: adminObject, AllowedUID: allowed, Peer: p, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for j := 0; j+1 < len(kv); j += 2 {
			v.Set(kv[j], kv[j+1])
		}
		return v
	}
	cases := []struct {
		name     string
		method   string
		peer     PeerUID
		metadata bool
		form     url.Values
		query    string
		status   int
		audience string // for a token
		err      string // for a refusal: error and the start of error_description
		desc     string
	}{
		{"az login --identity", "POST", peer(allowed, true), true, form("resource", mgmtResource), "", 200, "https://management.azure.com", "", ""},
		{"graph for keyvault create", "POST", peer(allowed, true), true, form("resource", testGraph+"/"), "", 200, testGraph, "", ""},
		{"key store", "POST", peer(allowed, true), true, form("resource", "https://vault.localhost"), "", 200, "https://vault.localhost", "", ""},
		{"GET as IMDS", "GET", peer(allowed, true), true, nil, "resource=" + url.QueryEscape(mgmtResource) + "&api-version=2018-02-01", 200, "https://management.azure.com", "", ""},
		{"the administrator by client id", "POST", peer(allowed, true), true, form("resource", mgmtResource, "client_id", adminClient), "", 200, "https://management.azure.com", "", ""},
		{"the administrator by object id", "POST", peer(allowed, true), true, form("resource", mgmtResource, "object_id", adminObject), "", 200, "https://management.azure.com", "", ""},
		{"another account", "POST", peer(0, true), true, form("resource", mgmtResource), "", 403, "", "access_denied", msiRefusal},
		{"an account the kernel cannot tell", "POST", peer(0, false), true, form("resource", mgmtResource), "", 403, "", "access_denied", msiRefusal},
		{"no Metadata header", "POST", peer(allowed, true), false, form("resource", mgmtResource), "", 400, "", "invalid_request", "Required metadata header not specified"},
		{"no resource", "POST", peer(allowed, true), true, form(), "", 400, "", "invalid_request", "Required query variable 'resource' is missing"},
		{"unknown resource", "POST", peer(allowed, true), true, form("resource", "https://graph.microsoft.com/"), "", 400, "", "invalid_resource", "AADSTS500011: The resource principal named https://graph.microsoft.com/ was not found in the tenant named " + testTenant + "."},
		{"a managed identity by client id", "POST", peer(allowed, true), true, form("resource", mgmtResource, "client_id", identityCID), "", 400, "", "invalid_request", "Identity not found"},
		{"another principal by object id", "POST", peer(allowed, true), true, form("resource", mgmtResource, "object_id", userObject), "", 400, "", "invalid_request", "Identity not found"},
		{"an Azure resource id", "POST", peer(allowed, true), true, form("resource", mgmtResource, "msi_res_id", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi"), "", 400, "", "invalid_request", "Identity not found"},
		{"PUT", "PUT", peer(allowed, true), true, form("resource", mgmtResource), "", 405, "", "invalid_request", "The managed identity endpoint accepts GET and POST."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, MSIPath+"?"+c.query, strings.NewReader(c.form.Encode()))
			if c.form != nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if c.metadata {
				r.Header.Set("Metadata", "true")
			}
			status, body, h := serve(t, ep(c.peer), r)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, body)
			}
			if c.err != "" {
				desc, _ := body["error_description"].(string)
				if body["error"] != c.err || !strings.HasPrefix(desc, c.desc) || body["access_token"] != nil {
					t.Fatalf("refusal = %v; want %s, %q", body, c.err, c.desc)
				}
				if c.desc == msiRefusal && desc != msiRefusal {
					t.Fatalf("refusal = %q, want exactly %q", desc, msiRefusal)
				}
				return
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
			}
			claims, p, err := i.Verify(context.Background(), body["access_token"].(string), c.audience)
			if err != nil || p.ObjectID != adminObject || body["token_type"] != "Bearer" || body["client_id"] != adminClient {
				t.Fatalf("token: %+v %v %v (%v)", claims, p, err, body)
			}
			// az reads expires_on as an epoch in a string.
			if on, err := strconv.ParseInt(body["expires_on"].(string), 10, 64); err != nil || on != claims.Expiry {
				t.Errorf("expires_on = %v, token exp %d", body["expires_on"], claims.Expiry)
			}
		})
	}
}

// TestMSIDisabled: with the endpoint off every request, however well formed and from whichever
// account, is answered 404 in the endpoint's error shape, with no token.
func TestMSIDisabled(t *testing.T) {
	h := MSIDisabled("Start it with --msi-endpoint.")
	for _, c := range []struct {
		method   string
		metadata bool
	}{
		{"POST", true}, {"GET", true}, {"POST", false}, {"PUT", true},
	} {
		t.Run(fmt.Sprintf("%s metadata=%v", c.method, c.metadata), func(t *testing.T) {
			r := httptest.NewRequest(c.method, MSIPath+"?resource="+url.QueryEscape(mgmtResource), strings.NewReader(url.Values{"resource": {mgmtResource}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if c.metadata {
				r.Header.Set("Metadata", "true")
			}
			status, body, hdr := serve(t, h, r)
			want := "The managed identity endpoint is disabled. Start it with --msi-endpoint."
			if status != http.StatusNotFound || body["error"] != "invalid_request" || body["error_description"] != want || body["access_token"] != nil {
				t.Fatalf("status %d, body %v", status, body)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", hdr.Get("Cache-Control"))
			}
		})
	}
}
