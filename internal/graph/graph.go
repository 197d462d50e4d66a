// Package graph is the part of Microsoft Graph that Azure's tools call for the signed-in
// principal: GET /v1.0/me (which Graph refuses for an application's token, so that az falls
// back) and the service-principal lookups az then makes (servicePrincipals with $filter, and by
// id). It is served on its own host (graph.localhost by default), routed by Host header, and
// takes tokens for its own audience: the cloud's microsoftGraphResourceId.
package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

// Service answers Graph requests.
type Service struct {
	issuer *auth.Issuer
	st     store.Store
	// base is https://{graph host}:{port}, the audience of Graph tokens and the root of
	// @odata.context links.
	base string
	log  *slog.Logger
}

// New makes the Graph service; base is the Graph resource without a trailing slash.
func New(issuer *auth.Issuer, st store.Store, base string, log *slog.Logger) *Service {
	return &Service{issuer: issuer, st: st, base: strings.TrimRight(base, "/"), log: log}
}

// Error is a Graph error: {"error":{"code","message","innerError":{...}}}.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The refusals whose texts Graph's clients know.
var (
	errMeAppOnly     = errorf(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
	errDenied        = errorf(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	errTokenEmpty    = errorf(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	errTokenCompact  = errorf(http.StatusUnauthorized, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217")
	errTokenAudience = errorf(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	errTokenExpired  = errorf(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	errTokenInvalid  = errorf(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
)

// caller is an authenticated request's principal.
type caller struct {
	p *auth.Principal
	c auth.Claims
}

// ServeHTTP routes a Graph request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := arm.NewGUID()
	clientReqID := r.Header.Get("client-request-id")
	if clientReqID == "" {
		clientReqID = reqID
	}
	w.Header().Set("request-id", reqID)
	w.Header().Set("client-request-id", clientReqID)
	fail := func(err error) {
		var ge *Error
		if !errors.As(err, &ge) {
			s.log.Error("graph request failed", "path", r.URL.Path, "request_id", reqID, "err", err)
			ge = errorf(http.StatusInternalServerError, "generalException", "An internal error occurred. Request id: %s.", reqID)
		}
		if ge.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s", client_id="%s"`,
				s.issuer.AuthorizeEndpoint(), s.base))
		}
		writeJSON(w, ge.Status, map[string]any{"error": map[string]any{"code": ge.Code, "message": ge.Message,
			"innerError": map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID, "client-request-id": clientReqID}}})
	}
	cl, err := s.authenticate(r)
	if err != nil {
		fail(err)
		return
	}
	v, err := s.route(r, cl)
	if err != nil {
		fail(err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) authenticate(r *http.Request) (*caller, error) {
	tok, present := auth.BearerToken(r)
	if !present || tok == "" {
		return nil, errTokenEmpty
	}
	c, p, err := s.issuer.Verify(r.Context(), tok, s.base)
	switch {
	case errors.Is(err, auth.ErrMalformed):
		return nil, errTokenCompact
	case errors.Is(err, auth.ErrWrongAudience):
		return nil, errTokenAudience
	case errors.Is(err, auth.ErrExpired):
		return nil, errTokenExpired
	case errors.Is(err, auth.ErrSignature), errors.Is(err, auth.ErrWrongIssuer), errors.Is(err, auth.ErrNotYetValid),
		errors.Is(err, auth.ErrUnknownPrincipal):
		return nil, errTokenInvalid
	case err != nil:
		return nil, err
	}
	return &caller{p: p, c: c}, nil
}

func (s *Service) route(r *http.Request, cl *caller) (any, error) {
	path := strings.Trim(r.URL.EscapedPath(), "/")
	segs := strings.Split(path, "/")
	if segs[0] != "v1.0" && segs[0] != "beta" {
		return nil, errorf(http.StatusBadRequest, "BadRequest", "Invalid version: %s", segs[0])
	}
	version := segs[0]
	if len(segs) < 2 || segs[1] == "" {
		return nil, errorf(http.StatusBadRequest, "BadRequest", "Resource not found for the segment ''.")
	}
	if r.Method != http.MethodGet {
		return nil, errorf(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
	}
	if err := checkQueryOptions(r); err != nil {
		return nil, err
	}
	res := segs[1]
	switch {
	case strings.EqualFold(res, "me") && len(segs) == 2:
		// Every pgflex token is an application's (client credentials or managed identity).
		return nil, errMeAppOnly
	case strings.EqualFold(res, "servicePrincipals") && len(segs) == 2:
		return s.listServicePrincipals(r.Context(), cl, version, r.URL.Query().Get("$filter"))
	case strings.EqualFold(res, "servicePrincipals") && len(segs) == 3:
		return s.getServicePrincipal(r.Context(), cl, version, func(p *auth.Principal) bool { return strings.EqualFold(p.ObjectID, segs[2]) }, segs[2])
	case len(segs) == 2 && hasPrefixFold(res, "servicePrincipals(appId="):
		// servicePrincipals(appId='{appId}')
		inner := res[len("servicePrincipals(appId="):]
		appID, ok := strings.CutSuffix(inner, ")")
		if !ok || len(appID) < 2 || appID[0] != '\'' || appID[len(appID)-1] != '\'' {
			return nil, errorf(http.StatusBadRequest, "BadRequest", "Bad request. Please fix the request before retrying.")
		}
		appID = appID[1 : len(appID)-1]
		return s.getServicePrincipal(r.Context(), cl, version, func(p *auth.Principal) bool { return strings.EqualFold(p.ClientID, appID) }, appID)
	}
	return nil, errorf(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", res)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// checkQueryOptions refuses OData options pgflex's Graph does not implement, rather than
// ignoring them and answering something else than was asked.
func checkQueryOptions(r *http.Request) error {
	for k := range r.URL.Query() {
		if strings.HasPrefix(k, "$") && k != "$filter" {
			return errorf(http.StatusBadRequest, "BadRequest", "Query option '%s' is not supported.", k)
		}
	}
	return nil
}

func (s *Service) principals(ctx context.Context) ([]*auth.Principal, error) {
	var ps []*auth.Principal
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		ps, err = auth.ListPrincipals(tx)
		return err
	})
	return ps, err
}

// visible enforces Graph's default: an application without directory permissions reads
// nothing of the directory but itself; the administrator reads everything.
func visible(cl *caller, p *auth.Principal) bool {
	return cl.p.Admin || strings.EqualFold(p.ObjectID, cl.p.ObjectID)
}

func (s *Service) listServicePrincipals(ctx context.Context, cl *caller, version, filter string) (any, error) {
	match := func(*auth.Principal) bool { return true }
	if filter != "" {
		var err error
		if match, err = parseFilter(filter); err != nil {
			return nil, err
		}
	} else if !cl.p.Admin {
		return nil, errDenied
	}
	ps, err := s.principals(ctx)
	if err != nil {
		return nil, err
	}
	// What the caller may not read is left out, never refused: a refusal would tell that
	// something matched (an oracle, one startswith at a time).
	var hits []*auth.Principal
	for _, p := range ps {
		if visible(cl, p) && match(p) {
			hits = append(hits, p)
		}
	}
	value := make([]map[string]any, 0, len(hits))
	for _, p := range hits {
		value = append(value, s.ServicePrincipal(p))
	}
	return map[string]any{"@odata.context": s.base + "/" + version + "/$metadata#servicePrincipals", "value": value}, nil
}

func (s *Service) getServicePrincipal(ctx context.Context, cl *caller, version string, match func(*auth.Principal) bool, key string) (any, error) {
	ps, err := s.principals(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if visible(cl, p) && match(p) {
			out := map[string]any{"@odata.context": s.base + "/" + version + "/$metadata#servicePrincipals/$entity"}
			for k, v := range s.ServicePrincipal(p) {
				out[k] = v
			}
			return out, nil
		}
	}
	if !cl.p.Admin {
		return nil, errDenied // not even whether it exists
	}
	return nil, errorf(http.StatusNotFound, "Request_ResourceNotFound",
		"Resource '%s' does not exist or one of its queried reference-property objects are not present.", key)
}

// ServicePrincipal is a principal in Graph v1.0's servicePrincipal shape.
func (s *Service) ServicePrincipal(p *auth.Principal) map[string]any {
	return ServicePrincipal(p)
}

// ServicePrincipal is a principal in Graph v1.0's servicePrincipal shape: an application's
// service principal, or a managed identity's (servicePrincipalType ManagedIdentity, its
// resource id among alternativeNames).
func ServicePrincipal(p *auth.Principal) map[string]any {
	spType, names, alt := "Application", []string{p.ClientID}, []string{}
	owner := any(p.TenantID)
	if p.IsIdentity() {
		spType, owner = "ManagedIdentity", nil
		if p.ResourceID != "" {
			names = append(names, p.ResourceID)
			alt = []string{"isExplicit=True", p.ResourceID}
		}
	}
	var created any
	if !p.Created.IsZero() {
		created = p.Created.UTC().Format(time.RFC3339)
	}
	return map[string]any{
		"id":                                     p.ObjectID,
		"deletedDateTime":                        nil,
		"accountEnabled":                         true,
		"alternativeNames":                       alt,
		"appDisplayName":                         p.DisplayName,
		"appDescription":                         nil,
		"appId":                                  p.ClientID,
		"applicationTemplateId":                  nil,
		"appOwnerOrganizationId":                 owner,
		"appRoleAssignmentRequired":              false,
		"createdDateTime":                        created,
		"description":                            nil,
		"disabledByMicrosoftStatus":              nil,
		"displayName":                            p.DisplayName,
		"homepage":                               nil,
		"loginUrl":                               nil,
		"logoutUrl":                              nil,
		"notes":                                  nil,
		"notificationEmailAddresses":             []string{},
		"preferredSingleSignOnMode":              nil,
		"preferredTokenSigningKeyThumbprint":     nil,
		"replyUrls":                              []string{},
		"servicePrincipalNames":                  names,
		"servicePrincipalType":                   spType,
		"signInAudience":                         "AzureADMyOrg",
		"tags":                                   []string{},
		"tokenEncryptionKeyId":                   nil,
		"samlSingleSignOnSettings":               nil,
		"addIns":                                 []any{},
		"appRoles":                               []any{},
		"info":                                   map[string]any{"logoUrl": nil, "marketingUrl": nil, "privacyStatementUrl": nil, "supportUrl": nil, "termsOfServiceUrl": nil},
		"keyCredentials":                         []any{},
		"oauth2PermissionScopes":                 []any{},
		"passwordCredentials":                    []any{},
		"resourceSpecificApplicationPermissions": []any{},
		"verifiedPublisher":                      map[string]any{"displayName": nil, "verifiedPublisherId": nil, "addedDateTime": nil},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
