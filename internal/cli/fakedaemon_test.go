package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDaemon is a test double of the pgflex daemon, a peer being written concurrently: it plays
// the documented contract (token endpoint, Microsoft.Resources subscriptions, locations and
// groups, ARM errors, paging, long-running operations through Location and
// Azure-AsyncOperation, a key-store host under *.vault.localhost) over TLS with a certificate
// from its own CA, as the real daemon does. End-to-end tests against the real daemon live with
// the daemon.
type fakeDaemon struct {
	t      *testing.T
	srv    *httptest.Server
	caPEM  string
	mux    *http.ServeMux
	tenant string
	sub    string
	secret string

	mu            sync.Mutex
	tokenRequests map[string]int    // scope → count
	tokens        map[string]string // token → audience
	requests      []string          // "METHOD path audience" of authenticated requests
	groups        map[string]map[string]any
	groupOrder    []string
	ops           map[string]int // operation id → polls left before it completes
	pageSize      int
	// postgresPort is the profile's PostgreSQL endpoint port (0: none named, 5432).
	postgresPort int
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{
		t:             t,
		mux:           http.NewServeMux(),
		tenant:        "11111111-1111-1111-1111-111111111111",
		sub:           "22222222-2222-2222-2222-222222222222",
		secret:        "s3cr3t-client-secret-value",
		tokenRequests: map[string]int{},
		tokens:        map[string]string{},
		groups:        map[string]map[string]any{},
		ops:           map[string]int{},
		pageSize:      2,
	}
	caCert, caKey := newTestCA(t)
	leaf := newTestLeaf(t, caCert, caKey)
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	f.routes()
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes a test refuses on purpose
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func newTestCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake pgflex CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newTestLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames:    []string{"localhost", "*.vault.localhost", "*.managedhsm.localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// profile is the profile the real daemon would write for this fake.
func (f *fakeDaemon) profile() *Profile {
	return &Profile{
		Endpoint: f.srv.URL, CACertificate: f.caPEM, TenantID: f.tenant, SubscriptionID: f.sub,
		SubscriptionName: "pgflex", ClientID: "33333333-3333-3333-3333-333333333333", ClientSecret: f.secret,
		TokenEndpoint: f.srv.URL + "/" + f.tenant + "/oauth2/v2.0/token", ARMAudience: "https://management.azure.com",
		KeyVaultDNSSuffix: "vault.localhost", ManagedHSMDNSSuffix: "managedhsm.localhost", PostgresPort: f.postgresPort,
		User: ProfileUser{Name: "pgflex-admin", Type: "servicePrincipal"},
	}
}

// writeProfile stores the profile as the daemon does (mode 0600) and returns its path.
func (f *fakeDaemon) writeProfile(dir string) string {
	f.t.Helper()
	data, err := json.Marshal(f.profile())
	if err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// port is the listener's port, for key-store URLs on *.vault.localhost.
func (f *fakeDaemon) port() string {
	_, port, _ := net.SplitHostPort(f.srv.Listener.Addr().String())
	return port
}

func (f *fakeDaemon) tokenCount(scope string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests[scope]
}

func (f *fakeDaemon) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeDaemon) addGroup(name, location string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[strings.ToLower(name)] = f.groupBody(name, location, map[string]any{})
	f.groupOrder = append(f.groupOrder, strings.ToLower(name))
}

func (f *fakeDaemon) groupBody(name, location string, tags map[string]any) map[string]any {
	return map[string]any{
		"id": "/subscriptions/" + f.sub + "/resourceGroups/" + name, "name": name,
		"type": "Microsoft.Resources/resourceGroups", "location": location, "tags": tags,
		"managedBy": nil, "properties": map[string]any{"provisioningState": "Succeeded"},
	}
}

// ServeHTTP authenticates everything but the token endpoint, as the daemon does, and records
// which audience each request carried.
func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		f.mux.ServeHTTP(w, r)
		return
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	audience, ok := f.tokens[token]
	if ok {
		f.requests = append(f.requests, r.Method+" "+r.URL.Path+" "+audience)
	}
	f.mu.Unlock()
	wantAudience := "https://management.azure.com"
	if strings.HasSuffix(strings.Split(r.Host, ":")[0], ".vault.localhost") {
		wantAudience = "https://vault.localhost"
	}
	if !ok || audience != wantAudience {
		replyJSON(w, http.StatusUnauthorized, armErr("InvalidAuthenticationToken", "The access token is invalid."))
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		replyJSON(w, http.StatusBadRequest, armErr("MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests."))
		return
	}
	f.mux.ServeHTTP(w, r)
}

func armErr(code, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg}}
}

func replyJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (f *fakeDaemon) routes() {
	m := f.mux
	m.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.token)
	m.HandleFunc("GET /subscriptions", func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, map[string]any{"value": []any{f.subscription(), map[string]any{
			"id": "/subscriptions/44444444-4444-4444-4444-444444444444", "subscriptionId": "44444444-4444-4444-4444-444444444444",
			"displayName": "other", "state": "Disabled", "tenantId": f.tenant}}})
	})
	m.HandleFunc("GET /subscriptions/{sub}", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.PathValue("sub"), f.sub) {
			replyJSON(w, http.StatusNotFound, armErr("SubscriptionNotFound", fmt.Sprintf("The subscription '%s' could not be found.", r.PathValue("sub"))))
			return
		}
		replyJSON(w, http.StatusOK, f.subscription())
	})
	m.HandleFunc("GET /subscriptions/{sub}/locations", func(w http.ResponseWriter, r *http.Request) {
		loc := func(name, display, pair string) map[string]any {
			return map[string]any{"id": "/subscriptions/" + f.sub + "/locations/" + name, "name": name, "displayName": display,
				"regionalDisplayName": "(US) " + display, "type": "Region",
				"metadata": map[string]any{"regionType": "Physical", "pairedRegion": []any{
					map[string]any{"name": pair, "id": "/subscriptions/" + f.sub + "/locations/" + pair}}}}
		}
		replyJSON(w, http.StatusOK, map[string]any{"value": []any{loc("eastus", "East US", "westus"), loc("westus", "West US", "eastus")}})
	})
	base := "/subscriptions/{sub}/resourcegroups/{rg}"
	m.HandleFunc("PUT "+base, f.putGroup)
	m.HandleFunc("GET "+base, func(w http.ResponseWriter, r *http.Request) {
		if g := f.group(r.PathValue("rg")); g != nil {
			replyJSON(w, http.StatusOK, g)
			return
		}
		replyJSON(w, http.StatusNotFound, armErr("ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", r.PathValue("rg"))))
	})
	m.HandleFunc("HEAD "+base, func(w http.ResponseWriter, r *http.Request) {
		if f.group(r.PathValue("rg")) != nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	m.HandleFunc("DELETE "+base, f.deleteGroup)
	m.HandleFunc("GET /subscriptions/{sub}/resourcegroups", f.listGroups)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Resources/locations/{loc}/operationResults/{op}", f.operationResult)
	m.HandleFunc("GET myvault.vault.localhost/keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		replyJSON(w, http.StatusOK, map[string]any{"key": map[string]any{
			"kid": "https://" + r.Host + "/keys/" + r.PathValue("name") + "/0123456789abcdef0123456789abcdef", "kty": "RSA"}})
	})
}

func (f *fakeDaemon) subscription() map[string]any {
	return map[string]any{"id": "/subscriptions/" + f.sub, "subscriptionId": f.sub, "displayName": "pgflex",
		"state": "Enabled", "tenantId": f.tenant, "managedByTenants": []any{},
		"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01"}, "authorizationSource": "RoleBased"}
}

func (f *fakeDaemon) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		replyJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "only client_credentials"})
		return
	}
	if r.PostForm.Get("client_id") != f.profile().ClientID || r.PostForm.Get("client_secret") != f.secret {
		replyJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided."})
		return
	}
	scope := r.PostForm.Get("scope")
	f.mu.Lock()
	f.tokenRequests[scope]++
	tok := fmt.Sprintf("eyJfake.token-%d-%d.sig", len(f.tokens), time.Now().UnixNano())
	f.tokens[tok] = strings.TrimSuffix(scope, "/.default")
	f.mu.Unlock()
	replyJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "access_token": tok, "expires_in": 3599})
}

func (f *fakeDaemon) group(name string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups[strings.ToLower(name)]
}

func (f *fakeDaemon) putGroup(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Location string         `json:"location"`
		Tags     map[string]any `json:"tags"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Location == "" {
		replyJSON(w, http.StatusBadRequest, armErr("LocationRequired", "The location property is required for this definition."))
		return
	}
	if body.Tags == nil {
		body.Tags = map[string]any{}
	}
	name := r.PathValue("rg")
	status := http.StatusOK
	f.mu.Lock()
	if _, ok := f.groups[strings.ToLower(name)]; !ok {
		status = http.StatusCreated
		f.groupOrder = append(f.groupOrder, strings.ToLower(name))
	}
	g := f.groupBody(name, body.Location, body.Tags)
	f.groups[strings.ToLower(name)] = g
	f.mu.Unlock()
	replyJSON(w, status, g)
}

func (f *fakeDaemon) listGroups(w http.ResponseWriter, r *http.Request) {
	skip, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
	f.mu.Lock()
	var page []any
	for i := skip; i < len(f.groupOrder) && len(page) < f.pageSize; i++ {
		page = append(page, f.groups[f.groupOrder[i]])
	}
	more := skip+f.pageSize < len(f.groupOrder)
	f.mu.Unlock()
	body := map[string]any{"value": append([]any{}, page...)}
	if more {
		body["nextLink"] = fmt.Sprintf("%s%s?api-version=%s&$skiptoken=%d", f.srv.URL, r.URL.Path, r.URL.Query().Get("api-version"), skip+f.pageSize)
	}
	replyJSON(w, http.StatusOK, body)
}

// deleteGroup answers 202 with a Location that reports 202 once more before 204.
func (f *fakeDaemon) deleteGroup(w http.ResponseWriter, r *http.Request) {
	name := strings.ToLower(r.PathValue("rg"))
	if f.group(name) == nil {
		replyJSON(w, http.StatusNotFound, armErr("ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", r.PathValue("rg"))))
		return
	}
	op := "delete-" + name
	f.mu.Lock()
	f.ops[op] = 1
	f.mu.Unlock()
	w.Header().Set("Location", fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.Resources/locations/eastus/operationResults/%s?api-version=%s",
		f.srv.URL, f.sub, op, r.URL.Query().Get("api-version")))
	w.Header().Set("Retry-After", "0")
	w.WriteHeader(http.StatusAccepted)
}

func (f *fakeDaemon) operationResult(w http.ResponseWriter, r *http.Request) {
	op := r.PathValue("op")
	f.mu.Lock()
	left, ok := f.ops[op]
	if ok && left > 0 {
		f.ops[op] = left - 1
	}
	if ok && left == 0 {
		name := strings.TrimPrefix(op, "delete-")
		delete(f.groups, name)
		order := f.groupOrder[:0]
		for _, g := range f.groupOrder {
			if g != name {
				order = append(order, g)
			}
		}
		f.groupOrder = order
	}
	f.mu.Unlock()
	switch {
	case !ok:
		replyJSON(w, http.StatusNotFound, armErr("OperationNotFound", "The operation could not be found."))
	case left > 0:
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusAccepted)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// run executes one pgflex command line against the fake with a fresh config directory
// (configDir, shared by calls that pass the same one) and returns stdout, stderr, exit code.
type runOpts struct {
	configDir string
	env       map[string]string
	stdin     string
	terminal  bool // stdin, stdout and stderr all count as terminals
}

func runCLI(t *testing.T, o runOpts, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if o.configDir == "" {
		o.configDir = t.TempDir()
	}
	var out, errOut bytes.Buffer
	env := Env{
		Args: args, Stdin: strings.NewReader(o.stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if k == "PGFLEX_CONFIG_DIR" {
				return o.configDir
			}
			return o.env[k]
		},
		IsTerminal: func(any) bool { return o.terminal },
		Version:    "1.2.3",
	}
	code = Execute(NewRootCommand(env))
	return out.String(), errOut.String(), code
}

func sortedStrings(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
