package auth

import (
	"encoding/json"
	"errors"
	"net/http"
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

// RegisterRoutes adds the OpenID discovery document, the JWKS and the token endpoints to mux.
func (i *Issuer) RegisterRoutes(mux *http.ServeMux) {
	discovery := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                i.issuer,
			"token_endpoint":                        i.TokenEndpoint(),
			"jwks_uri":                              i.endpoint + "/" + i.tenantID + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
			"grant_types_supported":                 []string{"client_credentials"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"token"},
			"subject_types_supported":               []string{"pairwise"},
			"tenant_region_scope":                   "pgflex",
		})
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", discovery)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", i.tenantOnly(discovery))
	keys := func(w http.ResponseWriter, r *http.Request) {
		pub := &i.key.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{{Kty: "RSA", Use: "sig", Kid: i.kid, Alg: "RS256",
			N: b64.EncodeToString(pub.N.Bytes()), E: b64.EncodeToString(bigEndian(pub.E))}}})
	}
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", i.tenantOnly(keys))
	mux.HandleFunc("GET /discovery/keys", keys)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", i.tenantOnly(i.tokenHandler(false)))
	mux.HandleFunc("POST /{tenant}/oauth2/token", i.tenantOnly(i.tokenHandler(true)))
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

// tokenHandler serves the client-credentials grant; v1 names the audience with "resource",
// v2 with "scope".
func (i *Issuer) tokenHandler(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must be application/x-www-form-urlencoded."})
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "unsupported_grant_type",
				"AADSTS70003: The app requested an unsupported grant type '" + gt + "'. pgflex supports client_credentials."})
			return
		}
		clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if clientID == "" {
			writeOAuthError(w, &OAuthError{http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'."})
			return
		}
		scope := r.PostForm.Get("scope")
		if v1 {
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
		if v1 {
			body["expires_on"] = exp.Unix()
			body["resource"] = scope
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, body)
	}
}

func writeOAuthError(w http.ResponseWriter, e *OAuthError) {
	writeJSON(w, e.Status, map[string]any{"error": e.Code, "error_description": e.Description,
		"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": arm.NewGUID(), "correlation_id": arm.NewGUID()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
