// Package portal serves pgflex's web console: a single-page application embedded in the binary
// that works through the same ARM and key-store APIs as the CLI, with bearer tokens it obtains
// for its signed-in session. The package owns only what a browser needs and an API client does
// not: the assets, sign-in (client secret or one-time link), the session cookie, CSRF
// protection and the tokens handed to the page.
package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
)

//go:embed web
var webFiles embed.FS

// CookieName starts the session cookie's name, which ends with the portal's port. The __Host-
// prefix makes the browser refuse the cookie unless it is Secure, has Path=/ and no Domain, so
// no other host under localhost can set or read it. Browsers do send it to other ports of the
// same host (even over plain HTTP to *.localhost), where anyone on this machine may listen:
// so the cookie alone is worth nothing. Every use of a session also needs the session's second
// secret (the CSRF token), which only the sign-in answer carries and the page keeps in its
// origin's storage, which is separate per port.
const CookieName = "__Host-pgflex-session"

// apiPrefixes are the API paths the portal's host forwards: the resource manager only, not the
// token endpoints, the managed-identity endpoint or metrics, which the page has no use for.
var apiPrefixes = []string{"/subscriptions", "/providers/", "/tenants", "/metadata/endpoints"}

const (
	maxSessionsPerPrincipal = 20
	maxLinks                = 100
)

// Tokens is what the portal needs of the token issuer.
type Tokens interface {
	SignIn(ctx context.Context, clientID, secret string) (*auth.Principal, error)
	IssueForSession(ctx context.Context, objectID, resource string) (string, time.Time, error)
	Verify(ctx context.Context, token string, audiences ...string) (auth.Claims, *auth.Principal, error)
}

// Options configure the portal.
type Options struct {
	// Origin is the portal's own origin, https://portal.localhost:8443: state-changing requests
	// must come from it, and sign-in links point at it.
	Origin string
	// API answers every path that is not the portal's own (the ARM API), so that the page
	// calls ARM on its own origin.
	API    http.Handler
	Tokens Tokens
	// Audiences are the resources the page may get tokens for, by the names it uses.
	Audiences map[string]string // "arm", "keyvault", "managedhsm", "graph" → audience
	// ARMAudience is the audience of the bearer token that asks for a sign-in link.
	ARMAudience string
	// Info is handed to the page with its session (DNS suffixes, the subscription, ...).
	Info map[string]any
	// ConnectSources are further origins the page may call (the key-store hosts).
	ConnectSources []string
	IdleTimeout    time.Duration // default 30 minutes
	MaxLifetime    time.Duration // default 12 hours
	LinkLifetime   time.Duration // default 10 minutes
	Log            *slog.Logger
	Now            func() time.Time
}

// Portal is the web console's HTTP handler.
type Portal struct {
	opt    Options
	assets http.Handler
	csp    string
	cookie string

	mu       sync.Mutex
	sessions map[string]*session  // by sha256 of the cookie value
	links    map[string]*linkCode // by sha256 of the code
}

type session struct {
	objectID, name, clientID string
	csrf                     string
	created, lastActive      time.Time
}

type linkCode struct {
	objectID, name, clientID string
	expires                  time.Time
}

// New makes the portal handler.
func New(opt Options) (*Portal, error) {
	if opt.Origin == "" || opt.API == nil || opt.Tokens == nil {
		return nil, errors.New("portal: origin, API and tokens are required")
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 30 * time.Minute
	}
	if opt.MaxLifetime <= 0 {
		opt.MaxLifetime = 12 * time.Hour
	}
	if opt.LinkLifetime <= 0 {
		opt.LinkLifetime = 10 * time.Minute
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		return nil, err
	}
	origin, err := url.Parse(opt.Origin)
	if err != nil || origin.Scheme != "https" || origin.Host == "" {
		return nil, fmt.Errorf("portal: origin %q is not an https URL", opt.Origin)
	}
	port := origin.Port()
	if port == "" {
		port = "443"
	}
	connect := append([]string{"'self'"}, opt.ConnectSources...)
	return &Portal{opt: opt, assets: http.FileServer(http.FS(sub)), cookie: CookieName + "-" + port,
		// No inline script or style anywhere: the page's code is in its own files.
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
			"connect-src " + strings.Join(connect, " ") + "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		sessions: map[string]*session{}, links: map[string]*linkCode{}}, nil
}

// ServeHTTP serves the page, its assets and /auth/*; everything else goes to the API.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/" || path == "/index.html" || strings.HasPrefix(path, "/assets/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The portal's pages are read with GET.")
			return
		}
		p.securityHeaders(w)
		if path == "/index.html" {
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
			return
		}
		if path != "/" && strings.HasSuffix(path, "/") {
			writeError(w, http.StatusNotFound, "NotFound", "The portal lists no directories.")
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		p.assets.ServeHTTP(w, r)
	case strings.HasPrefix(path, "/auth/"):
		p.securityHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		p.serveAuth(w, r)
	default:
		for _, prefix := range apiPrefixes {
			if strings.HasPrefix(path, prefix) {
				p.opt.API.ServeHTTP(w, r)
				return
			}
		}
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The portal serves no %s; the resource-manager API is at its own address.", path))
	}
}

func (p *Portal) securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (p *Portal) serveAuth(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/auth/")
	if r.Method == http.MethodPost && route != "POST links" {
		// A state change must come from the portal's own page. Browsers send Origin on every
		// POST; a cross-site form or fetch carries the other site's origin.
		if r.Header.Get("Origin") != p.opt.Origin {
			writeError(w, http.StatusForbidden, "InvalidOrigin",
				fmt.Sprintf("This request must come from the portal at %s.", p.opt.Origin))
			return
		}
	}
	switch route {
	case "GET session":
		// Not signed in is an answer, not an error: the sign-in page loads without one. The
		// cookie alone does not count: the page must also show the session's second secret.
		s := p.sessionOf(r)
		if s == nil || subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(s.csrf)) != 1 {
			arm.WriteJSON(w, http.StatusOK, map[string]any{"signedIn": false})
			return
		}
		p.writeSession(w, r, s, false)
	case "POST signin":
		var in struct{ ClientID, ClientSecret string }
		if !decodeJSON(w, r, &in) {
			return
		}
		if in.ClientID == "" || in.ClientSecret == "" {
			writeError(w, http.StatusBadRequest, "InvalidRequest", "Enter the client ID and the client secret from your pgflex profile.")
			return
		}
		pr, err := p.opt.Tokens.SignIn(r.Context(), strings.TrimSpace(in.ClientID), in.ClientSecret)
		var oe *auth.OAuthError
		if errors.As(err, &oe) {
			// Not the client id: it is the caller's text, and may be a secret typed in the wrong field.
			p.opt.Log.Warn("portal sign-in refused")
			writeError(w, http.StatusUnauthorized, "InvalidCredentials", "The client ID or the client secret is not valid. Use the values of your pgflex profile, or a sign-in link from `pgflex portal`.")
			return
		}
		if err != nil {
			p.internalError(w, "sign in", err)
			return
		}
		p.startSession(w, r, pr.ObjectID, pr.DisplayName, pr.ClientID)
	case "POST redeem":
		var in struct{ Code string }
		if !decodeJSON(w, r, &in) {
			return
		}
		l := p.takeLink(in.Code)
		if l == nil {
			writeError(w, http.StatusUnauthorized, "InvalidSignInLink", "This sign-in link is not valid: it was used already or it expired. Run `pgflex portal` for a new one.")
			return
		}
		p.startSession(w, r, l.objectID, l.name, l.clientID)
	case "POST token":
		s := p.checkedSession(w, r)
		if s == nil {
			return
		}
		var in struct {
			Resource string
			Active   bool
		}
		if !decodeJSON(w, r, &in) {
			return
		}
		aud, ok := p.opt.Audiences[in.Resource]
		if !ok {
			writeError(w, http.StatusBadRequest, "InvalidResource", fmt.Sprintf("The portal has no tokens for resource '%s'.", in.Resource))
			return
		}
		if in.Active {
			p.touch(s)
		}
		tok, exp, err := p.opt.Tokens.IssueForSession(r.Context(), s.objectID, aud)
		if err != nil {
			p.endSession(r)
			writeError(w, http.StatusUnauthorized, "SessionRequired", "Your sign-in is no longer valid. Sign in again.")
			return
		}
		arm.WriteJSON(w, http.StatusOK, map[string]any{"accessToken": tok, "expiresOn": exp.Unix()})
	case "POST activity":
		// The page's heartbeat: it says whether the user did anything lately, so that an idle
		// session expires although the page keeps polling.
		s := p.checkedSession(w, r)
		if s == nil {
			return
		}
		var in struct{ Active bool }
		if !decodeJSON(w, r, &in) {
			return
		}
		if in.Active {
			p.touch(s)
		}
		w.WriteHeader(http.StatusNoContent)
	case "POST signout":
		if s := p.checkedSession(w, r); s == nil {
			return
		}
		p.endSession(r)
		http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(http.StatusNoContent)
	case "POST links":
		p.serveLink(w, r)
	default:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The portal has no %s %s.", r.Method, r.URL.Path))
	}
}

// serveLink makes a one-time sign-in link for the caller of a bearer-authenticated request
// (`pgflex portal`). The code travels in the URL's fragment, which browsers never send to a
// server, so it reaches no access log or Referer; the page posts it to /auth/redeem.
func (p *Portal) serveLink(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeError(w, http.StatusUnauthorized, "AuthenticationFailed", "A sign-in link is given to a caller with a bearer token for the resource manager.")
		return
	}
	_, pr, err := p.opt.Tokens.Verify(r.Context(), tok, p.opt.ARMAudience)
	if err != nil || pr == nil || pr.IsIdentity() || !pr.HasSecret() {
		writeError(w, http.StatusUnauthorized, "AuthenticationFailed", "The bearer token is not valid for a portal sign-in.")
		return
	}
	code := randomString(32)
	exp := p.opt.Now().Add(p.opt.LinkLifetime)
	p.mu.Lock()
	p.expireLocked()
	if len(p.links) >= maxLinks { // the one that expires first goes
		var first string
		for k, l := range p.links {
			if first == "" || l.expires.Before(p.links[first].expires) {
				first = k
			}
		}
		delete(p.links, first)
	}
	p.links[digest(code)] = &linkCode{objectID: pr.ObjectID, name: pr.DisplayName, clientID: pr.ClientID, expires: exp}
	p.mu.Unlock()
	arm.WriteJSON(w, http.StatusOK, map[string]any{"url": p.opt.Origin + "/#signin=" + code, "expiresOn": exp.UTC().Format(time.RFC3339)})
}

func (p *Portal) takeLink(code string) *linkCode {
	if code == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked()
	k := digest(code)
	l := p.links[k]
	delete(p.links, k)
	return l
}

// startSession replaces the request's session, if any, with a new one for the principal.
func (p *Portal) startSession(w http.ResponseWriter, r *http.Request, oid, name, clientID string) {
	p.endSession(r)
	value := randomString(32)
	now := p.opt.Now()
	s := &session{objectID: oid, name: name, clientID: clientID, csrf: randomString(24), created: now, lastActive: now}
	p.mu.Lock()
	p.expireLocked()
	// A principal's sessions are bounded; its least recently active one goes first.
	var mine []string
	for k, v := range p.sessions {
		if v.objectID == oid {
			mine = append(mine, k)
		}
	}
	for len(mine) >= maxSessionsPerPrincipal {
		oldest := 0
		for i, k := range mine {
			if p.sessions[k].lastActive.Before(p.sessions[mine[oldest]].lastActive) {
				oldest = i
			}
		}
		delete(p.sessions, mine[oldest])
		mine = append(mine[:oldest], mine[oldest+1:]...)
	}
	p.sessions[digest(value)] = s
	p.mu.Unlock()
	p.opt.Log.Info("portal session started", "objectId", oid)
	http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	p.writeSession(w, r, s, true)
}

// writeSession describes the session to the page; only the answer to a sign-in carries its
// second secret.
func (p *Portal) writeSession(w http.ResponseWriter, r *http.Request, s *session, withSecret bool) {
	info := map[string]any{}
	for k, v := range p.opt.Info {
		info[k] = v
	}
	// The browser's address as the daemon sees it: the Networking blade's "Add current client
	// IP address", which a page cannot learn by itself.
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		info["clientIp"] = host
	}
	out := map[string]any{
		"signedIn":    true,
		"user":        map[string]any{"name": s.name, "objectId": s.objectID, "clientId": s.clientID},
		"idleTimeout": int(p.opt.IdleTimeout / time.Second),
		"info":        info,
	}
	if withSecret {
		out["csrfToken"] = s.csrf
	}
	arm.WriteJSON(w, http.StatusOK, out)
}

// sessionOf is the live session the request's cookie names, or nil.
func (p *Portal) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(p.cookie)
	if err != nil || c.Value == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expireLocked()
	return p.sessions[digest(c.Value)]
}

// checkedSession is the request's session if its CSRF token matches; otherwise it answers.
func (p *Portal) checkedSession(w http.ResponseWriter, r *http.Request) *session {
	s := p.sessionOf(r)
	if s == nil {
		writeError(w, http.StatusUnauthorized, "SessionRequired", "Your session ended. Sign in again.")
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(s.csrf)) != 1 {
		writeError(w, http.StatusForbidden, "InvalidCsrfToken", "The request has no valid CSRF token. Reload the portal.")
		return nil
	}
	return s
}

func (p *Portal) touch(s *session) {
	p.mu.Lock()
	s.lastActive = p.opt.Now()
	p.mu.Unlock()
}

func (p *Portal) endSession(r *http.Request) {
	if c, err := r.Cookie(p.cookie); err == nil {
		p.mu.Lock()
		delete(p.sessions, digest(c.Value))
		p.mu.Unlock()
	}
}

// expireLocked drops idle and old sessions and expired links; p.mu is held.
func (p *Portal) expireLocked() {
	now := p.opt.Now()
	for k, s := range p.sessions {
		if now.Sub(s.lastActive) > p.opt.IdleTimeout || now.Sub(s.created) > p.opt.MaxLifetime {
			delete(p.sessions, k)
		}
	}
	for k, l := range p.links {
		if now.After(l.expires) {
			delete(p.links, k)
		}
	}
}

func (p *Portal) internalError(w http.ResponseWriter, what string, err error) {
	p.opt.Log.Error("portal: "+what, "error", err)
	writeError(w, http.StatusInternalServerError, "InternalServerError", "The portal could not "+what+". See the daemon's log.")
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Send the request body as application/json.")
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	arm.WriteJSON(w, status, arm.ErrorBody{Error: &arm.Error{Code: code, Message: msg}})
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
