package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgflex/pgflex/internal/dataplane"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/pgrouter"
)

// The PostgreSQL endpoint: one listener (--postgres-addr, port 5432 by default) through which
// every server is reached by its host name, {server}.{--postgres-dns-suffix}, as Azure's are
// (package pgrouter). Each server's PostgreSQL keeps listening on a port of its own, which the
// endpoint forwards to and which is not published.

// listenPostgres binds the endpoint's listener (before the profile is written: it names the
// port).
func (d *Daemon) listenPostgres() error {
	ln, err := net.Listen("tcp", d.cfg.PostgresAddr)
	if err != nil {
		return fmt.Errorf("listen on %s for the PostgreSQL endpoint (--postgres-addr chooses another address): %w", d.cfg.PostgresAddr, err)
	}
	d.pgln = ln
	return nil
}

// postgresPort is the endpoint's port.
func (d *Daemon) postgresPort() int { return d.pgln.Addr().(*net.TCPAddr).Port }

// PostgresPort is the PostgreSQL endpoint's port.
func (d *Daemon) PostgresPort() int { return d.postgresPort() }

// PostgresDNSSuffix is the DNS suffix of the servers' host names.
func (d *Daemon) PostgresDNSSuffix() string { return d.cfg.PostgresDNSSuffix }

// openPostgresEndpoint makes the router over the servers and the data plane.
func (d *Daemon) openPostgresEndpoint() error {
	leaf, err := d.ca.Issue("pgflex postgres endpoint", d.postgresHosts())
	if err != nil {
		return fmt.Errorf("PostgreSQL endpoint certificate: %w", err)
	}
	defer clear(leaf.KeyPEM)
	cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		return fmt.Errorf("PostgreSQL endpoint certificate: %w", err)
	}
	d.pgRouter, err = pgrouter.New(pgrouter.Config{
		Suffix:      d.cfg.PostgresDNSSuffix,
		Aliases:     d.cfg.PostgresDNSAliases,
		Directory:   endpointDirectory{servers: d.servers, dp: d.dataPlane},
		Certificate: cert,
		// Firewall rules decide which clients reach which server: before the server is
		// connected, and for cancel requests too.
		Admit:  firewall{servers: d.servers}.admit,
		Logger: d.log,
	})
	if err != nil {
		return err
	}
	d.metrics.MustRegister(routerMetrics(d.pgRouter)...)
	return nil
}

// postgresHosts are the names the endpoint's own certificate covers. It is shown only to a
// client the endpoint refuses (see pgrouter), so that a client verifying the host name
// (sslmode=verify-full) reads the refusal rather than a certificate error.
func (d *Daemon) postgresHosts() []string {
	// Not the aliases: Azure's own domain gets no certificate from pgflex's CA (a client of an
	// alias name uses sslmode=require, as az's strings say).
	hosts := []string{"*." + d.cfg.PostgresDNSSuffix, "localhost", "127.0.0.1", "::1"}
	if a, ok := d.pgln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() && !a.IP.IsLoopback() {
		hosts = append(hosts, a.IP.String())
	}
	return hosts
}

// routerMetrics exports the endpoint's counters.
func routerMetrics(r *pgrouter.Router) []prometheus.Collector {
	counter := func(name, help string, v func(pgrouter.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgflex_postgres_endpoint_" + name, Help: help},
			func() float64 { return float64(v(r.Stats())) })
	}
	gauge := func(name, help string, v func(pgrouter.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgflex_postgres_endpoint_" + name, Help: help},
			func() float64 { return float64(v(r.Stats())) })
	}
	return []prometheus.Collector{
		counter("accepted_total", "Connections accepted by the PostgreSQL endpoint.", func(s pgrouter.Stats) uint64 { return s.Accepted }),
		counter("routed_total", "Connections forwarded to a server.", func(s pgrouter.Stats) uint64 { return s.Routed }),
		counter("refused_total", "Connections answered with an error.", func(s pgrouter.Stats) uint64 { return s.Refused }),
		counter("cancel_requests_total", "Cancel requests forwarded to a server.", func(s pgrouter.Stats) uint64 { return s.Cancels }),
		counter("shed_total", "Connections refused at once: their client address had too many connections being set up.", func(s pgrouter.Stats) uint64 { return s.Shed }),
		gauge("pending", "Connections before their splice.", func(s pgrouter.Stats) int64 { return s.Pending }),
		gauge("spliced", "Connections being forwarded.", func(s pgrouter.Stats) int64 { return s.Spliced }),
	}
}

// endpointDirectory finds servers for the endpoint: by name in the provider's records, and by
// process through the data plane (whose accounts run each server's PostgreSQL).
type endpointDirectory struct {
	servers *flexserver.Service
	dp      *dataplane.Manager
}

func (e endpointDirectory) Lookup(ctx context.Context, name string) (pgrouter.Target, error) {
	ep, err := e.servers.EndpointByName(ctx, name)
	if errors.Is(err, flexserver.ErrNoServer) {
		return pgrouter.Target{}, pgrouter.NotFound(name)
	}
	if err != nil {
		return pgrouter.Target{}, err
	}
	return e.target(ep)
}

func (e endpointDirectory) LookupProcess(ctx context.Context, pid uint32) (pgrouter.Target, error) {
	uid, err := e.dp.ServerOfProcess(int(pid))
	if err != nil {
		return pgrouter.Target{}, err
	}
	ep, err := e.servers.EndpointByUID(ctx, uid)
	if err != nil {
		return pgrouter.Target{}, err
	}
	return e.target(ep)
}

// target is where a server is reached, or why it is not: only a server that runs (or is busy
// with an operation that keeps it running) is connected, and only at a port its own account
// holds.
func (e endpointDirectory) target(ep flexserver.Endpoint) (pgrouter.Target, error) {
	if ref := stateRefusal(ep.Name, ep.State); ref != nil {
		return pgrouter.Target{}, ref
	}
	owner, err := e.dp.ServerAccountUID(ep.UID)
	if err != nil {
		return pgrouter.Target{}, err
	}
	return pgrouter.Target{Name: ep.Name, Addr: ep.Addr, Owner: owner, AllowPlaintext: ep.AllowPlaintext}, nil
}

// stateRefusal says why a server in state is not connected, or nil when it is. Servers in
// Starting, Restarting or Updating are tried: their PostgreSQL may be up (if not, the client is
// told the server does not accept connections).
func stateRefusal(name, state string) *pgrouter.Refusal {
	switch state {
	case flexserver.StateReady, flexserver.StateStarting, flexserver.StateRestarting, flexserver.StateUpdating:
		return nil
	case flexserver.StateStopped, flexserver.StateStopping:
		return pgrouter.Unavailable(name, "is stopped", "Start the server, then connect again.")
	case flexserver.StateProvisioning:
		return pgrouter.Unavailable(name, "is being created", "Connect once the server is Ready.")
	case flexserver.StateDropping:
		return pgrouter.Unavailable(name, "is being deleted", "")
	case flexserver.StateInaccessible:
		return pgrouter.Unavailable(name, "is inaccessible", "Its data encryption key cannot be used; the server's owner sees why in its state.")
	}
	return pgrouter.Unavailable(name, "is not accepting connections (state "+strings.ToLower(state)+")", "")
}

// firewall enforces each server's firewall rules and public network access at the endpoint,
// from the provider's in-memory copy (flexserver.Service.Admission), which a rule change updates
// before its request is answered. Loopback clients get no exception: a client on the daemon's
// host needs a rule for 127.0.0.1 as any other does for its address.
type firewall struct {
	servers *flexserver.Service
}

func (f firewall) admit(ctx context.Context, client netip.AddrPort, t pgrouter.Target) error {
	a, err := f.servers.Admission(ctx, t.Name)
	if err != nil {
		return fmt.Errorf("firewall of server %q: %w", t.Name, err)
	}
	if a.Admits(client.Addr()) {
		return nil
	}
	// Azure answers a client outside the rules as pg_hba.conf does, also when public network
	// access is disabled.
	return pgrouter.NoHBAEntry(client.Addr())
}
