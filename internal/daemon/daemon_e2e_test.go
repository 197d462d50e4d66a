package daemon_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/profile"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// client is a raw HTTPS client of the daemon, for requests Azure's SDK would never send.
type client struct {
	t    *testing.T
	hc   *http.Client
	prof *profile.Profile
}

func newClient(t *testing.T, d *testenv.Daemon) *client {
	p := d.Profile()
	hc, err := azcred.HTTPClient([]byte(p.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, hc: hc, prof: p}
}

func (c *client) token(scope string) string {
	c.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.prof.ClientID},
		"client_secret": {c.prof.ClientSecret}, "scope": {scope}}
	resp, err := c.hc.PostForm(c.prof.TokenEndpoint, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 || body.AccessToken == "" {
		c.t.Fatalf("token for %s: status %d", scope, resp.StatusCode)
	}
	return body.AccessToken
}

type answer struct {
	status  int
	code    string
	message string
	body    map[string]any
}

func (c *client) do(method, path, token, body string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.prof.Endpoint+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("x-ms-request-id") == "" {
		c.t.Errorf("%s %s: no x-ms-request-id header", method, path)
	}
	a := answer{status: resp.StatusCode}
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &a.body)
	if e, ok := a.body["error"].(map[string]any); ok {
		a.code, _ = e["code"].(string)
		if a.message, _ = e["message"].(string); a.message == "" {
			c.t.Errorf("%s %s: error without message: %s", method, path, raw)
		}
	}
	return a
}

func mintToken(t *testing.T, key *rsa.PrivateKey, c auth.Claims) string {
	tok, err := auth.SignJWT(key, auth.KeyID(&key.PublicKey), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestBadInputIsRefusedAndChangesNothing covers the ARM error matrix of issue 2.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	c := newClient(t, d)
	tok := c.token("https://management.azure.com/.default")
	sub := c.prof.SubscriptionID
	rg := func(name string) string { return "/subscriptions/" + sub + "/resourcegroups/" + name }
	const v = "?api-version=2021-04-01"

	if a := c.do("PUT", rg("keep")+v, tok, `{"location":"eastus","tags":{"a":"b"}}`); a.status != 201 {
		t.Fatalf("create keep: %d %v", a.status, a.body)
	}

	// Tokens the daemon never issued, or issued for something else.
	box, err := seal.LoadOrCreateRootKey(filepath.Join(d.DataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	realKey, err := daemon.TokenSigningKey(d.DataDir, box)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The kid the daemon publishes: a forged token that names it reaches the signature check.
	kid := c.signingKid()
	if kid != auth.KeyID(&realKey.PublicKey) {
		t.Fatalf("the JWKS kid %s is not that of the daemon's signing key", kid)
	}
	now := time.Now()
	claims := auth.Claims{Issuer: c.prof.Endpoint + "/" + c.prof.TenantID + "/v2.0", Audience: "https://management.azure.com",
		ObjectID: testkit.TokenOID(t, tok), TenantID: c.prof.TenantID, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Hour).Unix()}
	signed := func(key *rsa.PrivateKey, kid string, c auth.Claims) string {
		tok, err := auth.SignJWT(key, kid, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// The control: these very claims, signed by the daemon's key under its kid, are accepted;
	// the forged tokens below differ from it in their signature (and kid) only.
	if a := c.do("GET", rg("keep")+v, signed(realKey, kid, claims), ""); a.status != 200 {
		t.Fatalf("the claims of the forged tokens, properly signed: %d %v", a.status, a.body)
	}
	expired := claims
	expired.IssuedAt, expired.NotBefore, expired.Expiry = now.Add(-3*time.Hour).Unix(), now.Add(-3*time.Hour).Unix(), now.Add(-2*time.Hour).Unix()
	wrongIssuer := claims
	wrongIssuer.Issuer = "https://login.microsoftonline.com/" + c.prof.TenantID + "/v2.0"

	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"missing api-version", "GET", rg("keep"), tok, "", 400, "MissingApiVersionParameter"},
		{"unknown api-version", "GET", rg("keep") + "?api-version=2099-01-01", tok, "", 400, "InvalidApiVersionParameter"},
		{"malformed resource id", "GET", "/subscriptions/" + sub + "/resourcegroups" + "/keep/extra" + v, tok, "", 404, "NotFound"},
		{"unknown subscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/keep" + v, tok, "", 404, "SubscriptionNotFound"},
		{"missing token", "GET", rg("keep") + v, "", "", 401, "AuthenticationFailed"},
		{"garbage token", "GET", rg("keep") + v, "not.a.jwt", "", 401, "InvalidAuthenticationToken"},
		{"forged token, unknown kid", "GET", rg("keep") + v, mintToken(t, forgedKey, claims), "", 401, "InvalidAuthenticationToken"},
		{"forged token under the daemon's kid", "GET", rg("keep") + v, signed(forgedKey, kid, claims), "", 401, "InvalidAuthenticationToken"},
		{"expired token", "GET", rg("keep") + v, mintToken(t, realKey, expired), "", 401, "ExpiredAuthenticationToken"},
		{"wrong issuer", "GET", rg("keep") + v, mintToken(t, realKey, wrongIssuer), "", 401, "InvalidAuthenticationTokenTenant"},
		{"wrong audience", "GET", rg("keep") + v, c.token("https://vault.localhost/.default"), "", 401, "InvalidAuthenticationTokenAudience"},
		{"malformed JSON", "PUT", rg("keep") + v, tok, `{"location":`, 400, "InvalidRequestContent"},
		{"wrong JSON type", "PUT", rg("keep") + v, tok, `{"location":42}`, 400, "InvalidRequestContent"},
		{"unknown location", "PUT", rg("keep") + v, tok, `{"location":"mars"}`, 400, "LocationNotAvailableForResourceGroup"},
		{"missing location", "PUT", rg("newgroup") + v, tok, `{}`, 400, "LocationRequired"},
		{"name ends with period", "PUT", rg("bad.") + v, tok, `{"location":"eastus"}`, 400, "InvalidResourceGroup"},
		{"name with invalid character", "PUT", rg("bad*name") + v, tok, `{"location":"eastus"}`, 400, "InvalidResourceGroup"},
		{"name too long", "PUT", rg(strings.Repeat("a", 91)) + v, tok, `{"location":"eastus"}`, 400, "InvalidResourceGroup"},
		{"duplicate with other location", "PUT", rg("KEEP") + v, tok, `{"location":"westus"}`, 409, "InvalidResourceGroupLocation"},
		{"unknown group", "GET", rg("nope") + v, tok, "", 404, "ResourceGroupNotFound"},
		{"unsupported method", "POST", rg("keep") + v, tok, "", 405, "MethodNotAllowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := c.do(tc.method, tc.path, tc.token, tc.body)
			if a.status != tc.status || a.code != tc.code {
				t.Fatalf("got %d %q, want %d %q (%v)", a.status, a.code, tc.status, tc.code, a.body)
			}
			if tc.code == "InvalidAuthenticationToken" && a.message != "The access token is invalid." {
				t.Fatalf("message %q", a.message)
			}
		})
	}
	// State unchanged: still exactly one group, with its location and tags.
	a := c.do("GET", "/subscriptions/"+sub+"/resourcegroups"+v, tok, "")
	vals, _ := a.body["value"].([]any)
	if len(vals) != 1 {
		t.Fatalf("groups after bad input: %v", a.body)
	}
	g := vals[0].(map[string]any)
	if g["name"] != "keep" || g["location"] != "eastus" || g["tags"].(map[string]any)["a"] != "b" {
		t.Fatalf("group changed: %v", g)
	}
}

// signingKid is the kid of the one key the daemon's JWKS endpoint publishes.
func (c *client) signingKid() string {
	c.t.Helper()
	resp, err := c.hc.Get(c.prof.Endpoint + "/" + c.prof.TenantID + "/discovery/v2.0/keys")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || resp.StatusCode != 200 || len(jwks.Keys) != 1 || jwks.Keys[0].Kid == "" {
		c.t.Fatalf("JWKS: %d %+v %v", resp.StatusCode, jwks, err)
	}
	return jwks.Keys[0].Kid
}

// TestTokenEndpoint checks the OpenID-style issuer a client sees.
func TestTokenEndpoint(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	c := newClient(t, d)
	post := func(form url.Values) (int, map[string]any) {
		resp, err := c.hc.PostForm(c.prof.TokenEndpoint, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.prof.ClientID}, "client_secret": {c.prof.ClientSecret}, "scope": {"https://management.azure.com/.default"}}
	mod := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"good", good, 200, ""},
		{"wrong secret", mod("client_secret", "nope"), 401, "invalid_client"},
		{"unknown client", mod("client_id", "00000000-0000-0000-0000-000000000001"), 400, "unauthorized_client"},
		{"unknown scope", mod("scope", "https://graph.microsoft.com/.default"), 400, "invalid_scope"},
		{"other grant", mod("grant_type", "password"), 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.form)
			if status != tc.status || (tc.code != "" && body["error"] != tc.code) {
				t.Fatalf("got %d %v", status, body)
			}
			if tc.code == "" {
				tok, _ := body["access_token"].(string)
				raw, _ := b64decode(strings.Split(tok, ".")[1])
				var cl auth.Claims
				json.Unmarshal(raw, &cl)
				if cl.Audience != "https://management.azure.com" || cl.TenantID != c.prof.TenantID || cl.ObjectID == "" || cl.Expiry <= time.Now().Unix() {
					t.Fatalf("claims = %+v", cl)
				}
			}
		})
	}
	resp, err := c.hc.Get(c.prof.Endpoint + "/" + c.prof.TenantID + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["token_endpoint"] != c.prof.TokenEndpoint {
		t.Fatalf("discovery = %v", disc)
	}
	resp, err = c.hc.Get(disc["jwks_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct{ Keys []map[string]string }
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "RSA" || jwks.Keys[0]["n"] == "" {
		t.Fatalf("jwks = %v", jwks)
	}
}

// TestMSIEndpointIsOptIn: the managed-identity endpoint hands out administrator tokens only
// when serve is started with --msi-endpoint; otherwise the same request, from the daemon's own
// OS account, is answered with an error saying how to turn it on, and no token.
func TestMSIEndpointIsOptIn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		status int
	}{
		{"off by default", nil, http.StatusNotFound},
		{"on with --msi-endpoint", []string{"--msi-endpoint"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testenv.Start(t, testenv.Options{Args: tc.args})
			c := newClient(t, d)
			// As az login --identity asks (and from this process, the daemon's own account).
			req, _ := http.NewRequest(http.MethodPost, c.prof.Endpoint+auth.MSIPath,
				strings.NewReader(url.Values{"resource": {"https://management.core.windows.net/"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Metadata", "true")
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("status %d, no JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusOK {
				if tok, _ := body["access_token"].(string); tok == "" {
					t.Fatalf("no token: %v", body)
				}
				return
			}
			desc, _ := body["error_description"].(string)
			if body["error"] != "invalid_request" || !strings.Contains(desc, "disabled") ||
				!strings.Contains(desc, "--msi-endpoint") || body["access_token"] != nil {
				t.Fatalf("refusal = %v", body)
			}
		})
	}
}

// TestOpenRefusesABadGraphHost: a Graph host that would collide with another API stops the
// daemon before it touches the data directory.
func TestOpenRefusesABadGraphHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, err := daemon.Open(t.Context(), daemon.Config{DataDir: dir, Addr: "127.0.0.1:0", GraphHost: "x.vault.localhost"})
	if err == nil || !strings.Contains(err.Error(), "graph host") {
		t.Fatalf("Open = %v, want a graph host error", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the data directory was made: %v", err)
	}
}

// TestDataDirAndRestart checks the first start's files and modes, that a restart reuses them,
// and that no secret of the profile is logged.
func TestDataDirAndRestart(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	fi, err := os.Stat(d.DataDir)
	// 0711: the PostgreSQL user traverses it to the backup repositories; nobody but root lists it.
	if err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("data dir mode = %v, %v", fi.Mode().Perm(), err)
	}
	for _, f := range []string{"profile.json", "root.key", "state.db", "keys/token-signing.key.sealed", "tls/ca.key.sealed", "tls/server.key.sealed"} {
		fi, err := os.Stat(filepath.Join(d.DataDir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v", f, fi.Mode().Perm(), err)
		}
	}
	before := d.Profile()
	c := newClient(t, d)
	tok := c.token("https://management.azure.com/.default")
	if a := c.do("PUT", "/subscriptions/"+before.SubscriptionID+"/resourcegroups/persist?api-version=2021-04-01", tok, `{"location":"eastus"}`); a.status != 201 {
		t.Fatalf("create: %v", a.body)
	}
	d.Restart()
	after := d.Profile()
	if *after != *before {
		t.Fatalf("profile changed across restart")
	}
	c = newClient(t, d)
	// A token from before the restart stays valid: same signing key, same issuer.
	if a := c.do("GET", "/subscriptions/"+before.SubscriptionID+"/resourcegroups/persist?api-version=2021-04-01", tok, ""); a.status != 200 {
		t.Fatalf("get after restart: %d %v", a.status, a.body)
	}
	if strings.Contains(d.Logs(), before.ClientSecret) {
		t.Fatal("the daemon logged the administrator's secret")
	}
	// The TLS certificate covers the key-store wildcard names.
	resp, err := c.hc.Get("https://myvault.vault.localhost:" + strings.Split(d.Addr, ":")[1] + "/healthz")
	if err != nil {
		t.Fatalf("TLS to a vault host name: %v", err)
	}
	resp.Body.Close()
}

// TestCrashWhileWriting kills the daemon with SIGKILL while clients write, restarts it, and
// checks that every acknowledged write survived and the state is consistent.
func TestCrashWhileWriting(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	c := newClient(t, d)
	tok := c.token("https://management.azure.com/.default")
	sub := c.prof.SubscriptionID
	const v = "?api-version=2021-04-01"

	// A group whose delete (a long-running operation) will be interrupted by the crash.
	for i := range 3 {
		c.do("PUT", fmt.Sprintf("/subscriptions/%s/resourcegroups/doomed-%d%s", sub, i, v), tok, `{"location":"eastus"}`)
	}

	var acked sync.Map
	var count atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopWriters := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	t.Cleanup(stopWriters) // before the writers start: a failure below does not leave them running
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("crash-%d-%d", w, i)
				body := fmt.Sprintf(`{"location":"westeurope","tags":{"writer":"%d","seq":"%d"}}`, w, i)
				req, _ := http.NewRequest("PUT", c.prof.Endpoint+"/subscriptions/"+sub+"/resourcegroups/"+name+v, bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := c.hc.Do(req)
				if err != nil {
					return // the daemon died
				}
				resp.Body.Close()
				if resp.StatusCode == 201 {
					acked.Store(name, fmt.Sprint(i))
					count.Add(1)
				}
			}
		}()
	}
	testkit.Eventually(t, 2*time.Minute, "40 acknowledged writes", func() error {
		if n := count.Load(); n < 40 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	for i := range 3 {
		c.do("DELETE", fmt.Sprintf("/subscriptions/%s/resourcegroups/doomed-%d%s", sub, i, v), tok, "")
	}
	d.Kill()
	stopWriters()

	d.StartAgain()
	c = newClient(t, d)
	tok = c.token("https://management.azure.com/.default")
	n := 0
	acked.Range(func(k, val any) bool {
		n++
		a := c.do("GET", "/subscriptions/"+sub+"/resourcegroups/"+k.(string)+v, tok, "")
		if a.status != 200 {
			t.Errorf("acknowledged group %s lost: %d", k, a.status)
			return true
		}
		tags, _ := a.body["tags"].(map[string]any)
		if a.body["location"] != "westeurope" || tags["seq"] != val {
			t.Errorf("group %s torn: %v", k, a.body)
		}
		return true
	})
	if n < 40 {
		t.Fatalf("only %d acknowledged writes", n)
	}
	// Every listed group is whole, and the interrupted deletes finish after the restart.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := c.do("GET", "/subscriptions/"+sub+"/resourcegroups"+v+"&$top=1000", tok, "")
		vals, _ := a.body["value"].([]any)
		doomed := 0
		for _, g := range vals {
			m := g.(map[string]any)
			if m["location"] == nil || m["id"] == nil {
				t.Fatalf("torn group %v", m)
			}
			if strings.HasPrefix(m["name"].(string), "doomed-") {
				doomed++
			}
		}
		if doomed == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d interrupted group deletes did not finish after restart", doomed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
