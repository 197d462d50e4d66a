package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/procfs"
	"github.com/pgflex/pgflex/internal/store"
)

// MSIPath is the managed-identity endpoint, for `az login --identity` with
// MSI_ENDPOINT={endpoint}/msi/token.
const MSIPath = "/msi/token"

// PeerUID tells which OS account owns the client end of a request's connection, as the kernel
// records it; ok is false when it cannot be told (not a loopback connection, or not found).
type PeerUID func(r *http.Request) (uid uint32, ok bool)

// MSIEndpoint serves the bootstrap administrator's tokens the way a managed-identity endpoint
// does (Cloud Shell's MSI_ENDPOINT: POST form resource=..., or GET ?resource=..., with the
// header Metadata: true). There is no secret to present: a caller is accepted when the kernel
// says its end of the loopback connection belongs to the OS account allowed, the account the
// daemon runs as, which can read the administrator's profile anyway. Every other account on
// the host, servers' accounts included, and every other host is refused.
type MSIEndpoint struct {
	Issuer        *Issuer
	AdminObjectID string
	AllowedUID    uint32
	Peer          PeerUID
	Log           *slog.Logger
}

// msiError is the managed-identity endpoints' error shape (IMDS and App Service alike).
func msiError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc})
}

func (m *MSIEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		msiError(w, http.StatusMethodNotAllowed, "invalid_request", "The managed identity endpoint accepts GET and POST.")
		return
	}
	// As IMDS: the header a browser or a server-side request forgery cannot add.
	if !strings.EqualFold(r.Header.Get("Metadata"), "true") {
		msiError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	uid, ok := m.Peer(r)
	if !ok || uid != m.AllowedUID {
		who := "an unknown account"
		if ok {
			who = "uid " + strconv.FormatUint(uint64(uid), 10)
		}
		// The uids go to the operator's log only: the caller is not told which account would be
		// served, nor how it was seen.
		m.Log.Warn("managed identity endpoint refused a caller", "remote", r.RemoteAddr, "account", who, "allowed_uid", m.AllowedUID)
		msiError(w, http.StatusForbidden, "access_denied",
			"The managed identity endpoint serves only processes of the daemon's own OS account on this host.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		msiError(w, http.StatusBadRequest, "invalid_request", "The request body must be application/x-www-form-urlencoded.")
		return
	}
	resource := r.Form.Get("resource")
	if resource == "" {
		msiError(w, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
		return
	}
	// A user-assigned identity named by client id, object id or resource id: only the
	// administrator is served here, so any other is not found (az then tries the next kind).
	for _, k := range []string{"client_id", "clientid", "object_id", "msi_res_id", "mi_res_id"} {
		if v := r.Form.Get(k); v != "" {
			if !m.isAdmin(r.Context(), k, v) {
				msiError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
				return
			}
		}
	}
	tok, exp, err := m.Issuer.IssueForAdministrator(r.Context(), m.AdminObjectID, resource)
	var oe *OAuthError
	if errors.As(err, &oe) {
		msiError(w, oe.Status, oe.Code, oe.Description)
		return
	}
	if err != nil {
		m.Log.Error("managed identity token", "err", err)
		msiError(w, http.StatusInternalServerError, "server_error", "The token could not be issued.")
		return
	}
	now := m.Issuer.now()
	secs := strconv.FormatInt(int64(exp.Sub(now)/time.Second), 10)
	// The managed-identity endpoints' token shape: numbers as strings.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "client_id": m.adminClientID(r.Context()), "expires_in": secs, "ext_expires_in": secs,
		"expires_on": strconv.FormatInt(exp.Unix(), 10), "not_before": strconv.FormatInt(now.Unix(), 10),
		"resource": resource, "token_type": "Bearer",
	})
}

// MSIDisabled answers at MSIPath when the managed-identity endpoint is off, in the endpoint's
// error shape, so that az login --identity reports why rather than an unexplained 404. how
// tells the operator how to turn it on.
func MSIDisabled(how string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msiError(w, http.StatusNotFound, "invalid_request", "The managed identity endpoint is disabled. "+how)
	})
}

func (m *MSIEndpoint) admin(ctx context.Context) *Principal {
	var p *Principal
	_ = m.Issuer.st.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = GetPrincipal(tx, m.AdminObjectID)
		return err
	})
	return p
}

func (m *MSIEndpoint) adminClientID(ctx context.Context) string {
	if p := m.admin(ctx); p != nil {
		return p.ClientID
	}
	return ""
}

func (m *MSIEndpoint) isAdmin(ctx context.Context, kind, v string) bool {
	p := m.admin(ctx)
	if p == nil {
		return false
	}
	switch kind {
	case "client_id", "clientid":
		return strings.EqualFold(v, p.ClientID)
	case "object_id":
		return strings.EqualFold(v, p.ObjectID)
	}
	return false // the administrator is no Azure resource
}

// IssueForAdministrator issues the bootstrap administrator a token for the audience resource
// names, without its secret. It is for the managed-identity endpoint, which has authenticated
// the caller by other means.
func (i *Issuer) IssueForAdministrator(ctx context.Context, objectID, resource string) (string, time.Time, error) {
	aud, err := i.resolveResource(resource)
	if err != nil {
		return "", time.Time{}, err
	}
	p, err := i.lookup(ctx, GetPrincipal, objectID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("administrator %s: %w", objectID, err)
	}
	if !p.Admin {
		return "", time.Time{}, fmt.Errorf("principal %s is not the administrator", objectID)
	}
	return i.sign(p, aud)
}

// LoopbackPeerUID is PeerUID from the kernel's socket table: the uid that owns the client's
// end of a loopback TCP connection to this process. Connections from other hosts (and other
// network namespaces, whose sockets this process cannot see) are not told.
func LoopbackPeerUID(r *http.Request) (uint32, bool) {
	remote, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !remote.Addr().Unmap().IsLoopback() {
		return 0, false
	}
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return 0, false
	}
	local, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return 0, false
	}
	uid, err := procfs.SocketOwner(remote, local)
	if err != nil {
		return 0, false
	}
	return uid, true
}
