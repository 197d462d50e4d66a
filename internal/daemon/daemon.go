// Package daemon is `pgflex serve`: it bootstraps the data directory (root key, CA, TLS
// certificate, token-signing key, state store, tenant, subscription, administrator, CLI profile)
// and serves every API on one HTTPS listener, routed by Host header.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgflex/pgflex/internal/activitylog"
	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/cloudmeta"
	"github.com/pgflex/pgflex/internal/dataplane"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/graph"
	"github.com/pgflex/pgflex/internal/identity"
	"github.com/pgflex/pgflex/internal/insights"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/pgrouter"
	"github.com/pgflex/pgflex/internal/portal"
	"github.com/pgflex/pgflex/internal/profile"
	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
	"github.com/pgflex/pgflex/internal/tlsca"
)

// Config is the daemon's settings.
type Config struct {
	DataDir          string
	Addr             string // host:port to listen on; port 0 picks a free one
	KeyVaultSuffix   string // DNS suffix of vault hosts, default vault.localhost
	ManagedHSMSuffix string // DNS suffix of Managed HSM hosts, default managedhsm.localhost
	// GraphHost is the host name Microsoft Graph is served at (routed by Host header, on the
	// certificate), default graph.localhost.
	GraphHost string
	// PortalHost is the host name the web console is served at, default portal.localhost. The
	// page calls the ARM API on its own origin and the key-store hosts with CORS.
	PortalHost string
	// PortalIdleTimeout ends a portal session after this long without user activity (default
	// 30 minutes).
	PortalIdleTimeout time.Duration
	// MSIEndpoint serves the bootstrap administrator's tokens at auth.MSIPath to processes of
	// the daemon's own OS account (az login --identity). Off by default: anything that runs as
	// that account, root included, would get administrator tokens without a secret.
	MSIEndpoint bool
	ExtraHosts  []string
	Logger      *slog.Logger

	// RuntimeDir holds the servers' mount points and sockets (default /run/pgflex/{id}).
	RuntimeDir string
	// VolumeLayer is the encrypting layer of new servers' volumes: volume.LayerAuto (the
	// default: picked from what the host offers, see volume.Choose), volume.LayerFscrypt or
	// volume.LayerGocryptfs. Existing servers keep theirs.
	VolumeLayer string
	// Servers is the flexible-server provider's settings (listen address, port range).
	Servers flexserver.Config
	// KeyMonitor tunes the customer-managed key monitor (interval, grace period).
	KeyMonitor flexserver.MonitorConfig
	// KeyStoreOutageFile is for tests only: while the file exists the key store answers 503,
	// as an unreachable key store would.
	KeyStoreOutageFile string
	// PostgresDNSSuffix makes the servers' host names, {server}.{suffix} (default
	// postgres.localhost); the cloud metadata publishes it (az's postgresqlServerEndpoint).
	PostgresDNSSuffix string
	// PostgresDNSAliases are further suffixes whose names reach the same servers: by default
	// Azure's own, postgres.database.azure.com, which az's show-connection-string writes
	// whatever the cloud (the name must still resolve to the endpoint).
	PostgresDNSAliases []string
	// PostgresAddr is the PostgreSQL endpoint's address (host:port): every server is reached
	// there by its host name. Default {Servers.ListenAddress}:5432; port 0 picks a free one.
	PostgresAddr string
}

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8443"
	}
	if c.KeyVaultSuffix == "" {
		c.KeyVaultSuffix = "vault.localhost"
	}
	if c.ManagedHSMSuffix == "" {
		c.ManagedHSMSuffix = "managedhsm.localhost"
	}
	if c.GraphHost == "" {
		c.GraphHost = "graph.localhost"
	}
	if c.PortalHost == "" {
		c.PortalHost = "portal.localhost"
	}
	c.PortalHost = strings.ToLower(c.PortalHost)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = filepath.Join("/run/pgflex", c.installationID())
	}
	if c.PostgresDNSSuffix == "" {
		c.PostgresDNSSuffix = flexserver.DefaultDNSSuffix
	}
	c.PostgresDNSSuffix = strings.ToLower(strings.TrimSuffix(c.PostgresDNSSuffix, "."))
	c.Servers.DNSSuffix = c.PostgresDNSSuffix
	aliases := c.PostgresDNSAliases[:0:0]
	for _, a := range c.PostgresDNSAliases {
		if a = strings.ToLower(strings.TrimSuffix(a, ".")); a != "" && a != c.PostgresDNSSuffix {
			aliases = append(aliases, a)
		}
	}
	c.PostgresDNSAliases = aliases
	if c.PostgresAddr == "" {
		host := c.Servers.ListenAddress
		if host == "" {
			host = "127.0.0.1"
		}
		c.PostgresAddr = net.JoinHostPort(host, "5432")
	}
	// Servers listen on the loopback address only: the endpoint, which enforces firewall
	// rules, is the one way in (--server-address only sets the endpoint's default address).
	c.Servers.ListenAddress = "127.0.0.1"
}

// checkGraphHost refuses a Graph host name that requests could not be routed to by Host
// header alone, or that would take requests meant for another API.
func checkGraphHost(c Config) error {
	return checkServiceHost(c, "graph host", c.GraphHost, "graph.localhost")
}

// checkPortalHost does the same for the portal's host name, which must also differ from
// Graph's (Graph is routed first and would hide the portal).
func checkPortalHost(c Config) error {
	if err := checkServiceHost(c, "portal host", c.PortalHost, "portal.localhost"); err != nil {
		return err
	}
	if strings.EqualFold(c.PortalHost, c.GraphHost) {
		return fmt.Errorf("portal host %q: it is the Graph host; give each its own name", c.PortalHost)
	}
	return nil
}

// checkServiceHost refuses a host name for a service routed by Host header (what, e.g. "graph
// host") that requests could not be routed to by Host header alone, or that would take
// requests meant for another API.
func checkServiceHost(c Config, what, name, example string) error {
	host := strings.ToLower(name)
	bad := func(why string) error { return fmt.Errorf("%s %q: %s", what, name, why) }
	isIP := "an IP address is where the resource-manager API is reached; give a DNS name such as " + example
	if _, err := netip.ParseAddr(host); err == nil {
		return bad(isIP)
	}
	if err := checkDNSName(host); err != nil {
		return bad(err.Error())
	}
	// Resolvers read 127.1 or 0x7f000001 as addresses; no top-level domain starts with a digit.
	if last := host[strings.LastIndexByte(host, '.')+1:]; last[0] >= '0' && last[0] <= '9' {
		return bad(isIP)
	}
	if host == "localhost" {
		return bad("localhost is where the resource-manager API is reached; give a name under it such as " + example)
	}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil && strings.EqualFold(h, host) {
		return bad("it is the listen address's host name, where the resource-manager API is reached")
	}
	for _, s := range []struct{ name, suffix string }{
		{"Key Vault DNS suffix", c.KeyVaultSuffix}, {"Managed HSM DNS suffix", c.ManagedHSMSuffix},
	} {
		suffix := strings.ToLower(s.suffix)
		if host == suffix || strings.HasSuffix(host, "."+suffix) {
			return bad(fmt.Sprintf("it is or is under the %s %s, whose hosts are the key store's", s.name, s.suffix))
		}
	}
	return nil
}

// checkDNSName accepts a host name of dot-separated labels of letters, digits and hyphens
// (not at a label's ends), at most 63 characters a label and 253 in all.
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("a host name is required")
	}
	if len(name) > 253 {
		return errors.New("a DNS name is at most 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("not a DNS name: each label is 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("not a DNS name: a label neither starts nor ends with a hyphen")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("not a DNS name: %q is not a letter, digit or hyphen", r)
			}
		}
	}
	return nil
}

func (c *Config) installationID() string { return InstallationID(c.DataDir) }

// InstallationID names the installation whose data directory is dataDir on its host: a hash
// of the directory's absolute path. It names the default runtime directory and marks the
// servers' OS accounts as this installation's.
func InstallationID(dataDir string) string {
	abs, _ := filepath.Abs(dataDir)
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:])[:12]
}

// ARMAudience is the audience of tokens for the resource-manager API.
const ARMAudience = "https://management.azure.com"

// Daemon is a running pgflex service.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	st        store.Store
	box       *seal.Box
	ca        *tlsca.CA
	issuer    *auth.Issuer
	ops       *arm.Operations
	router    *arm.Router
	resources *resources.Service
	// keyStore serves the key-store hosts ({vault}.{KeyVaultSuffix}, {hsm}.{ManagedHSMSuffix}).
	keyStore http.Handler
	ln       net.Listener
	srv      *http.Server
	base     context.Context
	cancel   context.CancelFunc
	// loops are the background loops (reconciler, key monitor, backups, passphrase socket),
	// which a shutdown cancels through base and then waits for.
	loops    sync.WaitGroup
	endpoint string
	boot     bootstrap

	// identities is Microsoft.ManagedIdentity; rbac is Microsoft.Authorization and the key
	// store's role checker.
	identities *identity.Service
	rbac       *rbac.Service
	activity   *activitylog.Log
	insights   *insights.Metrics
	servers    *flexserver.Service
	dataPlane  *dataplane.Manager
	metrics    *prometheus.Registry
	// pgln and pgRouter are the PostgreSQL endpoint (postgres_endpoint.go).
	pgln     net.Listener
	pgRouter *pgrouter.Router
	// keyVault is Microsoft.KeyVault and the key store behind keyStore.
	keyVault *keyvault.Service
	// graph is Microsoft Graph, served at cfg.GraphHost.
	graph http.Handler
	// portal is the web console, served at cfg.PortalHost.
	portal *portal.Portal
	// cloud is what /metadata/endpoints publishes.
	cloud cloudmeta.Metadata
}

// bootstrap is the identity of this installation, created at first start.
type bootstrap struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	AdminObjectID  string `json:"adminObjectId"`
	AdminClientID  string `json:"adminClientId"`
}

// Open prepares the data directory and binds the listener; Serve then answers requests.
func Open(ctx context.Context, cfg Config) (d *Daemon, err error) {
	cfg.defaults()
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	if err := checkGraphHost(cfg); err != nil {
		return nil, err
	}
	if err := checkPortalHost(cfg); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, log: cfg.Logger}
	opened := d // the named result is nil on the error paths
	defer func() {
		if err != nil {
			opened.closeAll()
		}
	}()
	// Traversable but not listable: pgBackRest, as the PostgreSQL user, reaches the backup
	// repositories under regions/ and the servers' backup configuration; everything else in
	// here is root's alone (0700 directories, 0600 files).
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("restrict data directory: %w", err)
	}
	for _, sub := range []string{"tls", "keys", "regions", "servers"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", sub, err)
		}
	}
	if d.box, err = seal.LoadOrCreateRootKey(filepath.Join(cfg.DataDir, "root.key")); err != nil {
		return nil, err
	}
	if d.ca, err = tlsca.LoadOrCreate(filepath.Join(cfg.DataDir, "tls"), d.box); err != nil {
		return nil, err
	}
	cert, err := d.ca.ServerCertificate(filepath.Join(cfg.DataDir, "tls"), d.hosts(), d.box)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	signingKey, err := d.tokenSigningKey()
	if err != nil {
		return nil, err
	}
	if d.st, err = store.OpenBolt(filepath.Join(cfg.DataDir, "state.db")); err != nil {
		return nil, err
	}
	if err := d.bootstrapState(ctx); err != nil {
		return nil, err
	}
	d.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	d.endpoint = "https://" + d.ln.Addr().String()
	if err := d.listenPostgres(); err != nil {
		return nil, err
	}
	d.cloud = d.cloudMetadata()
	aud := auth.Audiences{ARM: ARMAudience, KeyVault: "https://" + cfg.KeyVaultSuffix, ManagedHSM: "https://" + cfg.ManagedHSMSuffix,
		Graph: strings.TrimRight(d.cloud.MicrosoftGraph, "/")}
	d.issuer = auth.NewIssuer(signingKey, d.endpoint, d.boot.TenantID, d.st, aud)
	if err := d.writeProfile(ctx); err != nil {
		return nil, err
	}
	d.base, d.cancel = context.WithCancel(context.Background())
	d.ops = arm.NewOperations(d.base, d.st, d.log)
	d.router = arm.NewRouter(d.issuer.ARMAuthenticator(), d.log)
	d.ops.RegisterRoutes(d.router, nil)
	d.cloud.RegisterRoutes(d.router)
	// Providers: each registers its ARM routes (and, for key stores, its host handler).
	// Keep one block per provider.
	d.resources = resources.New(d.st, d.ops, d.log)
	d.resources.RegisterRoutes(d.router)
	d.identities = identity.New(d.st, d.resources, d.boot.TenantID, d.log)
	d.identities.RegisterRoutes(d.router)
	d.resources.AddMember(d.identities.Member())
	if d.rbac, err = rbac.New(d.st, d.resources, d.boot.TenantID, d.log); err != nil {
		return nil, err
	}
	d.rbac.RegisterRoutes(d.router)
	d.resources.AddMember(d.rbac.Member())
	// Key store: Microsoft.KeyVault/vaults on ARM, the keys REST API on vault hosts, and the
	// rotation/purge loop. RBAC vaults ask rbac for role assignments.
	if d.keyVault, err = keyvault.New(keyvault.Options{Store: d.st, Box: d.box, Tokens: d.issuer, Roles: d.rbac,
		Endpoint: d.endpoint, KeyVaultSuffix: cfg.KeyVaultSuffix, TenantID: d.boot.TenantID, Log: d.log,
		ManagedHSMSuffix: cfg.ManagedHSMSuffix, HSMRoles: d.rbac, Operations: d.ops}); err != nil {
		return nil, err
	}
	d.keyVault.RegisterRoutes(d.router)
	d.resources.AddMember(d.keyVault.Member())
	d.keyStore = d.keyVault.Handler()
	d.keyVault.Start(d.base)
	// Flexible servers: each an encrypted volume with PostgreSQL inside (the data plane), keys
	// reached as the server's identity over HTTPS, transitions in the activity log.
	d.activity = activitylog.New(d.st, d.log)
	d.activity.RegisterRoutes(d.router)
	// Microsoft.Insights metrics of servers: the key monitor's checks and states, in memory.
	d.insights = insights.New(func(ctx context.Context, id string) (string, time.Time, error) { return d.servers.Locate(ctx, id) }, d.log)
	d.insights.RegisterRoutes(d.router)
	if err := d.openServers(ctx); err != nil {
		return nil, err
	}
	// Microsoft Graph, for the signed-in principal (az keyvault create, pgflex ad signed-in-user).
	d.graph = graph.New(d.issuer, d.st, d.cloud.MicrosoftGraph, d.log)
	if err := d.openPostgresEndpoint(); err != nil {
		return nil, err
	}
	// (end of providers)

	mux := http.NewServeMux()
	d.issuer.RegisterRoutes(mux)
	if cfg.MSIEndpoint {
		mux.Handle(auth.MSIPath, &auth.MSIEndpoint{Issuer: d.issuer, AdminObjectID: d.boot.AdminObjectID,
			AllowedUID: uint32(os.Geteuid()), Peer: auth.LoopbackPeerUID, Log: d.log})
	} else {
		mux.Handle(auth.MSIPath, auth.MSIDisabled("Start pgflex serve with --msi-endpoint to serve the administrator's tokens to processes of the daemon's own OS account."))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}))
	mux.Handle("/", d.router)
	if d.portal, err = portal.New(portal.Options{Origin: d.PortalURL(), API: mux, Tokens: d.issuer,
		Audiences:   map[string]string{"arm": aud.ARM, "keyvault": aud.KeyVault, "managedhsm": aud.ManagedHSM},
		ARMAudience: aud.ARM, IdleTimeout: cfg.PortalIdleTimeout, Log: d.log,
		ConnectSources: []string{"https://*." + cfg.KeyVaultSuffix + ":" + d.port(), "https://*." + cfg.ManagedHSMSuffix + ":" + d.port()},
		Info: map[string]any{"tenantId": d.boot.TenantID, "subscriptionId": d.boot.SubscriptionID,
			"keyVaultDnsSuffix": cfg.KeyVaultSuffix, "managedHsmDnsSuffix": cfg.ManagedHSMSuffix,
			"postgresDnsSuffix": cfg.PostgresDNSSuffix, "postgresPort": d.postgresPort()}}); err != nil {
		return nil, err
	}
	d.srv = &http.Server{
		Handler:           arm.LimitBodies(d.routeByHost(mux)),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	return d, nil
}

// hosts are the names the HTTPS certificate covers.
func (d *Daemon) hosts() []string {
	h := []string{"localhost", "127.0.0.1", "*." + d.cfg.KeyVaultSuffix, "*." + d.cfg.ManagedHSMSuffix, d.cfg.GraphHost, d.cfg.PortalHost}
	if host, _, err := net.SplitHostPort(d.cfg.Addr); err == nil && host != "" && host != "127.0.0.1" && host != "localhost" && host != "0.0.0.0" {
		h = append(h, host)
	}
	return append(h, d.cfg.ExtraHosts...)
}

// routeByHost sends key-store hosts to the key store (added with the key store) and everything
// else to the main mux.
func (d *Daemon) routeByHost(main http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(host)
		if host == strings.ToLower(d.cfg.GraphHost) && d.graph != nil {
			d.graph.ServeHTTP(w, r)
			return
		}
		if host == d.cfg.PortalHost && d.portal != nil {
			d.portal.ServeHTTP(w, r)
			return
		}
		if strings.HasSuffix(host, "."+d.cfg.KeyVaultSuffix) || strings.HasSuffix(host, "."+d.cfg.ManagedHSMSuffix) {
			if d.portalCORS(w, r) {
				return
			}
			if d.cfg.KeyStoreOutageFile != "" {
				if _, err := os.Stat(d.cfg.KeyStoreOutageFile); err == nil {
					arm.WriteJSON(w, http.StatusServiceUnavailable, arm.ErrorBody{Error: &arm.Error{Code: "ServiceUnavailable",
						Message: "The key store is unavailable (simulated outage)."}})
					return
				}
			}
			if d.keyStore != nil {
				d.keyStore.ServeHTTP(w, r)
				return
			}
			arm.WriteJSON(w, http.StatusNotFound, arm.ErrorBody{Error: &arm.Error{Code: "VaultNotFound",
				Message: fmt.Sprintf("No key store is served at host '%s'.", host)}})
			return
		}
		main.ServeHTTP(w, r)
	})
}

func (d *Daemon) tokenSigningKey() (*rsa.PrivateKey, error) {
	return TokenSigningKey(d.cfg.DataDir, d.box)
}

// TokenSigningKey loads the token-signing key sealed in dataDir, creating it on first use.
func TokenSigningKey(dataDir string, box *seal.Box) (*rsa.PrivateKey, error) {
	path := filepath.Join(dataDir, "keys", "token-signing.key.sealed")
	aad := []byte("auth/token-signing")
	der, err := box.ReadFile(path, aad)
	if errors.Is(err, os.ErrNotExist) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		defer clear(der)
		if err := box.WriteFile(path, der, aad); err != nil {
			return nil, fmt.Errorf("store token-signing key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token-signing key: %w", err)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse token-signing key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("token-signing key is not RSA")
	}
	return rk, nil
}

const bootstrapKey = "bootstrap"

// bootstrapState creates, in one transaction, the tenant's default subscription and the
// administrator principal the first time the daemon starts.
func (d *Daemon) bootstrapState(ctx context.Context) error {
	return d.st.Update(ctx, func(tx store.Tx) error {
		err := store.GetJSON(tx, bootstrapKey, &d.boot)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		d.boot = bootstrap{TenantID: arm.NewGUID(), SubscriptionID: arm.NewGUID(), AdminObjectID: arm.NewGUID(), AdminClientID: arm.NewGUID()}
		if err := resources.PutSubscription(tx, &resources.Subscription{ID: d.boot.SubscriptionID, DisplayName: "pgflex",
			TenantID: d.boot.TenantID, State: "Enabled"}); err != nil {
			return err
		}
		if err := auth.PutPrincipal(tx, &auth.Principal{ObjectID: d.boot.AdminObjectID, ClientID: d.boot.AdminClientID,
			TenantID: d.boot.TenantID, DisplayName: "pgflex-admin", Type: auth.TypeServicePrincipal, Admin: true,
			Created: time.Now().UTC()}); err != nil {
			return err
		}
		d.log.Info("bootstrapped new installation", "tenant", d.boot.TenantID, "subscription", d.boot.SubscriptionID)
		return store.PutJSON(tx, bootstrapKey, d.boot)
	})
}

// writeProfile (re)writes DIR/profile.json. The administrator's secret exists in plaintext only
// there (mode 0600); the store keeps its hash. A lost or stale profile gets a fresh secret.
func (d *Daemon) writeProfile(ctx context.Context) error {
	path := d.ProfilePath()
	want := profile.Profile{
		Endpoint:            d.endpoint,
		CACertificate:       string(d.ca.CertPEM()),
		TenantID:            d.boot.TenantID,
		SubscriptionID:      d.boot.SubscriptionID,
		SubscriptionName:    "pgflex",
		ClientID:            d.boot.AdminClientID,
		TokenEndpoint:       d.issuer.TokenEndpoint(),
		ARMAudience:         ARMAudience,
		KeyVaultDNSSuffix:   d.cfg.KeyVaultSuffix,
		ManagedHSMDNSSuffix: d.cfg.ManagedHSMSuffix,
		GraphEndpoint:       d.cloud.MicrosoftGraph,
		PortalEndpoint:      d.PortalURL(),
		PostgresPort:        d.postgresPort(),
		User:                profile.User{Name: d.boot.AdminClientID, Type: "servicePrincipal"},
	}
	if old, err := profile.Load(path); err == nil && old.ClientID == want.ClientID && old.ClientSecret != "" {
		var valid bool
		_ = d.st.View(ctx, func(tx store.Tx) error {
			p, err := auth.GetPrincipal(tx, d.boot.AdminObjectID)
			valid = err == nil && p.HasSecret() && auth.SecretMatches(p, old.ClientSecret)
			return nil
		})
		if valid {
			want.ClientSecret = old.ClientSecret
			if *old == want {
				return nil
			}
			return profile.Write(path, &want)
		}
	}
	secret, hash := auth.NewSecret()
	if err := d.st.Update(ctx, func(tx store.Tx) error {
		p, err := auth.GetPrincipal(tx, d.boot.AdminObjectID)
		if err != nil {
			return err
		}
		p.SecretHash = hash
		return auth.PutPrincipal(tx, p)
	}); err != nil {
		return fmt.Errorf("set administrator secret: %w", err)
	}
	want.ClientSecret = secret
	return profile.Write(path, &want)
}

// cloudMetadata is this daemon as an Azure cloud: its endpoints (the listener's port on every
// host name, as clients must dial it) and DNS suffixes.
func (d *Daemon) cloudMetadata() cloudmeta.Metadata {
	_, port, _ := net.SplitHostPort(d.ln.Addr().String())
	withPort := func(host string) string {
		if port == "443" {
			return host
		}
		return host + ":" + port
	}
	return cloudmeta.Metadata{
		ResourceManager: d.endpoint + "/",
		LoginEndpoint:   d.endpoint + auth.ADFSPath,
		// az asks for the first; both name the resource manager.
		Audiences:      []string{"https://management.core.windows.net/", ARMAudience + "/"},
		MicrosoftGraph: "https://" + withPort(d.cfg.GraphHost) + "/",
		KeyVaultDNS:    withPort(d.cfg.KeyVaultSuffix),
		ManagedHSMDNS:  withPort(d.cfg.ManagedHSMSuffix),
		PostgresDNS:    d.cfg.PostgresDNSSuffix,
	}
}

// ProfilePath is where the CLI profile is written.
func (d *Daemon) ProfilePath() string { return filepath.Join(d.cfg.DataDir, "profile.json") }

// Endpoint is the daemon's base URL.
func (d *Daemon) Endpoint() string { return d.endpoint }

// Serve answers requests until ctx is cancelled, then shuts down gracefully.
func (d *Daemon) Serve(ctx context.Context) error {
	if err := d.ops.ResumeAll(ctx); err != nil {
		return err
	}
	// Bring every server to the state it should be in, then keep it there; watch CMK keys.
	d.loops.Go(func() { d.servers.RunReconciler(d.base, 10*time.Second) })
	d.loops.Go(func() { d.servers.RunKeyMonitor(d.base) })
	d.loops.Go(func() { d.servers.RunStorageMonitor(d.base) })
	// Backups are looked at every minute, or more often for a short --backup-interval.
	d.loops.Go(func() {
		d.servers.RunBackupScheduler(d.base, min(time.Minute, max(d.cfg.Servers.BackupInterval/4, time.Second)))
	})
	d.log.Info("pgflex is serving", "endpoint", d.endpoint, "data_dir", d.cfg.DataDir, "profile", d.ProfilePath())
	d.loops.Go(func() {
		if err := d.pgRouter.Serve(d.pgln); err != nil {
			d.log.Error("PostgreSQL endpoint", "addr", d.pgln.Addr().String(), "err", err)
		}
	})
	d.log.Info("PostgreSQL endpoint", "addr", d.pgln.Addr().String(), "host_names", "{server}."+d.cfg.PostgresDNSSuffix)
	errc := make(chan error, 1)
	go func() { errc <- d.srv.ServeTLS(d.ln, "", "") }()
	select {
	case err := <-errc:
		d.closeAll()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	d.log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := d.srv.Shutdown(shutCtx)
	// Connections through the PostgreSQL endpoint end with it; the servers keep running.
	d.pgRouter.Close()
	d.cancel()
	d.ops.Shutdown(shutCtx)
	// The loops stop at their next check of base; a data-plane call they are in is cancelled.
	loopsDone := make(chan struct{})
	go func() { d.loops.Wait(); close(loopsDone) }()
	select {
	case <-loopsDone:
	case <-shutCtx.Done():
		d.log.Warn("shutdown: background loops still running at the deadline")
	}
	d.closeAll()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (d *Daemon) closeAll() {
	if d.cancel != nil {
		d.cancel()
	}
	if d.ln != nil {
		d.ln.Close()
	}
	if d.pgRouter != nil {
		d.pgRouter.Close()
	} else if d.pgln != nil {
		d.pgln.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
}

// PortalURL is the web console's address and origin, https://{portal host}:{port}, without
// the port when it is 443 (as browsers write the Origin header).
func (d *Daemon) PortalURL() string {
	if p := d.port(); p != "443" {
		return "https://" + d.cfg.PortalHost + ":" + p
	}
	return "https://" + d.cfg.PortalHost
}

func (d *Daemon) port() string {
	_, port, _ := net.SplitHostPort(d.ln.Addr().String())
	return port
}

// portalCORS lets the portal's page, and no other origin, call the key-store hosts, as Azure's
// Key Vault lets Azure's portal: the page sends its bearer token in a header, never a cookie.
// It answers a preflight request itself (true).
func (d *Daemon) portalCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin != d.PortalURL() {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}
