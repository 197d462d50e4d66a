package portal_test

// The portal's sessions over real HTTPS against a real daemon: who may sign in, what the cookie
// is, CSRF and origin checks, one-time links, idle expiry, sign-out, and the key store's CORS
// answer for the portal's origin only.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/portal"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// portalClient is a browser stand-in for HTTP-level checks: a cookie jar and the portal's origin.
type portalClient struct {
	t      *testing.T
	d      *testenv.Daemon
	hc     *http.Client
	origin string
	csrf   string
}

func newPortalClient(t *testing.T, d *testenv.Daemon) *portalClient {
	t.Helper()
	hc, err := azcred.HTTPClient([]byte(d.Profile().CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc.Jar = jar
	return &portalClient{t: t, d: d, hc: hc, origin: strings.TrimRight(d.Profile().PortalEndpoint, "/")}
}

// post sends JSON to the portal with the page's headers; origin "" sends none.
func (c *portalClient) post(path, origin string, body any, header ...string) (*http.Response, map[string]any) {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, c.origin+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp, out
}

func (c *portalClient) signIn() {
	c.t.Helper()
	p := c.d.Profile()
	resp, body := c.post("/auth/signin", c.origin, map[string]string{"clientId": p.ClientID, "clientSecret": p.ClientSecret})
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("sign in: %d %v", resp.StatusCode, body)
	}
	c.csrf = body["csrfToken"].(string)
}

func (c *portalClient) token() (int, string) {
	c.t.Helper()
	resp, body := c.post("/auth/token", c.origin, map[string]any{"resource": "arm"}, "X-CSRF-Token", c.csrf)
	tok, _ := body["accessToken"].(string)
	return resp.StatusCode, tok
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestPortalSessions(t *testing.T) {
	d := testenv.Start(t, testenv.Options{Args: []string{"--portal-idle-timeout", "2s"}})
	p := d.Profile()

	t.Run("sign-in refuses a wrong secret and sets no cookie", func(t *testing.T) {
		c := newPortalClient(t, d)
		resp, body := c.post("/auth/signin", c.origin, map[string]string{"clientId": p.ClientID, "clientSecret": p.ClientSecret + "x"})
		if resp.StatusCode != http.StatusUnauthorized || errorCode(body) != "InvalidCredentials" {
			t.Fatalf("wrong secret: %d %v", resp.StatusCode, body)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("a refused sign-in set cookies: %v", resp.Cookies())
		}
	})

	t.Run("the session cookie is host-only, Secure, HttpOnly and SameSite=Strict", func(t *testing.T) {
		c := newPortalClient(t, d)
		resp, body := c.post("/auth/signin", c.origin, map[string]string{"clientId": p.ClientID, "clientSecret": p.ClientSecret})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign in: %d %v", resp.StatusCode, body)
		}
		var set string
		for _, h := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(h, portal.CookieName+"-") {
				set = h
			}
		}
		for _, want := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Strict"} {
			if !strings.Contains(set, want) {
				t.Errorf("Set-Cookie %q lacks %s", set, want)
			}
		}
		if strings.Contains(strings.ToLower(set), "domain=") {
			t.Errorf("Set-Cookie %q names a domain: other hosts would get it", set)
		}
	})

	t.Run("tokens need the CSRF token and the portal's origin", func(t *testing.T) {
		c := newPortalClient(t, d)
		c.signIn()
		if resp, body := c.post("/auth/token", c.origin, map[string]any{"resource": "arm"}); resp.StatusCode != http.StatusForbidden || errorCode(body) != "InvalidCsrfToken" {
			t.Errorf("token without CSRF token: %d %v", resp.StatusCode, body)
		}
		if resp, body := c.post("/auth/token", "https://evil.localhost:8443", map[string]any{"resource": "arm"}, "X-CSRF-Token", c.csrf); resp.StatusCode != http.StatusForbidden || errorCode(body) != "InvalidOrigin" {
			t.Errorf("token from another origin: %d %v", resp.StatusCode, body)
		}
		if resp, body := c.post("/auth/token", "", map[string]any{"resource": "arm"}, "X-CSRF-Token", c.csrf); resp.StatusCode != http.StatusForbidden {
			t.Errorf("token without an Origin header: %d %v", resp.StatusCode, body)
		}
		status, tok := c.token()
		if status != http.StatusOK || tok == "" {
			t.Fatalf("token with CSRF token: %d", status)
		}
		// The token is the administrator's, for ARM: it reads the subscription like the CLI's.
		if oid := testkit.TokenOID(t, tok); oid != testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default")) {
			t.Errorf("the portal's token is for %s, not the signed-in administrator", oid)
		}
		if r := d.Do(t, http.MethodGet, "/subscriptions?api-version=2022-12-01", tok, nil); r.Status != http.StatusOK {
			t.Errorf("ARM with the portal's token: %d %s", r.Status, r.Raw)
		}
		for _, path := range []string{"/auth/activity", "/auth/signout"} {
			if resp, body := c.post(path, c.origin, map[string]any{"active": true}); resp.StatusCode != http.StatusForbidden || errorCode(body) != "InvalidCsrfToken" {
				t.Errorf("%s without CSRF token: %d %v", path, resp.StatusCode, body)
			}
		}
		if status, _ := c.token(); status != http.StatusOK {
			t.Errorf("a refused sign-out ended the session: token %d", status)
		}
		if resp, body := c.post("/auth/token", c.origin, map[string]any{"resource": "https://evil.example"}, "X-CSRF-Token", c.csrf); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("token for an unknown resource: %d %v", resp.StatusCode, body)
		}
	})

	t.Run("the cookie alone is worth nothing", func(t *testing.T) {
		// Browsers send the cookie to every port of portal.localhost, where anyone on this
		// machine may listen: with it alone, an attacker learns nothing and gets no token.
		c := newPortalClient(t, d)
		c.signIn()
		get := func(secret string) map[string]any {
			req, _ := http.NewRequest(http.MethodGet, c.origin+"/auth/session", nil)
			if secret != "" {
				req.Header.Set("X-CSRF-Token", secret)
			}
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			return out
		}
		if s := get(""); s["signedIn"] != false || s["csrfToken"] != nil || s["user"] != nil {
			t.Errorf("the session with the cookie alone: %v", s)
		}
		if s := get(c.csrf); s["signedIn"] != true || s["csrfToken"] != nil {
			t.Errorf("the session with its secret: %v (it must not repeat the secret)", s)
		}
		if resp, _ := c.post("/auth/token", c.origin, map[string]any{"resource": "arm"}, "X-CSRF-Token", "guess"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("token with the cookie and a wrong secret: %d", resp.StatusCode)
		}
	})

	t.Run("session tokens are short-lived", func(t *testing.T) {
		c := newPortalClient(t, d)
		c.signIn()
		_, tok := c.token()
		var claims struct{ Iat, Exp int64 }
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		json.Unmarshal(payload, &claims)
		if life := time.Duration(claims.Exp-claims.Iat) * time.Second; life != auth.SessionTokenLifetime {
			t.Errorf("a session's token lives %s, want %s", life, auth.SessionTokenLifetime)
		}
	})

	t.Run("the portal host forwards the resource manager and nothing else", func(t *testing.T) {
		c := newPortalClient(t, d)
		armTok := d.Token(t, "https://management.azure.com/.default")
		for path, want := range map[string]int{
			"/subscriptions?api-version=2022-12-01":            http.StatusOK,
			"/metadata/endpoints?api-version=2022-09-01":       http.StatusOK,
			"/msi/token?resource=https://management.azure.com": http.StatusNotFound,
			"/metrics":                              http.StatusNotFound,
			"/" + p.TenantID + "/oauth2/v2.0/token": http.StatusNotFound,
			"/adfs/oauth2/token":                    http.StatusNotFound,
			"/healthz":                              http.StatusNotFound,
			"/assets/":                              http.StatusNotFound,
		} {
			req, _ := http.NewRequest(http.MethodGet, c.origin+path, nil)
			req.Header.Set("Authorization", "Bearer "+armTok)
			req.Header.Set("Metadata", "true")
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s on the portal host: %d, want %d", path, resp.StatusCode, want)
			}
		}
	})

	t.Run("a sign-in link works once and only for a bearer of an ARM token", func(t *testing.T) {
		c := newPortalClient(t, d)
		if resp, _ := c.post("/auth/links", "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("link without a bearer token: %d", resp.StatusCode)
		}
		kvTok := d.Token(t, "https://vault.localhost/.default")
		if resp, _ := c.post("/auth/links", "", nil, "Authorization", "Bearer "+kvTok); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("link with a key-store token: %d", resp.StatusCode)
		}
		resp, body := c.post("/auth/links", "", nil, "Authorization", "Bearer "+d.Token(t, "https://management.azure.com/.default"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("link: %d %v", resp.StatusCode, body)
		}
		u, _ := body["url"].(string)
		code, ok := strings.CutPrefix(u, c.origin+"/#signin=")
		if !ok || len(code) < 40 {
			t.Fatalf("link %q: want %s/#signin={code}", u, c.origin)
		}
		if resp, body := c.post("/auth/redeem", c.origin, map[string]string{"code": code}); resp.StatusCode != http.StatusOK || body["csrfToken"] == "" {
			t.Fatalf("redeem: %d %v", resp.StatusCode, body)
		}
		other := newPortalClient(t, d)
		if resp, body := other.post("/auth/redeem", other.origin, map[string]string{"code": code}); resp.StatusCode != http.StatusUnauthorized || errorCode(body) != "InvalidSignInLink" {
			t.Fatalf("second redeem: %d %v", resp.StatusCode, body)
		}
	})

	t.Run("an idle session expires and an active one does not", func(t *testing.T) {
		active := newPortalClient(t, d)
		active.signIn()
		idle := newPortalClient(t, d)
		idle.signIn()
		// Three seconds with a 2 s idle timeout: the active session says so every half second.
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			if resp, _ := active.post("/auth/activity", active.origin, map[string]any{"active": true}, "X-CSRF-Token", active.csrf); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("activity: %d", resp.StatusCode)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if status, _ := active.token(); status != http.StatusOK {
			t.Errorf("the active session ended: token %d", status)
		}
		if status, _ := idle.token(); status != http.StatusUnauthorized {
			t.Errorf("the idle session lives on: token %d", status)
		}
	})

	t.Run("sign-out ends the session", func(t *testing.T) {
		c := newPortalClient(t, d)
		c.signIn()
		if resp, _ := c.post("/auth/signout", c.origin, nil, "X-CSRF-Token", c.csrf); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("sign out: %d", resp.StatusCode)
		}
		if status, _ := c.token(); status != http.StatusUnauthorized {
			t.Errorf("token after sign-out: %d", status)
		}
	})

	t.Run("the key store answers CORS for the portal's origin only", func(t *testing.T) {
		c := newPortalClient(t, d)
		port := strings.TrimPrefix(c.origin[strings.LastIndex(c.origin, ":"):], ":")
		preflight := func(origin string) *http.Response {
			req, _ := http.NewRequest(http.MethodOptions, "https://anyvault.vault.localhost:"+port+"/keys?api-version=7.4", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if r := preflight(c.origin); r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != c.origin ||
			!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight from the portal: %d %v", r.StatusCode, r.Header)
		}
		if r := preflight("https://evil.localhost:" + port); r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin allowed: %v", r.Header)
		}
	})

	t.Run("pages carry a CSP without inline script and are served only on the portal host", func(t *testing.T) {
		c := newPortalClient(t, d)
		resp, err := c.hc.Get(c.origin + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP %q", csp)
		}
		u, _ := url.Parse(p.Endpoint)
		resp, err = c.hc.Get("https://" + u.Host + "/assets/app.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("the portal's assets are served on the API's host %s too", u.Host)
		}
	})
}

// inlineCode finds what the CSP would block in the portal's files: inline scripts, inline event
// handlers, style attributes and innerHTML (which would let data become markup).
var inlineCode = regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+\s*=\s*["']|\sstyle\s*=\s*["']|setAttribute\(\s*['"]style['"]|\.innerHTML\s*=|insertAdjacentHTML`)

func TestPortalFilesHaveNoInlineCode(t *testing.T) {
	// Positive control: the pattern finds each kind it looks for.
	for _, bad := range []string{`<script>alert(1)</script>`, `<button onclick="x()">`, `<div style="color:red">`,
		`el.setAttribute('style', 'x')`, `el.innerHTML = s`, `el.insertAdjacentHTML('beforeend', s)`} {
		if !inlineCode.MatchString(bad) {
			t.Fatalf("the scan misses %q", bad)
		}
	}
	var files int
	err := filepath.WalkDir("web", func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if loc := inlineCode.FindIndex(data); loc != nil {
			t.Errorf("%s: %q would need an unsafe CSP", path, data[loc[0]:min(loc[1]+20, len(data))])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("scanned %d files under web/", files)
	}
}
