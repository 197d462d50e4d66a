package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/store"
)

// kvError is a Key Vault data-plane error: {"error":{"code","message","innererror":{"code"}}}.
type kvError struct {
	Status  int
	Code    string
	Message string
	Inner   string
}

func (e *kvError) Error() string { return e.Code + ": " + e.Message }

func (e *kvError) body() map[string]any {
	b := map[string]any{"code": e.Code, "message": e.Message}
	if e.Inner != "" {
		b["innererror"] = map[string]any{"code": e.Inner}
	}
	return map[string]any{"error": b}
}

func badParameter(format string, args ...any) *kvError {
	return &kvError{Status: http.StatusBadRequest, Code: "BadParameter", Message: fmt.Sprintf(format, args...)}
}

func keyNotFound(name, version string) *kvError {
	id := name
	if version != "" {
		id += "/" + version
	}
	return &kvError{Status: http.StatusNotFound, Code: "KeyNotFound",
		Message: fmt.Sprintf("A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id)}
}

func deletedKeyNotFound(name string) *kvError {
	return &kvError{Status: http.StatusNotFound, Code: "KeyNotFound", Message: "Deleted Key not found: " + name}
}

func keyIsDeleted(name string) *kvError {
	return &kvError{Status: http.StatusConflict, Code: "Conflict", Inner: "ObjectIsDeletedButRecoverable",
		Message: fmt.Sprintf("Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", name)}
}

func notSupported(what string) *kvError {
	return &kvError{Status: http.StatusNotImplemented, Code: "NotSupported",
		Message: fmt.Sprintf("The operation '%s' is not supported by pgflex's key store.", what)}
}

// serviceVaultName is the internal vault that holds the service-managed keys. Its name has
// consecutive hyphens, which vault names may not have, so no user can create it.
const serviceVaultName = "pgflex--service"

// kvRequest is one data-plane request after the vault and the caller are known.
type kvRequest struct {
	*http.Request
	vault  *Vault
	caller caller
	log    *slog.Logger
	// what the audit records
	op      keyOp
	keyName string
	version string
	scope   string // of a Managed HSM role-management operation
	// api is the request's api-version: what the response carries.
	api dataPlaneVersion
}

// auditKey is what the audit trail names as the object of the request: the key, or for a
// Managed HSM role-management operation its scope.
func (r *kvRequest) auditKey() string {
	if r.keyName == "" && r.scope != "" {
		return r.scope
	}
	return r.keyName
}

// result is what a data-plane handler answers.
type result struct {
	status int
	body   any
}

// Handler serves the key-store hosts ({vault}.{KeyVaultSuffix}).
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveKeyStore) }

func writeKV(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	if body == nil {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
}

func (s *Service) writeKVError(w http.ResponseWriter, log *slog.Logger, err error) int {
	var ke *kvError
	if !errors.As(err, &ke) {
		if errors.Is(err, context.Canceled) {
			ke = &kvError{Status: 499, Code: "RequestCanceled", Message: "The request was canceled."}
		} else {
			log.Error("key store internal error", "err", err)
			ke = &kvError{Status: http.StatusInternalServerError, Code: "InternalServerError",
				Message: "The key store encountered an internal error. Please retry the request."}
		}
	}
	writeKV(w, ke.Status, ke.body())
	return ke.Status
}

// challenge answers 401 with the bearer challenge the Azure SDKs follow: the authority is
// pgflex's token issuer for the key store's tenant, the resource a parent domain of its host
// (with the daemon's port, which clients compare too). A Managed HSM, like Azure's, answers a
// request without a token with an empty body.
func (s *Service) challenge(w http.ResponseWriter, v *Vault, msg string) int {
	_, resource := s.audiencesOf(v)
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`,
		s.endpoint, v.Props.TenantID, resource))
	if v.IsManagedHSM() && msg == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return http.StatusUnauthorized
	}
	if msg == "" {
		msg = "AKV10000: Request is missing a Bearer or PoP token."
	}
	e := &kvError{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg}
	writeKV(w, e.Status, e.body())
	return e.Status
}

// vaultNameFromHost extracts the vault name from a request host, "" if the host is not a vault
// host of this key store.
func (s *Service) vaultNameFromHost(host string) string {
	kind, name := s.storeFromHost(host)
	if kind != "" {
		return ""
	}
	return name
}

// storeFromHost extracts the kind ("" for a vault, KindManagedHSM) and name of the key store a
// request host names; name is "" if the host is neither a vault nor a Managed HSM host.
func (s *Service) storeFromHost(host string) (kind, name string) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if name, ok := strings.CutSuffix(host, "."+s.suffix); ok && name != "" && !strings.Contains(name, ".") {
		return "", name
	}
	if s.hsmSuffix != "" {
		if name, ok := strings.CutSuffix(host, "."+s.hsmSuffix); ok && name != "" && !strings.Contains(name, ".") {
			return KindManagedHSM, name
		}
	}
	return "", ""
}

func (s *Service) serveKeyStore(w http.ResponseWriter, r *http.Request) {
	reqID := arm.NewRequestID()
	w.Header().Set("x-ms-request-id", reqID)
	w.Header().Set("x-ms-keyvault-service-version", "pgflex")
	log := s.log.With("request_id", reqID, "host", r.Host, "method", r.Method, "path", r.URL.Path)
	kind, name := s.storeFromHost(r.Host)
	if kind == "" && name == serviceVaultName {
		s.serveServiceVault(w, r, log)
		return
	}
	var v *Vault
	if name != "" {
		err := s.st.View(r.Context(), func(tx store.Tx) error {
			var err error
			v, err = getRecord(tx, kind, name)
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.writeKVError(w, log, err)
			return
		}
	}
	if v == nil || v.Deleted != nil {
		// What a client meets for a vault that does not exist (in Azure its DNS name does not
		// resolve); a soft-deleted vault's host answers the same until it is recovered.
		writeKV(w, http.StatusNotFound, (&kvError{Code: "VaultNotFound",
			Message: fmt.Sprintf("No key store is served at host '%s'.", r.Host)}).body())
		return
	}
	w.Header().Set("x-ms-keyvault-region", v.Location)
	w.Header().Set("x-ms-keyvault-network-info", "conn_type=Ipv4;addr="+remoteIP(r)+";act_addr_fam=InterNetwork;")
	t, rerr := s.resolve(r, v)
	c, status, ok := s.authenticate(w, r, v)
	if !ok {
		if status != 0 && rerr == nil { // a token was presented and refused: record the attempt
			_ = s.recordAudit(r.Context(), log, v, t.op.Audit, caller{ObjectID: "unauthenticated"}, t.name, t.version, status, reqID, r)
		}
		return
	}
	if rerr != nil {
		s.writeKVError(w, log, rerr)
		return
	}
	req := &kvRequest{Request: r, vault: v, caller: c, log: log.With("caller", c.ObjectID), op: t.op, keyName: t.name, version: t.version, scope: t.scope}
	res, err := s.execute(req, t)
	status = res.status
	if err != nil {
		var ke *kvError
		if errors.As(err, &ke) {
			status = ke.Status
		} else {
			status = http.StatusInternalServerError
		}
	}
	if aerr := s.recordAudit(r.Context(), log, v, t.op.Audit, c, req.auditKey(), req.version, status, reqID, r); aerr != nil {
		// No audit record, no answer: the key store fails closed.
		s.writeKVError(w, log, aerr)
		return
	}
	if err != nil {
		s.writeKVError(w, req.log, err)
		return
	}
	writeKV(w, res.status, res.body)
}

func remoteIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// authenticate checks the bearer token. It answers the 401 itself when the token is missing or
// refused; status is 0 when no token was presented (the SDKs' first, challenge-eliciting
// request).
func (s *Service) authenticate(w http.ResponseWriter, r *http.Request, v *Vault) (caller, int, bool) {
	vaultTenant := v.Props.TenantID
	tok, present := auth.BearerToken(r)
	if !present {
		s.challenge(w, v, "")
		return caller{}, 0, false
	}
	if tok == "" {
		return caller{}, s.challenge(w, v, "AKV10000: Request is missing a Bearer or PoP token: the Authorization header is not a bearer token."), false
	}
	audience, resource := s.audiencesOf(v)
	claims, p, err := s.tokens.Verify(r.Context(), tok, audience, resource)
	if err != nil {
		var msg string
		switch {
		case errors.Is(err, auth.ErrWrongAudience):
			msg = fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", audience, claims.Audience)
		case errors.Is(err, auth.ErrWrongIssuer):
			msg = fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s/%s/v2.0, found %s.", s.endpoint, vaultTenant, claims.Issuer)
		case errors.Is(err, auth.ErrExpired):
			msg = "The access token has expired."
		case errors.Is(err, auth.ErrNotYetValid):
			msg = "Token not yet valid."
		case errors.Is(err, auth.ErrSignature):
			msg = "AKV10046: Unable to resolve the key used for signature validation."
		case errors.Is(err, auth.ErrUnknownPrincipal):
			msg = "The principal the access token was issued to no longer exists."
		case errors.Is(err, auth.ErrMalformed):
			msg = "The access token is malformed."
		default:
			return caller{}, s.writeKVError(w, s.log, err), false
		}
		return caller{}, s.challenge(w, v, msg), false
	}
	if !strings.EqualFold(claims.TenantID, vaultTenant) {
		return caller{}, s.challenge(w, v, fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s/%s/v2.0, found %s.", s.endpoint, vaultTenant, claims.Issuer)), false
	}
	return caller{ObjectID: p.ObjectID, TenantID: claims.TenantID, AppID: claims.AppID, Issuer: claims.Issuer}, 0, true
}

// handler runs one data-plane operation.
type handler func(*kvRequest) (result, error)

// target is the operation a request names.
type target struct {
	op      keyOp
	name    string
	version string
	h       handler
	// scope is the local-RBAC scope of a Managed HSM role-management operation ("/",
	// "/keys", "/keys/{name}"); empty for key operations.
	scope string
}

// tgt is a key operation's target.
func tgt(op keyOp, name, version string, h handler) target {
	return target{op: op, name: name, version: version, h: h}
}

func unsupported(what string) handler {
	return func(*kvRequest) (result, error) { return result{}, notSupported(what) }
}

// resolve finds the operation a data-plane request names, by method and path.
func (s *Service) resolve(r *http.Request, v *Vault) (target, error) {
	if v.IsManagedHSM() {
		if t, ok, err := s.resolveHSMRBAC(r); ok || err != nil {
			return t, err
		}
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	for i, sg := range segs {
		if u, err := url.PathUnescape(sg); err == nil {
			segs[i] = u
		}
	}
	is := func(i int, lit string) bool { return i < len(segs) && strings.EqualFold(segs[i], lit) }
	m := r.Method
	n := len(segs)
	// A trailing empty segment (/keys/{name}/) names the latest version, as the SDKs send it.
	switch {
	case is(0, "keys") && n == 1 || (is(0, "keys") && n == 2 && segs[1] == ""):
		if m == http.MethodGet {
			return tgt(opList, "", "", s.listKeys), nil
		}
	case is(0, "keys") && n == 2 && is(1, "restore"):
		if m == http.MethodPost {
			return tgt(opRestore, "", "", unsupported("restore")), nil
		}
	case is(0, "keys") && (n == 2 || (n == 3 && segs[2] == "")):
		name := segs[1]
		switch m {
		case http.MethodGet:
			return tgt(opGet, name, "", s.getKey), nil
		case http.MethodPatch:
			return tgt(opUpdate, name, "", s.updateKey), nil
		case http.MethodDelete:
			return tgt(opDelete, name, "", s.deleteKey), nil
		case http.MethodPut:
			return tgt(opImport, name, "", unsupported("import")), nil
		}
	case is(0, "keys") && n == 3:
		name, third := segs[1], segs[2]
		switch {
		case strings.EqualFold(third, "create") && m == http.MethodPost:
			return tgt(opCreate, name, "", s.createKey), nil
		case strings.EqualFold(third, "versions") && m == http.MethodGet:
			return tgt(opVersions, name, "", s.listKeyVersions), nil
		case strings.EqualFold(third, "rotate") && m == http.MethodPost:
			return tgt(opRotate, name, "", s.rotateKey), nil
		case strings.EqualFold(third, "rotationpolicy") && m == http.MethodGet:
			return tgt(opGetPolicy, name, "", s.getRotationPolicy), nil
		case strings.EqualFold(third, "rotationpolicy") && m == http.MethodPut:
			return tgt(opSetPolicy, name, "", s.setRotationPolicy), nil
		case strings.EqualFold(third, "backup") && m == http.MethodPost:
			return tgt(opBackup, name, "", unsupported("backup")), nil
		case cryptoOp(third) != nil && m == http.MethodPost:
			return tgt(*cryptoOp(third), name, "", s.cryptoHandler(third)), nil
		case m == http.MethodGet:
			return tgt(opGet, name, third, s.getKey), nil
		case m == http.MethodPatch:
			return tgt(opUpdate, name, third, s.updateKey), nil
		}
	case is(0, "keys") && n == 4:
		name, version, op := segs[1], segs[2], segs[3]
		switch {
		case cryptoOp(op) != nil && m == http.MethodPost:
			return tgt(*cryptoOp(op), name, version, s.cryptoHandler(op)), nil
		case strings.EqualFold(op, "release") && m == http.MethodPost:
			return tgt(opRelease, name, version, unsupported("release")), nil
		}
	case is(0, "deletedkeys") && (n == 1 || (n == 2 && segs[1] == "")):
		if m == http.MethodGet {
			return tgt(opListDelete, "", "", s.listDeletedKeys), nil
		}
	case is(0, "deletedkeys") && n == 2:
		switch m {
		case http.MethodGet:
			return tgt(opGetDeleted, segs[1], "", s.getDeletedKey), nil
		case http.MethodDelete:
			return tgt(opPurge, segs[1], "", s.purgeDeletedKey), nil
		}
	case is(0, "deletedkeys") && n == 3 && is(2, "recover"):
		if m == http.MethodPost {
			return tgt(opRecover, segs[1], "", s.recoverDeletedKey), nil
		}
	}
	return target{}, &kvError{Status: http.StatusNotFound, Code: "NotFound",
		Message: fmt.Sprintf("The requested operation '%s %s' does not exist in the key store.", r.Method, r.URL.Path)}
}

// execute checks the api-version, the names and the caller's permission, then runs the
// operation.
func (s *Service) execute(r *kvRequest, t target) (result, error) {
	name, version := t.name, t.version
	api, err := requireAPIVersion(r.Request)
	if err != nil {
		return result{}, err
	}
	r.api = api
	if t.scope != "" {
		// A Managed HSM role-management operation: authorized at its scope.
		if err := s.authorizeHSM(r.Context(), r.vault, r.caller, t.op, t.scope); err != nil {
			return result{}, err
		}
		return t.h(r)
	}
	if name != "" && !keyNameRE.MatchString(name) {
		return result{}, badParameter("The request URI contains an invalid name: %s", name)
	}
	if version != "" && !versionRE.MatchString(version) {
		return result{}, keyNotFound(name, version)
	}
	if err := s.authorize(r.Context(), r.vault, r.caller, t.op, name); err != nil {
		return result{}, err
	}
	return t.h(r)
}

// maxKeyStoreBody bounds a key-store request body: the largest legitimate one (an imported
// 4096-bit RSA key) is a few kilobytes.
const maxKeyStoreBody = 1 << 20

// decodeBody reads a JSON request body into v; a missing or malformed body is 400 BadParameter,
// one over maxKeyStoreBody 413.
func decodeBody(r *kvRequest, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxKeyStoreBody+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || len(b) > maxKeyStoreBody {
		return &kvError{Status: http.StatusRequestEntityTooLarge, Code: "RequestEntityTooLarge",
			Message: "The request body exceeds the maximum size of 1 MB."}
	}
	if err != nil {
		return badParameter("The request body could not be read: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return badParameter("The request body is required for this operation.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badParameter("The request body is not valid JSON: %v at offset %d.", se, se.Offset)
		case errors.As(err, &te):
			return badParameter("Property '%s' has an invalid value: expected %s, found %s.", te.Field, te.Type, te.Value)
		}
		return badParameter("The request body is invalid: %v.", err)
	}
	return nil
}

// page is one page of a data-plane list: maxresults (1-25, default 25) and a $skiptoken offset
// this function itself wrote into nextLink.
func page[T any](r *kvRequest, items []T) (map[string]any, error) {
	q := r.URL.Query()
	size := 25
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 25 {
			return nil, badParameter("The value '%s' of maxresults is invalid: it must be a number from 1 to 25.", s)
		}
		size = n
	}
	start := 0
	if s := q.Get("$skiptoken"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, badParameter("The $skiptoken '%s' is invalid.", s)
		}
		start = min(n, len(items))
	}
	end := min(start+size, len(items))
	out := map[string]any{"value": items[start:end], "nextLink": nil}
	if items == nil || start == end {
		out["value"] = []T{}
	}
	if end < len(items) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skiptoken", strconv.Itoa(end))
		u := url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawQuery: next.Encode()}
		out["nextLink"] = u.String()
	}
	return out, nil
}
