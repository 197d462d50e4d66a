package flexserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

// DefaultDNSSuffix is the default DNS suffix of server host names: names under .localhost
// resolve to the loopback address (nss-myhostname), as the endpoint's default address is.
const DefaultDNSSuffix = "postgres.localhost"

// HostName is a server's fully qualified domain name: {name}.{DNS suffix}, reached on the
// PostgreSQL endpoint's port (5432), as an Azure server is at {name}.postgres.database.azure.com.
func (s *Service) HostName(name string) string {
	return strings.ToLower(name) + "." + s.cfg.DNSSuffix
}

// Endpoint is what the PostgreSQL endpoint needs of a server to forward a connection to it.
type Endpoint struct {
	Name  string
	UID   string
	State string
	// Addr is where the server's own PostgreSQL listens (host:port): a port this service gave
	// the server, and nothing else.
	Addr string
	// AllowPlaintext: the server's require_secure_transport is off, so the endpoint may
	// forward clients without TLS (named user@server).
	AllowPlaintext bool
}

// ErrNoServer: no server has the name or UID asked for.
var ErrNoServer = errors.New("no such server")

func (s *Server) endpoint() Endpoint {
	return Endpoint{Name: s.Name, UID: s.UID, State: s.State, Addr: net.JoinHostPort(s.listenAddress(), strconv.Itoa(s.Port)),
		AllowPlaintext: s.allowsPlaintext()}
}

// listenAddress is where the server's PostgreSQL listens: the loopback address, also for a
// record written when servers listened on --server-address (the endpoint, which enforces
// firewall rules, must be the only way in).
func (s *Server) listenAddress() string {
	if a, err := netip.ParseAddr(s.ListenAddress); err == nil && a.IsLoopback() {
		return s.ListenAddress
	}
	return "127.0.0.1"
}

// EndpointByName finds a server by its (globally unique) name.
func (s *Service) EndpointByName(ctx context.Context, name string) (Endpoint, error) {
	var srv Server
	err := s.st.View(ctx, func(tx store.Tx) error {
		owner, err := tx.Get(nameKey(name))
		if err != nil {
			return err
		}
		id, err := arm.ParseResourceID(string(owner))
		if err != nil {
			return fmt.Errorf("name index of %q: %w", name, err)
		}
		return store.GetJSON(tx, serverKey(id.SubscriptionID, id.ResourceGroup, id.Name()), &srv)
	})
	if errors.Is(err, store.ErrNotFound) {
		return Endpoint{}, fmt.Errorf("%w: %s", ErrNoServer, name)
	}
	if err != nil {
		return Endpoint{}, err
	}
	return srv.endpoint(), nil
}

// EndpointByUID finds a server by its UID (the data plane names processes' servers by it).
func (s *Service) EndpointByUID(ctx context.Context, uid string) (Endpoint, error) {
	srv, err := s.serverByUID(ctx, uid)
	if err != nil {
		return Endpoint{}, err
	}
	if srv == nil {
		return Endpoint{}, fmt.Errorf("%w: UID %s", ErrNoServer, uid)
	}
	return srv.endpoint(), nil
}
