package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/arm"
)

type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// ADFSPath is the authority path Azure's tools treat as ADFS: MSAL skips Microsoft's online
// instance discovery only for an authority ending in /adfs, and then reads
// {authority}/.well-known/openid-configuration. The cloud's activeDirectory endpoint is
// {endpoint}/adfs.
const ADFSPath = "/adfs"

// tokenForm says which parameter of a token request names the audience.
type tokenForm int

const (
	formV2   tokenForm = iota // scope (Entra ID's v2 endpoint)
	formV1                    // resource (v1)
	formADFS                  // scope, else resource, as ADFS 2019 takes either
)

// RegisterRoutes adds the OpenID discovery documents, the JWKS, the token endpoints and the
// authorization endpoints (which refuse: there is no interactive sign-in) to mux.
func (i *Issuer) RegisterRoutes(mux *http.ServeMux) {
	// One document per authority, each naming its own endpoints.
	discovery := func(authorize, token, jwks string) map[string]any {
		return map[string]any{
			"issuer":                                i.issuer,
			"authorization_endpoint":                authorize,
			"token_endpoint":                        token,
			"jwks_uri":                              jwks,
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
			"grant_types_supported":                 []string{"client_credentials"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"token"},
			"subject_types_supported":               []string{"pairwise"},
			"tenant_region_scope":                   "pgflex",
		}
	}
	tenantBase := i.endpoint + "/" + i.tenantID
	v2Doc := discovery(tenantBase+"/oauth2/v2.0/authorize", i.TokenEndpoint(), tenantBase+"/discovery/v2.0/keys")
	v1Doc := discovery(tenantBase+"/oauth2/authorize", tenantBase+"/oauth2/token", i.endpoint+"/discovery/keys")
	adfsDoc := discovery(i.endpoint+ADFSPath+"/oauth2/authorize", i.ADFSTokenEndpoint(), i.endpoint+ADFSPath+"/discovery/keys")
	// ADFS names the issuer of its access tokens apart from its own; here both are the
	// tenant's issuer, which is what every API verifies.
	adfsDoc["access_token_issuer"] = i.issuer
	adfsDoc["scopes_supported"] = []string{"openid"}
	serve := func(doc map[string]any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, doc) }
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", serve(v2Doc))
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", i.tenantOnly(serve(v2Doc)))
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", i.tenantOnly(serve(v1Doc)))
	mux.HandleFunc("GET "+ADFSPath+"/.well-known/openid-configuration", serve(adfsDoc))

	keys := func(w http.ResponseWriter, r *http.Request) {
		pub := &i.key.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{{Kty: "RSA", Use: "sig", Kid: i.kid, Alg: "RS256",
			N: b64.EncodeToString(pub.N.Bytes()), E: b64.EncodeToString(bigEndian(pub.E))}}})
	}
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", i.tenantOnly(keys))
	mux.HandleFunc("GET /discovery/keys", keys)
	mux.HandleFunc("GET "+ADFSPath+"/discovery/keys", keys)

	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", i.tenantOnly(i.tokenHandler(formV2)))
	mux.HandleFunc("POST /{tenant}/oauth2/token", i.tenantOnly(i.tokenHandler(formV1)))
	mux.HandleFunc("POST "+ADFSPath+"/oauth2/token", i.tokenHandler(formADFS))

	mux.HandleFunc("/{tenant}/oauth2/v2.0/authorize", i.tenantOnly(refuseAuthorize))
	mux.HandleFunc("/{tenant}/oauth2/authorize", i.tenantOnly(refuseAuthorize))
	mux.HandleFunc(ADFSPath+"/oauth2/authorize", refuseAuthorize)
}

// ADFSTokenEndpoint is the token URL of the ADFS-style authority Azure's CLI signs in at.
func (i *Issuer) ADFSTokenEndpoint() string { return i.endpoint + ADFSPath + "/oauth2/token" }

// ErrInteractiveSignIn is the authorization endpoints' answer: pgflex has no users, so no
// interactive or device-code sign-in. It is not a redirect (an error redirect to a
// caller-named URI would make pgflex an open redirector).
var ErrInteractiveSignIn = &OAuthError{http.StatusBadRequest, "unsupported_response_type",
	"AADSTS700054: Interactive sign-in is not available: pgflex has no user accounts. Sign in with the client credentials grant as a service principal (az login --service-principal), or as the administrator's managed identity (az login --identity)."}

func refuseAuthorize(w http.ResponseWriter, r *http.Request) {
	writeOAuthError(w, ErrInteractiveSignIn)
}

func (i *Issuer) tenantOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if t := r.PathValue("tenant"); !strings.EqualFold(t, i.tenantID) {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_tenant",
				"AADSTS90002: Tenant '" + t + "' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."})
			return
		}
		h(w, r)
	}
}

// tokenHandler serves the client-credentials grant.
func (i *Issuer) tokenHandler(form tokenForm) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must be application/x-www-form-urlencoded."})
			return
		}
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "client_credentials":
		case "":
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."})
			return
		default:
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "unsupported_grant_type",
				"AADSTS70003: The app requested an unsupported grant type '" + gt + "'. pgflex supports client_credentials."})
			return
		}
		clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if clientID == "" {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'."})
			return
		}
		if secret == "" {
			if r.PostForm.Get("client_assertion") != "" {
				writeOAuthError(w, &OAuthError{http.StatusUnauthorized, "invalid_client",
					"AADSTS700027: Client assertion failed signature validation: no certificate is registered for application '" + clientID + "'. pgflex's service principals sign in with a client secret."})
				return
			}
			writeOAuthError(w, &OAuthError{http.StatusUnauthorized, "invalid_client",
				"AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."})
			return
		}
		scope := r.PostForm.Get("scope")
		switch {
		case form == formV1, form == formADFS && scope == "":
			scope = r.PostForm.Get("resource")
		}
		tok, exp, err := i.IssueClientCredentials(r.Context(), clientID, secret, scope)
		var oe *OAuthError
		if errors.As(err, &oe) {
			writeOAuthError(w, oe)
			return
		}
		if err != nil {
			writeOAuthError(w, &OAuthError{http.StatusInternalServerError, "server_error", "AADSTS90000: The token could not be issued."})
			return
		}
		secs := int64(time.Until(exp).Seconds())
		body := map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok}
		if form == formV1 {
			body["expires_on"] = exp.Unix()
			body["resource"] = scope
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, body)
	}
}

var aadstsCode = regexp.MustCompile(`^AADSTS(\d+):`)

// writeOAuthError answers in Entra ID's token-error shape; error_codes repeats the AADSTS number
// of the description, as Entra ID does.
func writeOAuthError(w http.ResponseWriter, e *OAuthError) {
	body := map[string]any{"error": e.Code, "error_description": e.Description,
		"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": arm.NewGUID(), "correlation_id": arm.NewGUID()}
	if m := aadstsCode.FindStringSubmatch(e.Description); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			body["error_codes"] = []int{n}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// AuthorizeEndpoint is the tenant's (refusing) authorization URL, which Graph and ARM name in
// their bearer challenges.
func (i *Issuer) AuthorizeEndpoint() string {
	return i.endpoint + "/" + i.tenantID + "/oauth2/v2.0/authorize"
}
