package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestClient(t *testing.T, f *fakeDaemon, opts ClientOptions) *Client {
	t.Helper()
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Millisecond
	}
	c, err := NewClient(f.profile(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientCachesTokensPerAudience(t *testing.T) {
	f := newFakeDaemon(t)
	c := newTestClient(t, f, ClientOptions{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.ARM(ctx, http.MethodGet, "/subscriptions", APIVersionSubscriptions, nil); err != nil {
			t.Fatal(err)
		}
	}
	keyURL := fmt.Sprintf("https://myvault.vault.localhost:%s/keys/k1", f.port())
	for i := 0; i < 2; i++ {
		if _, err := c.DataPlane(ctx, http.MethodGet, keyURL, "7.5", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.tokenCount("https://management.azure.com/.default"); got != 1 {
		t.Errorf("ARM token requests = %d, want 1 (cached)", got)
	}
	if got := f.tokenCount("https://vault.localhost/.default"); got != 1 {
		t.Errorf("key-store token requests = %d, want 1 (cached, separate audience)", got)
	}
}

// TestClientDialsLocalhostNamesAtLoopback: myvault.vault.localhost does not resolve here; the
// client must dial 127.0.0.1 yet verify the certificate for the real name, with the key
// store's audience.
func TestClientDialsLocalhostNamesAtLoopback(t *testing.T) {
	f := newFakeDaemon(t)
	c := newTestClient(t, f, ClientOptions{})
	url := fmt.Sprintf("https://myvault.vault.localhost:%s/keys/k1", f.port())
	resp, err := c.DataPlane(context.Background(), http.MethodGet, url, "7.5", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Key struct {
			Kid string `json:"kid"`
		} `json:"key"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatal(err)
	}
	if want := "https://myvault.vault.localhost:" + f.port() + "/keys/k1/"; !strings.HasPrefix(body.Key.Kid, want) {
		t.Errorf("kid = %q, want prefix %q", body.Key.Kid, want)
	}
	if got := f.seen(); len(got) != 1 || got[0] != "GET /keys/k1 https://vault.localhost" {
		t.Errorf("requests = %v", got)
	}
}

// TestClientSkipsProxyForLocalhost: *.localhost hosts (the daemon, its key stores) go direct
// whatever the environment's proxy says; other hosts get the environment's choice.
func TestClientSkipsProxyForLocalhost(t *testing.T) {
	proxy, _ := url.Parse("http://proxy.example:3128")
	choose := directForLocalhost(func(*http.Request) (*url.URL, error) { return proxy, nil })
	for _, tc := range []struct {
		url       string
		wantProxy bool
	}{
		{"https://myvault.vault.localhost:8443/keys/k", false},
		{"https://localhost:8443/subscriptions", false},
		{"https://LOCALHOST.:1/", false},
		{"https://example.com/", true},
		{"https://notlocalhost/", true},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		got, err := choose(req)
		if err != nil || (got != nil) != tc.wantProxy {
			t.Errorf("proxy for %s = %v, %v; want proxied %v", tc.url, got, err, tc.wantProxy)
		}
	}
}

func TestClientTrustsOnlyTheProfileCA(t *testing.T) {
	f := newFakeDaemon(t)
	other := newFakeDaemon(t)
	p := f.profile()
	p.CACertificate = other.caPEM // a valid CA, just not the one that signed f's certificate
	c, err := NewClient(p, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ARM(context.Background(), http.MethodGet, "/subscriptions", APIVersionSubscriptions, nil)
	var ue *UserError
	if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "is not signed by the CA in the profile") {
		t.Fatalf("err = %v, want an untrusted-CA error", err)
	}
}

func TestClientRefusesForeignHosts(t *testing.T) {
	f := newFakeDaemon(t)
	c := newTestClient(t, f, ClientOptions{})
	for _, u := range []string{"https://example.com/subscriptions", "http://" + strings.TrimPrefix(f.srv.URL, "https://") + "/x"} {
		_, err := c.Do(context.Background(), http.MethodGet, u, nil, nil)
		var ue *UserError
		if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "Refusing to send credentials") {
			t.Errorf("Do(%s) err = %v, want refusal", u, err)
		}
	}
	if n := f.tokenCount("https://management.azure.com/.default"); n != 0 {
		t.Errorf("token requests = %d, want none before refusing", n)
	}
}

func TestClientAuthenticationFailure(t *testing.T) {
	f := newFakeDaemon(t)
	p := f.profile()
	p.ClientSecret = "wrong"
	c, err := NewClient(p, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ARM(context.Background(), http.MethodGet, "/subscriptions", APIVersionSubscriptions, nil)
	msg, _, code := describeError(err)
	if msg != "Authentication failed: AADSTS7000215: Invalid client secret provided." || code != exitFailure {
		t.Errorf("got %q (exit %d)", msg, code)
	}
}

func TestClientDecodesARMErrors(t *testing.T) {
	f := newFakeDaemon(t)
	f.mux.HandleFunc("GET /subscriptions/{sub}/resourcegroups/{rg}/providers/Test.Provider/things/detailed", func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"code": "InvalidParameter", "message": "The request is invalid.", "target": "properties.size",
			"details": []any{map[string]any{"code": "TooSmall", "message": "size must be at least 32."}}}})
	})
	f.mux.HandleFunc("GET /subscriptions/{sub}/resourcegroups/{rg}/providers/Test.Provider/things/html", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
	})
	c := newTestClient(t, f, ClientOptions{})
	for _, tc := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"not found", "/subscriptions/" + f.sub + "/resourcegroups/missing", 404,
			"(ResourceGroupNotFound) Resource group 'missing' could not be found.\nCode: ResourceGroupNotFound\nMessage: Resource group 'missing' could not be found."},
		{"details and target", "/subscriptions/" + f.sub + "/resourcegroups/rg/providers/Test.Provider/things/detailed", 400,
			"(InvalidParameter) The request is invalid.\nCode: InvalidParameter\nMessage: The request is invalid.\nTarget: properties.size\n" +
				"Exception Details:\t(TooSmall) size must be at least 32.\n\tCode: TooSmall\n\tMessage: size must be at least 32."},
		{"not an ARM body", "/subscriptions/" + f.sub + "/resourcegroups/rg/providers/Test.Provider/things/html", 502,
			"Operation returned an invalid status 'Bad Gateway'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ARM(context.Background(), http.MethodGet, tc.path, "2021-04-01", nil)
			var ae *ARMError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *ARMError", err)
			}
			if resp == nil || resp.StatusCode != tc.status || ae.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", ae.StatusCode, tc.status)
			}
			if ae.Error() != tc.want {
				t.Errorf("Error() =\n%s\nwant\n%s", ae.Error(), tc.want)
			}
		})
	}
}

func TestClientListAllFollowsNextLink(t *testing.T) {
	f := newFakeDaemon(t)
	for i := 0; i < 5; i++ {
		f.addGroup(fmt.Sprintf("rg%d", i), "eastus")
	}
	c := newTestClient(t, f, ClientOptions{})
	items, err := c.ListAll(context.Background(), "/subscriptions/"+f.sub+"/resourcegroups", APIVersionResourceGroups)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, raw := range items {
		var g struct{ Name string }
		_ = json.Unmarshal(raw, &g)
		names = append(names, g.Name)
	}
	if got := strings.Join(names, ","); got != "rg0,rg1,rg2,rg3,rg4" {
		t.Errorf("names = %s", got)
	}
	pages := 0
	for _, r := range f.seen() {
		if strings.HasPrefix(r, "GET /subscriptions/"+f.sub+"/resourcegroups ") {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("pages fetched = %d, want 3", pages)
	}
}

// widgetProvider adds a provider to the fake whose PUT is a long-running operation polled
// through Azure-AsyncOperation: InProgress polls times, then Succeeded (or Failed for "broken").
func widgetProvider(f *fakeDaemon, polls int, retryAfter string) *sync.Map {
	state := &sync.Map{} // name → remaining polls
	base := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Test.Provider/widgets/{name}"
	f.mux.HandleFunc("PUT "+base, func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		state.Store(name, polls)
		w.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/subscriptions/%s/providers/Test.Provider/locations/eastus/azureAsyncOperation/%s?api-version=2024-08-01", f.srv.URL, f.sub, name))
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		replyJSON(w, http.StatusCreated, map[string]any{"name": name, "properties": map[string]any{"provisioningState": "Accepted"}})
	})
	f.mux.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "properties": map[string]any{"provisioningState": "Succeeded", "size": 32}})
	})
	f.mux.HandleFunc("GET /subscriptions/{sub}/providers/Test.Provider/locations/{loc}/azureAsyncOperation/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		v, _ := state.Load(name)
		left, _ := v.(int)
		state.Store(name, left-1)
		switch {
		case left > 0:
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			replyJSON(w, http.StatusOK, map[string]any{"name": name, "status": "InProgress", "startTime": "2026-01-01T00:00:00Z"})
		case name == "broken":
			replyJSON(w, http.StatusOK, map[string]any{"name": name, "status": "Failed", "startTime": "2026-01-01T00:00:00Z",
				"endTime": "2026-01-01T00:00:01Z", "error": map[string]any{"code": "WidgetBroken", "message": "The widget could not be built."}})
		default:
			replyJSON(w, http.StatusOK, map[string]any{"name": name, "status": "Succeeded", "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:01Z"})
		}
	})
	return state
}

func TestClientWaitAzureAsyncOperation(t *testing.T) {
	f := newFakeDaemon(t)
	widgetProvider(f, 2, "0")
	c := newTestClient(t, f, ClientOptions{PollInterval: time.Hour}) // Retry-After: 0 must win
	ctx := context.Background()
	path := ResourcePath(f.sub, "rg", "Test.Provider/widgets", "w1")
	first, err := c.ARM(ctx, http.MethodPut, path, "2024-08-01", map[string]any{"location": "eastus"})
	if err != nil {
		t.Fatal(err)
	}
	// Were the hour-long poll interval used, the context would end the wait long before it.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	final, err := c.Wait(wctx, http.MethodPut, c.ARMURL(path, "2024-08-01"), first)
	if err != nil {
		t.Fatalf("Wait did not honour Retry-After: 0: %v", err)
	}
	if provisioningState(final.Body) != "Succeeded" || !strings.Contains(string(final.Body), `"size":32`) {
		t.Errorf("final body = %s, want the resource from the final GET", final.Body)
	}
	var polls, gets int
	for _, r := range f.seen() {
		switch {
		case strings.Contains(r, "/azureAsyncOperation/w1"):
			polls++
		case strings.HasPrefix(r, "GET /subscriptions/"+f.sub+"/resourceGroups/rg/providers/Test.Provider/widgets/w1"):
			gets++
		}
	}
	if polls != 3 || gets != 1 {
		t.Errorf("status polls = %d (want 3), final GETs = %d (want 1)", polls, gets)
	}
}

func TestClientWaitFailedOperation(t *testing.T) {
	f := newFakeDaemon(t)
	widgetProvider(f, 1, "")
	c := newTestClient(t, f, ClientOptions{})
	ctx := context.Background()
	path := ResourcePath(f.sub, "rg", "Test.Provider/widgets", "broken")
	first, err := c.ARM(ctx, http.MethodPut, path, "2024-08-01", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Wait(ctx, http.MethodPut, c.ARMURL(path, "2024-08-01"), first)
	msg, _, code := describeError(err)
	want := "(WidgetBroken) The widget could not be built.\nCode: WidgetBroken\nMessage: The widget could not be built."
	if msg != want || code != exitFailure {
		t.Errorf("got %q exit %d, want %q exit 1", msg, code, want)
	}
}

func TestClientWaitLocation(t *testing.T) {
	f := newFakeDaemon(t)
	f.addGroup("doomed", "eastus")
	c := newTestClient(t, f, ClientOptions{})
	ctx := context.Background()
	path := ResourceGroupPath(f.sub, "doomed")
	first, err := c.ARM(ctx, http.MethodDelete, path, APIVersionResourceGroups, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d", first.StatusCode)
	}
	final, err := c.Wait(ctx, http.MethodDelete, c.ARMURL(path, APIVersionResourceGroups), first)
	if err != nil {
		t.Fatal(err)
	}
	if final.StatusCode != http.StatusNoContent {
		t.Errorf("final status = %d, want 204", final.StatusCode)
	}
	if f.group("doomed") != nil {
		t.Error("group still exists after the operation completed")
	}
	polls := 0
	for _, r := range f.seen() {
		if strings.Contains(r, "/operationResults/delete-doomed") {
			polls++
		}
	}
	if polls != 2 {
		t.Errorf("Location polls = %d, want 2 (202 then 204)", polls)
	}
}

func TestRetryAfter(t *testing.T) {
	c := &Client{opts: ClientOptions{PollInterval: 7 * time.Second}}
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 7 * time.Second},
		{"0", 0},
		{"3", 3 * time.Second},
		{"junk", 7 * time.Second},
		{"-1", 7 * time.Second},
		{time.Now().Add(-time.Minute).UTC().Format(http.TimeFormat), 0},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Retry-After", tc.header)
		}
		if got := c.retryAfter(h); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestClientDebugRedactsSecrets: --debug traces requests like az, but neither the client
// secret nor any token may appear.
func TestClientDebugRedactsSecrets(t *testing.T) {
	f := newFakeDaemon(t)
	var mu sync.Mutex
	var lines []string
	c := newTestClient(t, f, ClientOptions{Debugf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}})
	ctx := context.Background()
	if _, err := c.ARM(ctx, http.MethodGet, "/subscriptions", APIVersionSubscriptions, nil); err != nil {
		t.Fatal(err)
	}
	token, err := c.Token(ctx, "https://management.azure.com")
	if err != nil {
		t.Fatal(err)
	}
	trace := strings.Join(lines, "\n")
	for _, secret := range []string{f.secret, token} {
		if strings.Contains(trace, secret) {
			t.Errorf("debug output contains a secret %q:\n%s", secret, trace)
		}
	}
	for _, want := range []string{
		"Request URL: '" + f.srv.URL + "/subscriptions?api-version=2022-12-01'",
		"Request method: 'GET'",
		"    'Authorization': '*****'",
		"client_secret=*****",
		`"access_token":"*****"`,
		"Response status: 200",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("debug output lacks %q:\n%s", want, trace)
		}
	}
}

func TestRedactMasksFieldsAndLiterals(t *testing.T) {
	c := &Client{secrets: []string{"topsecret"}}
	for _, tc := range []struct{ in, want string }{
		{`{"administratorLoginPassword": "p@ss\"word", "x": 1}`, `{"administratorLoginPassword": "*****", "x": 1}`},
		{"grant_type=client_credentials&client_secret=abc&scope=x", "grant_type=client_credentials&client_secret=*****&scope=x"},
		{"value topsecret here", "value ***** here"},
	} {
		if got := c.redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
