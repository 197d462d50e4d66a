package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/localnet"
)

// api-versions of the Microsoft.Resources endpoints the CLI calls.
const (
	APIVersionSubscriptions  = "2022-12-01"
	APIVersionResourceGroups = "2021-04-01"
)

// ClientOptions tune a Client.
type ClientOptions struct {
	// Debugf receives HTTP tracing lines, in the shape az's --debug prints, with the
	// Authorization header, the client secret and every token already masked. Nil: no tracing.
	Debugf func(format string, args ...any)
	// PollInterval is the wait between polls of a long-running operation when the service
	// sends no Retry-After. Zero means 1 s, right for a local daemon.
	PollInterval time.Duration
	// UserAgent is sent with every request.
	UserAgent string
}

// Client talks to the pgflex daemon as its profile describes: it trusts only the profile's CA,
// dials *.localhost names at 127.0.0.1, obtains and caches bearer tokens per audience with the
// profile's client credentials, and speaks ARM's conventions (api-version, error bodies, paging,
// long-running operations). It is safe for concurrent use.
type Client struct {
	profile  *Profile
	endpoint *url.URL
	hc       *http.Client
	opts     ClientOptions

	mu      sync.Mutex
	tokens  map[string]cachedToken // by audience
	secrets []string               // values never to print: the client secret and every token
}

type cachedToken struct {
	value   string
	expires time.Time
}

// Response is a service answer with its body read.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// NewClient builds a client for the daemon the profile names.
func NewClient(p *Profile, opts ClientOptions) (*Client, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("invalid profile: %w", err)
	}
	pool, err := p.CertPool()
	if err != nil {
		return nil, err
	}
	endpoint, err := url.Parse(strings.TrimRight(p.Endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("invalid profile endpoint: %w", err)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	transport := &http.Transport{
		Proxy:       directForLocalhost(http.ProxyFromEnvironment),
		DialContext: localnet.DialContext(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
		// Only the profile's CA: the daemon's certificate comes from the CA it created. The
		// server name stays the URL's host, so myvault.vault.localhost is verified as such.
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
	}
	return &Client{
		profile:  p,
		endpoint: endpoint,
		hc: &http.Client{
			Transport: transport,
			// ARM does not redirect; following one would carry a token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		opts:    opts,
		tokens:  map[string]cachedToken{},
		secrets: []string{p.ClientSecret},
	}, nil
}

// directForLocalhost wraps a proxy choice so that *.localhost hosts are always reached
// directly: a proxy would not resolve them to this machine.
func directForLocalhost(proxy func(*http.Request) (*url.URL, error)) func(*http.Request) (*url.URL, error) {
	return func(r *http.Request) (*url.URL, error) {
		if localnet.IsLocalhost(r.URL.Hostname()) {
			return nil, nil
		}
		return proxy(r)
	}
}

// Profile returns the profile the client was built from.
func (c *Client) Profile() *Profile { return c.profile }

// Token returns a bearer token for audience ("https://management.azure.com",
// "https://vault.localhost"), fetched with the client-credentials grant and cached in memory
// for this process until shortly before it expires. Tokens are never written anywhere.
func (c *Client) Token(ctx context.Context, audience string) (string, error) {
	c.mu.Lock()
	t, ok := c.tokens[audience]
	c.mu.Unlock()
	if ok && time.Now().Before(t.expires) {
		return t.value, nil
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.profile.ClientID},
		"client_secret": {c.profile.ClientSecret},
		"scope":         {strings.TrimRight(audience, "/") + "/.default"},
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}
	resp, err := c.send(ctx, http.MethodPost, c.profile.TokenEndpoint, []byte(form.Encode()), h)
	if err != nil {
		return "", err
	}
	var body struct {
		AccessToken      string      `json:"access_token"`
		ExpiresIn        json.Number `json:"expires_in"`
		Error            string      `json:"error"`
		ErrorDescription string      `json:"error_description"`
	}
	_ = json.Unmarshal(resp.Body, &body) // a malformed answer is reported below
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		msg := body.ErrorDescription
		if msg == "" {
			msg = body.Error
		}
		if msg == "" {
			msg = fmt.Sprintf("the token endpoint answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return "", &UserError{Msg: "Authentication failed: " + msg,
			Err: fmt.Errorf("token request for %s: status %d", audience, resp.StatusCode)}
	}
	lifetime := time.Hour
	if n, err := body.ExpiresIn.Int64(); err == nil && n > 0 {
		lifetime = time.Duration(n) * time.Second
	}
	// Renew a minute early so that a token does not expire between check and use.
	expires := time.Now().Add(lifetime - time.Minute)
	c.mu.Lock()
	c.tokens[audience] = cachedToken{value: body.AccessToken, expires: expires}
	c.secrets = append(c.secrets, body.AccessToken)
	c.mu.Unlock()
	return body.AccessToken, nil
}

// audienceFor picks the token audience for a URL and refuses hosts that are neither the
// daemon's endpoint nor one of its key stores, so that no token leaves for elsewhere (a
// nextLink or polling URL pointing away, say).
func (c *Client) audienceFor(u *url.URL) (string, error) {
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme == "https" && strings.EqualFold(u.Host, c.endpoint.Host):
		return c.profile.ARMAudience, nil
	case u.Scheme == "https" && c.profile.PortalEndpoint != "" && strings.EqualFold(u.Host, graphHost(c.profile.PortalEndpoint)):
		return c.profile.ARMAudience, nil // the portal serves ARM on its own origin
	case u.Scheme == "https" && c.profile.GraphEndpoint != "" && strings.EqualFold(u.Host, graphHost(c.profile.GraphEndpoint)):
		return strings.TrimRight(c.profile.GraphEndpoint, "/"), nil
	case u.Scheme == "https" && c.profile.KeyVaultDNSSuffix != "" &&
		strings.HasSuffix(host, "."+strings.ToLower(c.profile.KeyVaultDNSSuffix)):
		return "https://" + c.profile.KeyVaultDNSSuffix, nil
	case u.Scheme == "https" && c.profile.ManagedHSMDNSSuffix != "" &&
		strings.HasSuffix(host, "."+strings.ToLower(c.profile.ManagedHSMDNSSuffix)):
		return "https://" + c.profile.ManagedHSMDNSSuffix, nil
	}
	return "", &UserError{Msg: fmt.Sprintf("Refusing to send credentials to '%s': it is neither the pgflex endpoint nor one of its key stores.", u.Redacted())}
}

// graphHost is the host:port of an endpoint URL of the profile (Graph's, the portal's).
func graphHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

// Do sends an authenticated request to an absolute URL (or a path relative to the endpoint)
// and returns the answer whatever its status.
func (c *Client) Do(ctx context.Context, method, rawURL string, body []byte, header http.Header) (*Response, error) {
	u, err := c.endpoint.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	audience, err := c.audienceFor(u)
	if err != nil {
		return nil, err
	}
	token, err := c.Token(ctx, audience)
	if err != nil {
		return nil, err
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", "Bearer "+token)
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json")
	}
	if len(body) > 0 && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	return c.send(ctx, method, u.String(), body, h)
}

// ARMURL is the absolute URL of an ARM path with its api-version.
func (c *Client) ARMURL(path, apiVersion string) string {
	u, err := url.Parse(c.endpoint.String() + path)
	if err != nil {
		return c.endpoint.String() + path
	}
	q := u.Query()
	q.Set("api-version", apiVersion)
	u.RawQuery = q.Encode()
	return u.String()
}

// ARM sends an ARM request: body (if not nil) as JSON, api-version on the query. An error
// status returns the response together with an *ARMError.
func (c *Client) ARM(ctx context.Context, method, path, apiVersion string, body any) (*Response, error) {
	return c.call(ctx, method, c.ARMURL(path, apiVersion), body)
}

// DataPlane sends a request to a key-store URL (https://{vault}.{keyVaultDnsSuffix}:{port}/keys/...)
// with api-version set and a token for the key store's audience. Key Vault's error body has
// ARM's shape, so error statuses return an *ARMError as ARM does.
func (c *Client) DataPlane(ctx context.Context, method, rawURL, apiVersion string, body any) (*Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	q := u.Query()
	q.Set("api-version", apiVersion)
	u.RawQuery = q.Encode()
	return c.call(ctx, method, u.String(), body)
}

func (c *Client) call(ctx context.Context, method, rawURL string, body any) (*Response, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encode request body: %w", err)
		}
	}
	resp, err := c.Do(ctx, method, rawURL, data, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return resp, decodeARMError(resp.StatusCode, resp.Body)
	}
	return resp, nil
}

// ListAll GETs an ARM collection and follows nextLink until the last page.
func (c *Client) ListAll(ctx context.Context, path, apiVersion string) ([]json.RawMessage, error) {
	items := []json.RawMessage{}
	err := c.EachItem(ctx, c.ARMURL(path, apiVersion), func(it json.RawMessage) bool {
		items = append(items, it)
		return true
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// EachItem GETs an ARM collection at an absolute URL and hands each item to fn, following
// nextLink until the last page or until fn returns false (no further page is fetched then).
func (c *Client) EachItem(ctx context.Context, firstURL string, fn func(json.RawMessage) bool) error {
	seen := map[string]bool{}
	for next := firstURL; next != ""; {
		if seen[next] {
			return &UserError{Msg: fmt.Sprintf("The service returned the same nextLink twice: %s", next)}
		}
		seen[next] = true
		resp, err := c.call(ctx, http.MethodGet, next, nil)
		if err != nil {
			return err
		}
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"nextLink"`
		}
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			return &UserError{Msg: "The service answered a list request with a body that is not a list.", Err: err}
		}
		for _, it := range page.Value {
			if !fn(it) {
				return nil
			}
		}
		next = page.NextLink
	}
	return nil
}

// Wait follows a long-running operation that first (the answer to method on resourceURL)
// started, and returns the final answer: for PUT and PATCH the resource itself (GET
// resourceURL once the operation succeeded), for POST the Location result when there is one,
// for DELETE the last poll. It polls Azure-AsyncOperation when present, else Location, else a
// non-terminal properties.provisioningState in the body; it waits Retry-After between polls,
// or the client's PollInterval. A failed or canceled operation returns an *ARMError carrying
// the operation's error.
func (c *Client) Wait(ctx context.Context, method, resourceURL string, first *Response) (*Response, error) {
	async := first.Header.Get("Azure-AsyncOperation")
	location := first.Header.Get("Location")
	delay := c.retryAfter(first.Header)
	switch {
	case async != "":
		last, err := c.pollStatus(ctx, async, delay)
		if err != nil {
			return nil, err
		}
		return c.finalResult(ctx, method, resourceURL, location, last)
	case location != "" && (first.StatusCode == http.StatusCreated || first.StatusCode == http.StatusAccepted):
		last, err := c.pollLocation(ctx, location, delay)
		if err != nil {
			return nil, err
		}
		if method == http.MethodPut || method == http.MethodPatch {
			return c.call(ctx, http.MethodGet, resourceURL, nil)
		}
		return last, nil
	case first.StatusCode == http.StatusAccepted:
		return nil, &UserError{Msg: "The service accepted a long-running operation but named no URL to poll it."}
	case method != http.MethodPost && !terminalState(provisioningState(first.Body)):
		return c.pollBody(ctx, method, resourceURL, delay)
	}
	return first, nil
}

// pollStatus polls an Azure-AsyncOperation URL until the status is terminal.
func (c *Client) pollStatus(ctx context.Context, statusURL string, delay time.Duration) (*Response, error) {
	for {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		resp, err := c.call(ctx, http.MethodGet, statusURL, nil)
		if err != nil {
			return nil, err
		}
		var st struct {
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(resp.Body, &st); err != nil {
			return nil, &UserError{Msg: "The service answered an operation status request with an invalid body.", Err: err}
		}
		switch strings.ToLower(st.Status) {
		case "succeeded":
			return resp, nil
		case "failed", "canceled", "cancelled":
			return nil, operationFailed(resp)
		}
		delay = c.retryAfter(resp.Header)
	}
}

// operationFailed is the error of a failed operation: its error object, else azure-core's text.
func operationFailed(resp *Response) *ARMError {
	e := decodeARMError(resp.StatusCode, resp.Body)
	if e.Code == "" {
		e.Message = "Operation failed or canceled"
	}
	return e
}

// pollLocation polls a Location URL: 202 while running, any other success when done.
func (c *Client) pollLocation(ctx context.Context, locationURL string, delay time.Duration) (*Response, error) {
	for {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		resp, err := c.call(ctx, http.MethodGet, locationURL, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusAccepted {
			return resp, nil
		}
		delay = c.retryAfter(resp.Header)
	}
}

// pollBody GETs the resource until its provisioningState is terminal (or, for DELETE, it is gone).
func (c *Client) pollBody(ctx context.Context, method, resourceURL string, delay time.Duration) (*Response, error) {
	for {
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		resp, err := c.call(ctx, http.MethodGet, resourceURL, nil)
		if method == http.MethodDelete && resp != nil && resp.StatusCode == http.StatusNotFound {
			return resp, nil
		}
		if err != nil {
			return nil, err
		}
		state := provisioningState(resp.Body)
		switch strings.ToLower(state) {
		case "failed", "canceled", "cancelled":
			return nil, operationFailed(resp)
		}
		if terminalState(state) {
			return resp, nil
		}
		delay = c.retryAfter(resp.Header)
	}
}

// finalResult fetches what a succeeded Azure-AsyncOperation produced.
func (c *Client) finalResult(ctx context.Context, method, resourceURL, location string, last *Response) (*Response, error) {
	switch {
	case method == http.MethodPut || method == http.MethodPatch:
		return c.call(ctx, http.MethodGet, resourceURL, nil)
	case method == http.MethodPost && location != "":
		return c.call(ctx, http.MethodGet, location, nil)
	}
	return last, nil
}

func provisioningState(body []byte) string {
	var r struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	return r.Properties.ProvisioningState
}

// terminalState: an absent state counts as done, as azure-core's body polling treats it.
func terminalState(s string) bool {
	switch strings.ToLower(s) {
	case "", "succeeded", "failed", "canceled", "cancelled":
		return true
	}
	return false
}

// retryAfter reads Retry-After (seconds or an HTTP date), else the poll interval.
func (c *Client) retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return c.opts.PollInterval
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return c.opts.PollInterval
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send performs one HTTP exchange and reads the whole answer.
func (c *Client) send(ctx context.Context, method, rawURL string, body []byte, header http.Header) (*Response, error) {
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	req.Header.Set("x-ms-client-request-id", newRequestID())
	c.traceRequest(req, body)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, c.transportError(ctx, req.URL, err)
	}
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}
	c.traceResponse(r)
	return r, nil
}

// transportError explains a failed exchange in one sentence, keeping the cause for --debug.
func (c *Client) transportError(ctx context.Context, u *url.URL, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	host := u.Host
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var msg string
	switch {
	case errors.As(err, &unknownCA):
		msg = fmt.Sprintf("The TLS certificate of %s is not signed by the CA in the profile.", host)
	case errors.As(err, &hostname):
		msg = fmt.Sprintf("The TLS certificate of %s is not valid for that name: %v", host, hostname.Error())
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("Cannot connect to %s: connection refused. Is 'pgflex serve' running?", host)
	default:
		return userError(err, "The request to %s failed", host)
	}
	return &UserError{Msg: msg, Err: err}
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ---- --debug tracing, in azure-core's HttpLoggingPolicy shape ----

func (c *Client) debug(format string, args ...any) {
	c.opts.Debugf("%s", c.redact(fmt.Sprintf(format, args...)))
}

func (c *Client) traceRequest(req *http.Request, body []byte) {
	if c.opts.Debugf == nil {
		return
	}
	c.debug("Request URL: '%s'", req.URL.String())
	c.debug("Request method: '%s'", req.Method)
	c.debug("Request headers:")
	c.traceHeaders(req.Header)
	c.debug("Request body:")
	if len(body) == 0 {
		c.debug("This request has no body")
	} else {
		c.debug("%s", body)
	}
}

func (c *Client) traceResponse(r *Response) {
	if c.opts.Debugf == nil {
		return
	}
	c.debug("Response status: %d", r.StatusCode)
	c.debug("Response headers:")
	c.traceHeaders(r.Header)
	c.debug("Response content:")
	c.debug("%s", r.Body)
}

func (c *Client) traceHeaders(h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.Join(h[k], ", ")
		if strings.EqualFold(k, "Authorization") {
			v = "*****"
		}
		c.debug("    '%s': '%s'", k, v)
	}
}

// Fields masked wherever they appear in traced text, on top of the literal secrets.
var (
	sensitiveJSONField = regexp.MustCompile(`("(?:access_token|refresh_token|id_token|client_secret|clientSecret|password|administratorLoginPassword)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	sensitiveFormField = regexp.MustCompile(`((?:^|&)(?:client_secret|client_assertion|password)=)[^&\s]*`)
)

// redact masks the client secret, every token this client obtained, and secret-looking JSON
// and form fields.
func (c *Client) redact(s string) string {
	c.mu.Lock()
	secrets := append([]string(nil), c.secrets...)
	c.mu.Unlock()
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "*****")
		}
	}
	s = sensitiveJSONField.ReplaceAllString(s, `$1"*****"`)
	return sensitiveFormField.ReplaceAllString(s, `$1*****`)
}
