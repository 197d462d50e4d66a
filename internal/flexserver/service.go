package flexserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgflex/pgflex/internal/activitylog"
	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// Config is the provider's settings (daemon settings).
type Config struct {
	ListenAddress string // address servers listen on; default 127.0.0.1
	PortMin       int    // range of ports given to servers; default 15432–16431
	PortMax       int
	// DNSSuffix makes each server's host name, {server}.{DNSSuffix} (its
	// fullyQualifiedDomainName), under which the PostgreSQL endpoint reaches it; default
	// DefaultDNSSuffix.
	DNSSuffix string
	// BackupInterval is the time between automatic full backups; default 24 h. WAL is archived
	// continuously in between.
	BackupInterval time.Duration
	// StorageCheckInterval is the time between two measurements of each running server's
	// storage (see RunStorageMonitor); default 5 s.
	StorageCheckInterval time.Duration
}

// Deps are the parts of pgflex the provider works with.
type Deps struct {
	Store       store.Store
	Operations  *arm.Operations
	Groups      *resources.Service
	DataPlane   DataPlane
	ServiceKeys dataenc.ServiceKeys
	Identities  IdentityDirectory
	KeyStores   KeyStoreDirectory
	Tokens      IdentityTokens
	// KeyStoreHTTP reaches key stores over HTTPS (trusting pgflex's CA).
	KeyStoreHTTP *http.Client
	Events       *activitylog.Log
	Metrics      prometheus.Registerer
	Monitor      MonitorConfig
	Log          *slog.Logger
	// Samples records the key monitor's checks and the servers' state over time, for the
	// Microsoft.Insights metrics API (optional).
	Samples SampleRecorder
}

// Service is the Microsoft.DBforPostgreSQL provider.
type Service struct {
	cfg        Config
	st         store.Store
	ops        *arm.Operations
	groups     *resources.Service
	dp         DataPlane
	smk        dataenc.ServiceKeys
	identities IdentityDirectory
	keyStores  KeyStoreDirectory
	tokens     IdentityTokens
	keyHTTP    *http.Client
	events     *activitylog.Log
	log        *slog.Logger
	now        func() time.Time
	portFree   func(addr string, port int) bool
	monitor    *keyMonitor
	storage    *storageMonitor

	// locks holds one *sync.Mutex per server (by lower-case resource id; never removed, one
	// small mutex per server name ever used). See serverLock.
	locks sync.Map
	// backupLocks holds one *sync.Mutex per stanza (server UID): see backupLock.
	backupLocks sync.Map
	// firewall is the endpoint's copy of each server's firewall (see firewallCache).
	firewall firewallCache
	// paramLocks holds one *sync.Mutex per server (by lower-case resource id): see
	// applyParameters.
	paramLocks sync.Map
}

// New makes the provider and registers its operation resumers.
func New(cfg Config, d Deps) *Service {
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = "127.0.0.1"
	}
	if cfg.PortMin == 0 {
		cfg.PortMin, cfg.PortMax = 15432, 16431
	}
	if cfg.DNSSuffix == "" {
		cfg.DNSSuffix = DefaultDNSSuffix
	}
	if cfg.BackupInterval <= 0 {
		cfg.BackupInterval = 24 * time.Hour
	}
	s := &Service{cfg: cfg, st: d.Store, ops: d.Operations, groups: d.Groups, dp: d.DataPlane, smk: d.ServiceKeys,
		identities: d.Identities, keyStores: d.KeyStores, tokens: d.Tokens, keyHTTP: d.KeyStoreHTTP, events: d.Events, log: d.Log,
		now: time.Now, portFree: portFree}
	if d.Monitor.Interval <= 0 {
		d.Monitor.Interval = 5 * time.Second
	}
	if d.Monitor.Grace <= 0 {
		d.Monitor.Grace = time.Minute
	}
	s.monitor = &keyMonitor{s: s, cfg: d.Monitor, metrics: newMonitorMetrics(d.Metrics), samples: d.Samples,
		next: map[string]time.Time{}, firstFailure: map[string]time.Time{}}
	s.storage = newStorageMonitor(s, cfg.StorageCheckInterval, d.Samples)
	ops, groups := d.Operations, d.Groups
	ops.RegisterResumer(kindCreate, s.resumeCreate)
	ops.RegisterResumer(kindDelete, s.runDelete)
	ops.RegisterResumer(kindStart, s.runStart)
	ops.RegisterResumer(kindStop, s.runStop)
	ops.RegisterResumer(kindRestart, s.runRestart)
	ops.RegisterResumer(kindUpdate, s.runUpdate)
	ops.RegisterResumer(kindBackup, interruptedBackup)
	ops.RegisterResumer(kindBackupDelete, interruptedBackup)
	groups.AddMember(resources.Member{Name: "flexibleServers", Order: 10, DeleteAllInGroup: s.deleteAllInGroup})
	return s
}

// RegisterRoutes adds the provider's ARM routes.
func (s *Service) RegisterRoutes(rt *arm.Router) {
	h := func(method, pattern string, fn arm.HandlerFunc) {
		rt.Handle(arm.Route{Method: method, Pattern: pattern, ResourceType: ResourceType, APIVersions: APIVersions, Handler: fn})
	}
	srv := "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{serverName}"
	h(http.MethodPut, srv, s.createServer)
	h(http.MethodGet, srv, s.getServer)
	h(http.MethodPatch, srv, s.updateServer)
	h(http.MethodDelete, srv, s.deleteServer)
	h(http.MethodPost, srv+"/start", s.startServer)
	h(http.MethodPost, srv+"/stop", s.stopServer)
	h(http.MethodPost, srv+"/restart", s.restartServer)
	h(http.MethodGet, "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DBforPostgreSQL/flexibleServers", s.listByGroup)
	h(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/flexibleServers", s.listBySubscription)
	h(http.MethodPost, "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/checkNameAvailability", s.checkNameAvailability)
	h(http.MethodPost, "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/locations/{locationName}/checkNameAvailability", s.checkNameAvailability)
	h(http.MethodGet, "/subscriptions/{subscriptionId}/providers/Microsoft.DBforPostgreSQL/locations/{locationName}/capabilities", s.capabilities)
	rt.Handle(arm.Route{Method: http.MethodGet, Pattern: srv + "/capabilities", ResourceType: ResourceType,
		APIVersions: versionsWhere(func(v apiShape) bool { return v.serverCapabilities }), Handler: s.serverCapabilities})
	h(http.MethodPut, srv+"/databases/{databaseName}", s.createDatabase)
	h(http.MethodGet, srv+"/databases/{databaseName}", s.getDatabase)
	h(http.MethodDelete, srv+"/databases/{databaseName}", s.deleteDatabase)
	h(http.MethodGet, srv+"/databases", s.listDatabases)
	h(http.MethodPut, srv+"/firewallRules/{firewallRuleName}", s.createFirewallRule)
	h(http.MethodGet, srv+"/firewallRules/{firewallRuleName}", s.getFirewallRule)
	h(http.MethodDelete, srv+"/firewallRules/{firewallRuleName}", s.deleteFirewallRule)
	h(http.MethodGet, srv+"/firewallRules", s.listFirewallRules)
	h(http.MethodGet, srv+"/configurations", s.listParameters)
	h(http.MethodGet, srv+"/configurations/{configurationName}", s.getParameter)
	h(http.MethodPut, srv+"/configurations/{configurationName}", s.setParameter)
	h(http.MethodPatch, srv+"/configurations/{configurationName}", s.setParameter)
	h(http.MethodGet, srv+"/backups", s.listBackups)
	h(http.MethodGet, srv+"/backups/{backupName}", s.getBackup)
	onDemand := versionsWhere(func(v apiShape) bool { return v.onDemandBackups })
	rt.Handle(arm.Route{Method: http.MethodPut, Pattern: srv + "/backups/{backupName}", ResourceType: ResourceType, APIVersions: onDemand, Handler: s.createBackup})
	rt.Handle(arm.Route{Method: http.MethodDelete, Pattern: srv + "/backups/{backupName}", ResourceType: ResourceType, APIVersions: onDemand, Handler: s.deleteBackup})
}

// SampleRecorder keeps samples of a resource's metrics (insights.Metrics).
type SampleRecorder interface {
	Record(resourceID, metric string, t time.Time, v float64)
	// Forget drops a deleted server's history, so that months of creating and deleting
	// servers do not grow the daemon's memory.
	Forget(resourceID string)
}

// Locate returns the region and creation time of the live server whose resource id is id, or
// ARM's 404.
func (s *Service) Locate(ctx context.Context, id string) (string, time.Time, error) {
	rid, err := arm.ParseResourceID(id)
	if err != nil || !rid.IsType(ResourceType) {
		return "", time.Time{}, arm.Errorf(http.StatusNotFound, "ResourceNotFound", "The resource '%s' was not found.", id)
	}
	srv, err := s.load(ctx, rid)
	if err != nil {
		return "", time.Time{}, err
	}
	return srv.Location, srv.Created, nil
}

// serverID builds the id from the route parameters.
func serverIDFrom(r *arm.Request) arm.ResourceID {
	return arm.NewResourceID(r.Param("subscriptionId"), r.Param("resourceGroupName"), Namespace, "flexibleServers", r.Param("serverName"))
}

// notFound is ARM's 404 for a server.
func notFound(id arm.ResourceID) *arm.Error { return arm.ResourceNotFound(id) }

// load reads a server by id.
func (s *Service) load(ctx context.Context, id arm.ResourceID) (*Server, error) {
	if _, err := s.groups.Group(ctx, id.SubscriptionID, id.ResourceGroup); err != nil {
		return nil, err
	}
	var srv Server
	err := s.st.View(ctx, func(tx store.Tx) error {
		return store.GetJSON(tx, serverKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &srv)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	return &srv, nil
}

// serverLock is what serialises everything that acts on one server outside its running
// operation: a request holds it (Lock) from checking the server to recording the operation it
// starts; the reconciler and the key monitor hold it (TryLock, skipping a busy server) while they
// re-read the server and act on its data plane. An operation owns the server until it clears
// Server.Operation, which they check under the lock, so no two of them drive one data plane at
// once and none acts on a stale copy of the server.
func (s *Service) serverLock(id arm.ResourceID) *sync.Mutex {
	mu, _ := s.locks.LoadOrStore(id.Key(), &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// reload reads a server's current record, without the resource-group check of load; nil when
// it no longer exists.
func (s *Service) reload(ctx context.Context, id arm.ResourceID) (*Server, error) {
	var srv Server
	err := s.st.View(ctx, func(tx store.Tx) error {
		return store.GetJSON(tx, serverKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &srv)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &srv, nil
}

// mutate reads, changes and writes a server in one transaction.
func (s *Service) mutate(ctx context.Context, id arm.ResourceID, fn func(*Server) error) (*Server, error) {
	// The endpoint's firewall cache drops its copy once the write is done (publicNetworkAccess
	// and the rules live in the record).
	defer s.firewall.invalidate(id.Name())
	var srv Server
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := store.GetJSON(tx, serverKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &srv); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFound(id)
			}
			return err
		}
		if err := fn(&srv); err != nil {
			return err
		}
		return store.PutJSON(tx, serverKey(srv.SubscriptionID, srv.ResourceGroup, srv.Name), &srv)
	})
	if err != nil {
		return nil, err
	}
	return &srv, nil
}

// busy is the conflict answered while another operation runs on the server.
func busy(srv *Server) *arm.Error {
	return arm.Conflict("ServerBusy", "The server '%s' is busy with another operation (state %s). Retry after it completes.", srv.Name, srv.State)
}

// wrapper returns the key wrapper for a server's primary key.
func (s *Service) wrapper(srv *Server) (dataenc.Wrapper, error) {
	switch srv.Encryption.Type {
	case EncSystemManaged:
		return dataenc.ServiceManaged{Keys: s.smk, Region: srv.Location}, nil
	case EncAzureKeyVault:
		return s.customerWrapper(srv, srv.Encryption.PrimaryKeyURI, srv.Encryption.PrimaryIdentityID)
	}
	return nil, fmt.Errorf("data encryption type %q has no key wrapper", srv.Encryption.Type)
}

// allocatePort finds a port in the range that no server holds and nothing listens on.
func (s *Service) allocatePort(tx store.Tx) (int, error) {
	for p := s.cfg.PortMin; p <= s.cfg.PortMax; p++ {
		if _, err := tx.Get(portKey(p)); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		if !s.portFree(s.cfg.ListenAddress, p) {
			continue
		}
		return p, nil
	}
	return 0, arm.Errorf(http.StatusServiceUnavailable, "NoPortAvailable",
		"No port is free in the range %d-%d for a new server. Delete unused servers or widen the daemon's port range.", s.cfg.PortMin, s.cfg.PortMax)
}

func portFree(addr string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (s *Service) listByGroup(w http.ResponseWriter, r *arm.Request) {
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	if _, err := s.groups.Group(r.Context(), sub, rg); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.list(w, r, "pgserver/"+strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
}

func (s *Service) listBySubscription(w http.ResponseWriter, r *arm.Request) {
	sub := r.Param("subscriptionId")
	if _, err := s.groups.Subscription(r.Context(), sub); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	s.list(w, r, "pgserver/"+strings.ToLower(sub)+"/")
}

func (s *Service) list(w http.ResponseWriter, r *arm.Request, prefix string) {
	var servers []Server
	if err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		servers, err = store.ListJSON[Server](tx, prefix)
		return err
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := make([]map[string]any, 0, len(servers))
	for i := range servers {
		servers[i].fqdn = s.HostName(servers[i].Name)
		servers[i].storageUsage = s.storage.latest(servers[i].UID)
		views = append(views, servers[i].view(shapeOf(r.APIVersion)))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) getServer(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.load(r.Context(), serverIDFrom(r))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	srv.fqdn = s.HostName(srv.Name)
	srv.storageUsage = s.storage.latest(srv.UID)
	arm.WriteJSON(w, http.StatusOK, srv.view(shapeOf(r.APIVersion)))
}
