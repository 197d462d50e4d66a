package identity_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestOutsideCallerCannotGetIdentityToken proves that no HTTP caller — not even the
// administrator — can obtain a token for a managed identity: the token endpoints refuse the
// identity's client id with any secret or none, for every audience, on both the v1 and v2
// endpoints and with every grant type, and no IMDS-, App Service- or authorize-shaped route
// issues one, on the ARM host or on a key-store host. Only the in-process
// auth.Issuer.IssueForIdentity mints identity tokens.
func TestOutsideCallerCannotGetIdentityToken(t *testing.T) {
	e := newEnv(t)
	e.group("rg")
	ident := e.create("rg", "workload")
	cid, oid := *ident.Properties.ClientID, *ident.Properties.PrincipalID
	prof := e.d.Profile()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(prof.Endpoint, "https://"))
	v2 := prof.Endpoint + "/" + e.tenant + "/oauth2/v2.0/token"
	v1 := prof.Endpoint + "/" + e.tenant + "/oauth2/token"
	audiences := []string{"https://management.azure.com", "https://management.core.windows.net",
		"https://" + prof.KeyVaultDNSSuffix, "https://" + prof.ManagedHSMDNSSuffix, "api://" + cid, ""}
	secrets := []*string{nil, ptr(""), ptr("not-the-secret"), ptr(prof.ClientSecret)}

	// refused checks one answer: no success status, no token in the body.
	refused := func(t *testing.T, what string, status int, body string) {
		t.Helper()
		if status == http.StatusOK || strings.Contains(body, `"access_token"`) || strings.Contains(body, "eyJ") {
			t.Errorf("%s answered %d with a token-like body: %.200s", what, status, body)
		}
	}

	t.Run("client credentials", func(t *testing.T) {
		for _, id := range []string{cid, oid, strings.ToUpper(cid)} {
			for _, aud := range audiences {
				for _, secret := range secrets {
					v2form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "scope": {aud + "/.default"}}
					v1form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "resource": {aud}}
					if secret != nil {
						v2form.Set("client_secret", *secret)
						v1form.Set("client_secret", *secret)
					}
					status, body := e.post(v2, v2form, nil)
					refused(t, "v2 token endpoint, audience "+aud, status, body)
					status, body = e.post(v1, v1form, nil)
					refused(t, "v1 token endpoint, audience "+aud, status, body)
				}
			}
		}
	})

	t.Run("other grants", func(t *testing.T) {
		admin := e.raw.admin // a valid token of another principal, offered as an assertion
		forms := []url.Values{
			{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {cid}, "assertion": {admin},
				"requested_token_use": {"on_behalf_of"}, "scope": {"https://vault.localhost/.default"}},
			{"grant_type": {"client_credentials"}, "client_id": {cid}, "scope": {"https://vault.localhost/.default"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {admin}},
			{"grant_type": {"refresh_token"}, "client_id": {cid}, "refresh_token": {admin}, "scope": {"https://vault.localhost/.default"}},
			{"grant_type": {"password"}, "client_id": {cid}, "username": {cid}, "password": {"x"}, "scope": {"https://vault.localhost/.default"}},
			{"grant_type": {"authorization_code"}, "client_id": {cid}, "code": {"x"}, "scope": {"https://vault.localhost/.default"}},
		}
		for _, f := range forms {
			for _, endpoint := range []string{v2, v1} {
				status, body := e.post(endpoint, f, map[string]string{"Authorization": "Bearer " + admin})
				refused(t, f.Get("grant_type")+" at "+endpoint, status, body)
			}
		}
	})

	t.Run("no other route", func(t *testing.T) {
		q := url.Values{"api-version": {"2018-02-01"}, "resource": {"https://vault.localhost"}, "client_id": {cid},
			"object_id": {oid}, "msi_res_id": {*ident.ID}, "clientid": {cid}, "principal_id": {oid}}.Encode()
		paths := []struct {
			path string
			// resource reads of the identity itself legitimately answer 200, without any token.
			read bool
		}{
			{"/metadata/identity/oauth2/token?" + q, false},
			{"/metadata/identity/oauth2/token/?" + q, false},
			{"/msi/token?" + q, false},
			{"/MSI/token?" + q, false},
			{"/oauth2/token?" + q, false},
			{"/token?" + q, false},
			{"/" + e.tenant + "/oauth2/authorize?response_type=token&" + q, false},
			{"/" + e.tenant + "/oauth2/v2.0/authorize?response_type=token&scope=https://vault.localhost/.default&" + q, false},
			{"/" + e.tenant + "/oauth2/v2.0/devicecode?" + q, false},
			{"/" + e.tenant + "/oauth2/v2.0/token?grant_type=client_credentials&" + q, false},
			{"/" + e.tenant + "/oauth2/token?grant_type=client_credentials&" + q, false},
			{*ident.ID + "/token?api-version=2024-11-30", false},
			{*ident.ID + "/listAssociatedResources?api-version=2024-11-30", false},
			{*ident.ID + "?api-version=2024-11-30", true},
			{"/subscriptions/" + e.sub + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30", true},
		}
		hosts := []string{"", "anything.vault.localhost:" + port, "anything.managedhsm.localhost:" + port}
		headers := map[string]string{"Metadata": "true", "X-IDENTITY-HEADER": "x", "Secret": "x",
			"Authorization": "Bearer " + e.raw.admin}
		for _, host := range hosts {
			for _, p := range paths {
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					status, body := e.send(method, host, p.path, headers)
					what := method + " " + host + p.path
					if p.read && status == http.StatusOK {
						if strings.Contains(body, "token") || strings.Contains(body, "eyJ") || strings.Contains(body, "secret") {
							t.Errorf("%s carries a credential: %.300s", what, body)
						}
						continue
					}
					refused(t, what, status, body)
				}
			}
		}
	})

	// The identity exists and is well: the refusals above are not because it is gone.
	if !e.principalExists(oid) {
		t.Fatal("the identity's principal is missing")
	}
}

func ptr(s string) *string { return &s }

func (e *env) post(endpoint string, form url.Values, headers map[string]string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return e.roundTrip(req)
}

// send requests pathAndQuery from the daemon, on the given host name (the daemon's own when
// empty), as key-store hosts are reached.
func (e *env) send(method, host, pathAndQuery string, headers map[string]string) (int, string) {
	e.t.Helper()
	base := e.raw.endpoint
	if host != "" {
		base = "https://" + host
	}
	req, err := http.NewRequest(method, base+pathAndQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return e.roundTrip(req)
}

func (e *env) roundTrip(req *http.Request) (int, string) {
	e.t.Helper()
	resp, err := e.raw.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
