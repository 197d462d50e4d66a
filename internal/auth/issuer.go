package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// TokenLifetime is how long an issued token is valid, as Entra ID's default.
const TokenLifetime = time.Hour

// Audiences are the token audiences pgflex serves.
type Audiences struct {
	ARM        string // https://management.azure.com
	KeyVault   string // https://{keyVaultDnsSuffix}, a parent domain of every vault host
	ManagedHSM string // https://{managedHsmDnsSuffix}
	// Graph is Microsoft Graph's resource, https://{graph host}:{port}: the cloud's
	// microsoftGraphResourceId without its trailing slash.
	Graph string
}

// armAliases are the ARM audiences Azure accepts; all map to Audiences.ARM.
var armAliases = []string{"https://management.azure.com", "https://management.core.windows.net"}

// Resolve maps a requested scope (".../.default") or v1 resource to the audience it names.
func (a Audiences) Resolve(scope string) (string, bool) {
	s := strings.TrimSuffix(strings.TrimSpace(scope), "/.default")
	s = strings.TrimRight(s, "/")
	for _, alias := range armAliases {
		if strings.EqualFold(s, alias) {
			return a.ARM, true
		}
	}
	for _, aud := range []string{a.ARM, a.KeyVault, a.ManagedHSM, a.Graph} {
		if aud != "" && strings.EqualFold(s, aud) {
			return aud, true
		}
	}
	// A key store's bearer challenge names its resource with the daemon's port (azkeys checks
	// that the resource's host:port is a parent domain of the vault's), so a scope with a
	// port names the key-store audience too.
	if scheme, hostPort, ok := strings.Cut(s, "://"); ok {
		if i := strings.LastIndexByte(hostPort, ':'); i > 0 && !strings.Contains(hostPort[i:], "/") {
			bare := scheme + "://" + hostPort[:i]
			for _, aud := range []string{a.KeyVault, a.ManagedHSM} {
				if aud != "" && strings.EqualFold(bare, aud) {
					return aud, true
				}
			}
		}
	}
	return "", false
}

// Issuer issues and verifies tokens.
type Issuer struct {
	key      *rsa.PrivateKey
	kid      string
	issuer   string
	endpoint string
	tenantID string
	st       store.Store
	aud      Audiences
	now      func() time.Time
}

// NewIssuer makes the issuer. endpoint is the daemon's base URL (https://127.0.0.1:8443); the
// token issuer URL is {endpoint}/{tenant}/v2.0.
func NewIssuer(key *rsa.PrivateKey, endpoint, tenantID string, st store.Store, aud Audiences) *Issuer {
	return &Issuer{key: key, kid: keyID(&key.PublicKey), issuer: endpoint + "/" + tenantID + "/v2.0",
		endpoint: endpoint, tenantID: tenantID, st: st, aud: aud, now: time.Now}
}

// Audiences returns the audiences this issuer serves.
func (i *Issuer) Audiences() Audiences { return i.aud }

// TenantID is the directory's tenant.
func (i *Issuer) TenantID() string { return i.tenantID }

// TokenEndpoint is the OAuth token URL clients use.
func (i *Issuer) TokenEndpoint() string { return i.endpoint + "/" + i.tenantID + "/oauth2/v2.0/token" }

func (i *Issuer) sign(p *Principal, audience string) (string, time.Time, error) {
	return i.signFor(p, audience, TokenLifetime)
}

func (i *Issuer) signFor(p *Principal, audience string, lifetime time.Duration) (string, time.Time, error) {
	now := i.now().UTC()
	exp := now.Add(lifetime)
	c := Claims{Issuer: i.issuer, Subject: p.ObjectID, Audience: audience, IssuedAt: now.Unix(),
		NotBefore: now.Unix(), Expiry: exp.Unix(), ObjectID: p.ObjectID, TenantID: p.TenantID,
		AppID: p.ClientID, IDType: "app", ManagedIdentityID: p.ResourceID, TokenID: arm.NewGUID(), Version: "2.0"}
	tok, err := SignJWT(i.key, i.kid, c)
	return tok, exp, err
}

// OAuthError is a token-endpoint refusal in OAuth's shape.
type OAuthError struct {
	Status      int
	Code        string // invalid_client, invalid_scope, unsupported_grant_type, invalid_request
	Description string
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// IssueClientCredentials is the client-credentials grant: a principal with a secret gets a token
// for the audience its scope names.
func (i *Issuer) IssueClientCredentials(ctx context.Context, clientID, secret, scope string) (string, time.Time, error) {
	aud, ok := i.aud.Resolve(scope)
	if !ok {
		return "", time.Time{}, &OAuthError{http.StatusBadRequest, "invalid_scope",
			fmt.Sprintf("AADSTS70011: The provided request must include a 'scope' input parameter naming a known resource. The provided value for the input parameter 'scope' is not valid: '%s'.", scope)}
	}
	p, err := i.lookup(ctx, GetPrincipalByClientID, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return "", time.Time{}, &OAuthError{http.StatusBadRequest, "unauthorized_client",
			fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, i.tenantID)}
	}
	if err != nil {
		return "", time.Time{}, err
	}
	// Managed identities have no secret, so nobody outside pgflex can get their tokens here.
	if !p.checkSecret(secret) {
		return "", time.Time{}, &OAuthError{http.StatusUnauthorized, "invalid_client",
			fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
	}
	return i.sign(p, aud)
}

// IssueForIdentity issues a key-store token for a managed identity. It is an in-process call for
// pgflex's data plane only: no HTTP route reaches it. The caller is responsible for checking that
// the identity is assigned to the server it acts for.
func (i *Issuer) IssueForIdentity(ctx context.Context, objectID, audience string) (string, time.Time, error) {
	if audience != i.aud.KeyVault && audience != i.aud.ManagedHSM {
		return "", time.Time{}, fmt.Errorf("managed identity tokens are only issued for the key store, not for %q", audience)
	}
	p, err := i.lookup(ctx, GetPrincipal, objectID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("managed identity principal %s: %w", objectID, err)
	}
	if !p.IsIdentity() {
		return "", time.Time{}, fmt.Errorf("principal %s is not a managed identity", objectID)
	}
	return i.sign(p, audience)
}

// Verify checks a token for one of the audiences and that its principal still exists.
func (i *Issuer) Verify(ctx context.Context, token string, audiences ...string) (Claims, *Principal, error) {
	c, err := verifyJWT(token, map[string]*rsa.PublicKey{i.kid: &i.key.PublicKey}, i.now())
	if err != nil {
		return c, nil, err
	}
	if c.Issuer != i.issuer {
		return c, nil, ErrWrongIssuer
	}
	okAud := false
	for _, a := range audiences {
		if strings.EqualFold(strings.TrimRight(c.Audience, "/"), strings.TrimRight(a, "/")) {
			okAud = true
		}
	}
	if !okAud {
		return c, nil, ErrWrongAudience
	}
	var p *Principal
	err = i.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = GetPrincipal(tx, c.ObjectID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return c, nil, ErrUnknownPrincipal
	}
	if err != nil {
		return c, nil, err
	}
	return c, p, nil
}

// More verification failures.
var (
	ErrWrongIssuer      = errors.New("the token was issued by another issuer")
	ErrWrongAudience    = errors.New("the token was issued for another audience")
	ErrUnknownPrincipal = errors.New("the token's principal no longer exists")
)

// BearerToken extracts the token of an "Authorization: Bearer ..." header. present is false
// when the header is absent; token is empty when it is present but not a bearer token.
func BearerToken(r *http.Request) (token string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", true
	}
	return strings.TrimSpace(h[7:]), true
}

// ARMAuthenticator authenticates ARM requests: a valid token for the ARM audience, from a
// principal allowed to manage resources (the administrator).
func (i *Issuer) ARMAuthenticator() arm.Authenticator {
	return func(r *http.Request) (arm.Principal, error) {
		tok, present := BearerToken(r)
		if !present {
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "AuthenticationFailed",
				"Authentication failed. The 'Authorization' header is missing.")
		}
		if tok == "" {
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "AuthenticationFailed",
				"Authentication failed. The 'Authorization' header is provided in an invalid format.")
		}
		c, p, err := i.Verify(r.Context(), tok, i.aud.ARM)
		switch {
		case errors.Is(err, ErrExpired):
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "ExpiredAuthenticationToken",
				"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
				time.Unix(c.Expiry, 0).UTC().Format(time.RFC1123), i.now().UTC().Format(time.RFC1123))
		case errors.Is(err, ErrWrongAudience):
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience",
				"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s','%s/'.",
				c.Audience, i.aud.ARM, i.aud.ARM)
		case errors.Is(err, ErrWrongIssuer):
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "InvalidAuthenticationTokenTenant",
				"The access token is from the wrong issuer '%s'. It must match the tenant '%s' associated with this subscription.", c.Issuer, i.tenantID)
		case err != nil && (errors.Is(err, ErrMalformed) || errors.Is(err, ErrSignature) || errors.Is(err, ErrNotYetValid) || errors.Is(err, ErrUnknownPrincipal)):
			return arm.Principal{}, arm.Errorf(http.StatusUnauthorized, "InvalidAuthenticationToken",
				"The access token is invalid.")
		case err != nil:
			return arm.Principal{}, err
		}
		ap := arm.Principal{ObjectID: p.ObjectID, TenantID: p.TenantID, ClientID: p.ClientID, Admin: p.Admin}
		if !p.Admin {
			return ap, arm.Errorf(http.StatusForbidden, "AuthorizationFailed",
				"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
				p.ClientID, p.ObjectID, r.Method, r.URL.Path)
		}
		return ap, nil
	}
}

// SignIn checks a principal's client id and secret, as the token endpoint's client-credentials
// grant does, for sign-ins that hold a session instead of a token (the portal). Managed
// identities have no secret and cannot sign in.
func (i *Issuer) SignIn(ctx context.Context, clientID, secret string) (*Principal, error) {
	p, err := i.lookup(ctx, GetPrincipalByClientID, clientID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.checkSecret(secret)) {
		return nil, &OAuthError{http.StatusUnauthorized, "invalid_client",
			"AADSTS7000215: The application ID or the client secret is not valid. Sign in with the clientId and clientSecret of your pgflex profile."}
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// lookup reads a principal with find (GetPrincipal by object id, GetPrincipalByClientID).
func (i *Issuer) lookup(ctx context.Context, find func(store.Tx, string) (*Principal, error), id string) (*Principal, error) {
	var p *Principal
	err := i.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = find(tx, id)
		return err
	})
	return p, err
}

// resolveResource is the audience a v1 resource parameter names, or Entra ID's refusal.
func (i *Issuer) resolveResource(resource string) (string, error) {
	aud, ok := i.aud.Resolve(resource)
	if !ok {
		return "", &OAuthError{http.StatusBadRequest, "invalid_resource",
			fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, i.tenantID)}
	}
	return aud, nil
}

// SessionTokenLifetime is how long a session's token lives: short, so that a session that ends
// (sign-out, idle expiry) leaves no token valid for long.
const SessionTokenLifetime = 5 * time.Minute

// IssueForSession issues a token for the audience resource names to a principal that signed in
// earlier (SignIn) and holds a session: the portal's browser calls the same APIs as the CLI.
// The principal must still exist and still have a secret, so deleting it ends its sessions.
func (i *Issuer) IssueForSession(ctx context.Context, objectID, resource string) (string, time.Time, error) {
	aud, err := i.resolveResource(resource)
	if err != nil {
		return "", time.Time{}, err
	}
	p, err := i.lookup(ctx, GetPrincipal, objectID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signed-in principal %s: %w", objectID, err)
	}
	if p.IsIdentity() || !p.HasSecret() {
		return "", time.Time{}, fmt.Errorf("principal %s cannot hold a session", objectID)
	}
	return i.signFor(p, aud, SessionTokenLifetime)
}
