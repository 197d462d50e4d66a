package arm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	ObjectID string
	TenantID string
	ClientID string
	// Admin is true for the bootstrap administrator, who owns the default subscription.
	Admin bool
}

// Authenticator checks a request's bearer token for the ARM audience.
// It returns an *Error with status 401 when the token is missing or invalid.
type Authenticator func(r *http.Request) (Principal, error)

// Request is what a route handler receives.
type Request struct {
	*http.Request
	Params     map[string]string // wildcard segments of the pattern, by name
	APIVersion string
	Principal  Principal
	RequestID  string
	Log        *slog.Logger
}

// Param returns a wildcard value of the route pattern.
func (r *Request) Param(name string) string { return r.Params[name] }

// BaseURL is the scheme and host the client used, for links such as nextLink.
func (r *Request) BaseURL() string { return "https://" + r.Host }

// MaxRequestBody is ARM's limit on a request's content: 4 MB.
const MaxRequestBody = 4 << 20

// ErrRequestTooLarge is ARM's answer to a request whose content exceeds MaxRequestBody.
func ErrRequestTooLarge() *Error {
	return Errorf(http.StatusRequestEntityTooLarge, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB.")
}

// LimitBodies refuses, with ErrRequestTooLarge, a request that announces content over
// MaxRequestBody, and caps the body of every other (chunked content is refused when it reads
// past the limit): no handler reads more than the limit, whatever it does with the body.
func LimitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBody {
			w.Header().Set("Connection", "close")
			WriteJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: ErrRequestTooLarge()})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBody)
		next.ServeHTTP(w, r)
	})
}

// Decode reads the JSON body into v; a malformed body is a 400 InvalidRequestContent, one over
// MaxRequestBody a 413 RequestContentTooLarge.
func (r *Request) Decode(v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || len(body) > MaxRequestBody {
		return ErrRequestTooLarge()
	}
	if err != nil {
		return BadRequest("InvalidRequestContent", "The request content could not be read: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return BadRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return BadRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: %s.", describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at offset %d", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("cannot read %s into property '%s' of type %s", te.Value, te.Field, te.Type)
	}
	return err.Error()
}

// HandlerFunc answers one routed request.
type HandlerFunc func(w http.ResponseWriter, r *Request)

// Route is one method and path pattern. Pattern segments are literals (matched case-insensitively)
// or {name} wildcards. APIVersions lists the accepted api-version values; nil means the route
// does not take one.
type Route struct {
	Method       string
	Pattern      string
	ResourceType string // for error messages, e.g. Microsoft.KeyVault/vaults
	APIVersions  []string
	Handler      HandlerFunc
	// Public routes need no token (none in ARM; used for discovery documents).
	Public bool
	segs   []string
}

// Router dispatches ARM requests to routes.
type Router struct {
	routes []*Route
	auth   Authenticator
	log    *slog.Logger
}

// NewRouter makes a router that authenticates every non-public request with auth.
func NewRouter(auth Authenticator, log *slog.Logger) *Router {
	return &Router{auth: auth, log: log}
}

// Handle registers a route.
func (rt *Router) Handle(route Route) {
	route.segs = splitPath(route.Pattern)
	rt.routes = append(rt.routes, &route)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func (r *Route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(r.segs) {
		return nil, false
	}
	var params map[string]string
	for i, s := range r.segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s[1:len(s)-1]] = segs[i]
			continue
		}
		if !strings.EqualFold(s, segs[i]) {
			return nil, false
		}
	}
	return params, true
}

// NewRequestID returns a random GUID-shaped id.
func NewRequestID() string { return NewGUID() }

// NewGUID returns a random (version 4) GUID in lower-case canonical form.
func NewGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ServeHTTP routes the request.
func (rt *Router) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	reqID := NewRequestID()
	corr := hr.Header.Get("x-ms-correlation-request-id")
	if corr == "" {
		corr = reqID
	}
	w.Header().Set("x-ms-request-id", reqID)
	w.Header().Set("x-ms-correlation-request-id", corr)
	log := rt.log.With("request_id", reqID, "method", hr.Method, "path", hr.URL.Path)
	req := &Request{Request: hr, RequestID: reqID, Log: log}

	segs := splitPath(hr.URL.EscapedPath())
	for i, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			segs[i] = u
		}
	}
	var pathMatched []*Route
	var route *Route
	for _, r := range rt.routes {
		params, ok := r.match(segs)
		if !ok {
			continue
		}
		pathMatched = append(pathMatched, r)
		if r.Method == hr.Method {
			route = r
			req.Params = params
			break
		}
	}
	if route == nil {
		if len(pathMatched) > 0 {
			WriteError(w, req, Errorf(http.StatusMethodNotAllowed, "MethodNotAllowed",
				"The requested resource does not support http method '%s'.", hr.Method))
			return
		}
		WriteError(w, req, Errorf(http.StatusNotFound, "NotFound",
			"No HTTP resource was found that matches the request URI '%s'.", hr.URL.Path))
		return
	}
	if !route.Public {
		p, err := rt.auth(hr)
		if err != nil {
			if ae := AsError(err); ae != nil && ae.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s", error="invalid_token", error_description="%s"`,
					req.BaseURL(), strings.ReplaceAll(ae.Message, `"`, `'`)))
			}
			WriteError(w, req, err)
			return
		}
		req.Principal = p
		req.Log = log.With("caller", p.ObjectID)
	}
	if route.APIVersions != nil {
		v := hr.URL.Query().Get("api-version")
		if err := checkAPIVersion(route, v); err != nil {
			WriteError(w, req, err)
			return
		}
		req.APIVersion = v
	}
	route.Handler(w, req)
}

func checkAPIVersion(route *Route, v string) error {
	if v == "" {
		return BadRequest("MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	if slices.Contains(route.APIVersions, v) {
		return nil
	}
	list := strings.Join(route.APIVersions, ", ")
	if strings.HasPrefix(strings.ToLower(route.ResourceType), "microsoft.resources/") {
		return BadRequest("InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", v, list)
	}
	return BadRequest("NoRegisteredProviderFound",
		"No registered resource provider found for API version '%s' and type '%s'. The supported api-versions are '%s'.",
		v, route.ResourceType, list)
}

// WriteJSON writes v as the JSON response body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v == nil {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError writes err in ARM's error shape. Errors that are not *Error are logged and
// answered as a generic 500, so that internal detail (and anything secret in it) stays inside.
func WriteError(w http.ResponseWriter, r *Request, err error) {
	ae := AsError(err)
	if ae == nil {
		if errors.Is(err, context.Canceled) {
			ae = Errorf(499, "RequestCanceled", "The request was canceled.")
		} else {
			r.Log.Error("internal error", "err", err)
			ae = Errorf(http.StatusInternalServerError, "InternalServerError",
				"The server encountered an internal error. Please retry the request. Request id: %s.", r.RequestID)
		}
	}
	status := ae.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	WriteJSON(w, status, ErrorBody{Error: ae})
}
