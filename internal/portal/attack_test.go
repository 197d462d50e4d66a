package portal_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pgflex/pgflex/internal/portal"
	"github.com/pgflex/pgflex/internal/testenv"
)

// TestPortalStolenCookieIsWorthless is the attack a hostile local account (a server's OS user
// that got out of SQL, another installation's operator) can mount on a signed-in
// administrator: listen on another port of portal.localhost, over plain HTTP, and have the
// administrator's browser visit it. Browsers scope cookies by host, not port, so the session
// cookie arrives there. With it, and a forged Origin, the attacker must get nothing.
func TestPortalStolenCookieIsWorthless(t *testing.T) {
	d := testenv.Start(t, testenv.Options{})
	b := NewBrowser(t, d) // signed in

	var mu sync.Mutex
	var stolen string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.Cookies() {
			if strings.HasPrefix(c.Name, portal.CookieName) {
				mu.Lock()
				stolen = c.Name + "=" + c.Value
				mu.Unlock()
			}
		}
		w.Write([]byte("<!doctype html><title>elsewhere</title>"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	b.Navigate("http://portal.localhost:" + port + "/")
	b.Navigate("http://portal.localhost:" + port + "/again")
	mu.Lock()
	cookie := stolen
	mu.Unlock()
	// The premise: the browser did hand the cookie to the other port. If a browser ever stops
	// doing so, this attack is gone, and the test says so rather than passing on nothing.
	if cookie == "" {
		t.Fatal("the browser sent no session cookie to another port of portal.localhost: the attack this test makes is not possible any more; revisit the test")
	}

	c := newPortalClient(t, d)
	c.hc.Jar = nil
	send := func(method, path string, header ...string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(method, c.origin+path, strings.NewReader(`{"resource":"arm","active":true}`))
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.origin) // forged: a local process sets any header
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = jsonDecode(resp, &out)
		return resp, out
	}
	if _, s := send(http.MethodGet, "/auth/session"); s["signedIn"] != false || s["csrfToken"] != nil || s["user"] != nil {
		t.Errorf("the stolen cookie read the session: %v", s)
	}
	for _, path := range []string{"/auth/token", "/auth/activity", "/auth/signout"} {
		if resp, body := send(http.MethodPost, path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with the stolen cookie: %d %v", path, resp.StatusCode, body)
		}
		if resp, body := send(http.MethodPost, path, "X-CSRF-Token", "guessed"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s with the stolen cookie and a guessed secret: %d %v", path, resp.StatusCode, body)
		}
	}
	// The administrator's own session is untouched.
	b.Go("/browse/groups")
	b.WaitFor("heading", "Resource groups")
	b.WaitFor("button", "Sign out")
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
