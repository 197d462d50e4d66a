// Package pgrouter is the one PostgreSQL endpoint through which every server is reached as
// Azure's servers are, {server}.{suffix}:5432, while each server's PostgreSQL listens on a
// port of its own.
//
// It routes by the TLS server name (SNI), which libpq (14 and later), pgx, JDBC, Npgsql and
// node-postgres send for a host name. It reads the client's SSLRequest, answers 'S', reads the
// ClientHello without answering it, finds the server by the first label of the name, opens
// that server's port, sends it an SSLRequest, and on its 'S' forwards the ClientHello and
// splices the two connections. TLS runs end to end between the client and PostgreSQL: the
// router never holds a key of the session nor a byte of its plaintext.
//
// Connections it cannot route get a PostgreSQL error the client prints: before TLS (a
// client without TLS) in plain text, as PostgreSQL's pg_hba.conf refusal does; after the
// ClientHello (no server name, an unknown or stopped server) over a TLS session the router
// completes itself with a certificate for *.{suffix} from pgflex's CA, in which nothing but the
// client's startup message (user and database names; never a password) is read.
//
// Cancel requests come unencrypted on a new connection, with no server name: the router finds
// the server by the process the request names (its PostgreSQL backends run under that
// server's own OS account), and the server checks the request's secret key as always.
package pgrouter

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgflex/pgflex/internal/procfs"
)

// Target is a server the router forwards to.
type Target struct {
	Name string // the server's name: the first label of its host name
	Addr string // host:port of the server's own PostgreSQL
	// Owner is the OS account (uid) that runs the server's PostgreSQL: the router hands a
	// client only to a port whose socket that account owns, never to another process that
	// took the port (a server's port is freed while it restarts or after it is deleted).
	Owner uint32
	// AllowPlaintext: the server accepts connections without TLS (require_secure_transport
	// off), named by a startup user "user@server" (plaintext.go).
	AllowPlaintext bool
}

// Directory finds servers. Its errors that are *Refusal reach the client as they are.
type Directory interface {
	// Lookup returns the server named name (lower case), if it accepts connections.
	Lookup(ctx context.Context, name string) (Target, error)
	// LookupProcess returns the server whose PostgreSQL runs process pid (a cancel request).
	LookupProcess(ctx context.Context, pid uint32) (Target, error)
}

// Config is the router's settings.
type Config struct {
	// Suffix is the DNS suffix of server host names: {server}.{Suffix}.
	Suffix string
	// Aliases are further suffixes whose names route as {server}.{Suffix} does: Azure's own,
	// postgres.database.azure.com, which az's show-connection-string writes whatever the cloud.
	Aliases   []string
	Directory Directory
	// Certificate covers *.{Suffix}; the router presents it only to refuse a connection in
	// words (see the package comment), never on a connection it forwards.
	Certificate tls.Certificate
	// Admit, when set, decides whether client may reach t (after the server is found, before
	// it is connected): the place for firewall rules. A *Refusal error is shown to the client.
	Admit func(ctx context.Context, client netip.AddrPort, t Target) error
	// HandshakeTimeout bounds everything before the splice: the client's messages and
	// ClientHello, the lookup, connecting the server. Default 10 s.
	HandshakeTimeout time.Duration
	// FirstMessageTimeout bounds the wait for each of the client's first two messages (its
	// SSLRequest, then its ClientHello), which a client sends at once. Default 3 s.
	FirstMessageTimeout time.Duration
	// MaxPending is how many connections may be before the splice at once; beyond it the
	// router stops accepting (the kernel's backlog queues the rest). Default 1024.
	MaxPending int
	// MaxPendingPerClient is how many of those may come from one client address (one /64 for
	// IPv6): a client beyond it is refused at once, so that no client holds the endpoint
	// from the others. Default 32.
	MaxPendingPerClient int
	// Dial connects servers (default: a net.Dialer).
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
}

// Stats are the router's counters.
type Stats struct {
	Accepted uint64 // connections accepted
	Routed   uint64 // connections forwarded to a server
	Refused  uint64 // connections answered with an error
	Cancels  uint64 // cancel requests forwarded
	Shed     uint64 // connections refused at once: their client had too many pending
	Pending  int64  // connections before the splice now
	Spliced  int64  // connections being forwarded now
}

// Router serves the endpoint.
type Router struct {
	cfg     Config
	log     *slog.Logger
	pending chan struct{} // one token per connection before its splice
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	// perClient counts the pending connections of each client address (clientKey).
	perClient map[netip.Addr]int

	accepted, routed, refused, cancels, shed atomic.Uint64
	pendingN, splicedN                       atomic.Int64
}

// New makes a router; Serve runs it.
func New(cfg Config) (*Router, error) {
	if cfg.Suffix == "" || strings.HasPrefix(cfg.Suffix, ".") || strings.HasSuffix(cfg.Suffix, ".") {
		return nil, fmt.Errorf("pgrouter: DNS suffix %q: a domain name such as postgres.localhost is required", cfg.Suffix)
	}
	if cfg.Directory == nil {
		return nil, errors.New("pgrouter: a directory of servers is required")
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("pgrouter: a certificate for refusals is required")
	}
	cfg.Suffix = strings.ToLower(cfg.Suffix)
	cfg.Aliases = slices.Clone(cfg.Aliases)
	for i, a := range cfg.Aliases {
		if a == "" || strings.HasPrefix(a, ".") || strings.HasSuffix(a, ".") {
			return nil, fmt.Errorf("pgrouter: DNS suffix alias %q: a domain name such as postgres.database.azure.com is required", a)
		}
		cfg.Aliases[i] = strings.ToLower(a)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.FirstMessageTimeout <= 0 {
		cfg.FirstMessageTimeout = 3 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	if cfg.MaxPendingPerClient <= 0 {
		cfg.MaxPendingPerClient = 32
	}
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Router{cfg: cfg, log: cfg.Logger, pending: make(chan struct{}, cfg.MaxPending), ctx: ctx, cancel: cancel,
		lns: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}, perClient: map[netip.Addr]int{}}, nil
}

// Stats returns the counters.
func (r *Router) Stats() Stats {
	return Stats{Accepted: r.accepted.Load(), Routed: r.routed.Load(), Refused: r.refused.Load(), Cancels: r.cancels.Load(),
		Shed: r.shed.Load(), Pending: r.pendingN.Load(), Spliced: r.splicedN.Load()}
}

// track registers a listener or connection for Close (and counts its goroutine), or reports
// false once the router is closed.
func (r *Router) track(ln net.Listener, c net.Conn, goroutine bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if ln != nil {
		r.lns[ln] = struct{}{}
	}
	if c != nil {
		r.conns[c] = struct{}{}
	}
	if goroutine {
		r.wg.Add(1)
	}
	return true
}

func (r *Router) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

// Serve accepts connections on ln until Close, then returns nil.
func (r *Router) Serve(ln net.Listener) error {
	if !r.track(ln, nil, true) {
		ln.Close()
		return nil
	}
	defer r.wg.Done()
	var backoff time.Duration
	for {
		// A token before Accept: at MaxPending the router leaves new connections in the
		// kernel's backlog instead of holding more of them itself.
		select {
		case r.pending <- struct{}{}:
		case <-r.ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-r.pending
			if r.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait a little, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.log.Warn("postgres endpoint: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-r.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if !r.track(nil, c, true) {
			c.Close()
			<-r.pending
			return nil
		}
		r.accepted.Add(1)
		key := clientKey(c)
		if !r.holdClient(key) {
			// Answered in PostgreSQL's words without reading anything: libpq prints an
			// error sent in place of the answer to its SSLRequest.
			r.shed.Add(1)
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(errorResponse(&Refusal{Code: CodeTooManyConnections,
				Message: "too many connections are being set up from your address", Hint: "Retry in a moment."}))
			r.untrack(c)
			r.wg.Done()
			<-r.pending
			continue
		}
		r.pendingN.Add(1)
		go r.handle(c, key)
	}
}

// clientKey is what MaxPendingPerClient counts by: the client's address, or its /64 for IPv6
// (one host's share of addresses).
func clientKey(c net.Conn) netip.Addr {
	a := clientAddr(c).Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// holdClient counts one more pending connection of key, unless it has its share already.
func (r *Router) holdClient(key netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perClient[key] >= r.cfg.MaxPendingPerClient {
		return false
	}
	r.perClient[key]++
	return true
}

func (r *Router) releaseClient(key netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perClient[key]--; r.perClient[key] <= 0 {
		delete(r.perClient, key)
	}
}

// Close stops accepting, ends every connection (spliced ones too: the servers keep running,
// their clients reconnect when the endpoint is back) and waits for every goroutine of the
// router to end.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	r.cancel()
	for ln := range r.lns {
		ln.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// handle serves one client connection.
func (r *Router) handle(c net.Conn, key netip.Addr) {
	defer r.wg.Done()
	defer r.untrack(c)
	spliced := false
	release := func() {
		if !spliced {
			<-r.pending
			r.pendingN.Add(-1)
			r.releaseClient(key)
		}
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	backend := r.negotiate(ctx, c)
	if backend == nil {
		return
	}
	defer r.untrack(backend)
	c.SetDeadline(time.Time{})
	backend.SetDeadline(time.Time{})
	release()
	spliced = true
	r.routed.Add(1)
	r.splicedN.Add(1)
	defer r.splicedN.Add(-1)
	splice(c, backend)
}

// negotiate answers the client's first messages. It returns the server's connection, ready to
// splice, or nil when it has dealt with the connection (refused it, forwarded a cancel).
func (r *Router) negotiate(ctx context.Context, c net.Conn) net.Conn {
	client := clientAddr(c)
	for gssTried := false; ; {
		r.firstMessageDeadline(ctx, c)
		msg, err := readStartup(c)
		if err != nil {
			if errors.Is(err, errProtocol) {
				r.refuse(c, &Refusal{Code: CodeProtocol, Message: "invalid startup packet layout"})
			}
			r.log.Debug("postgres endpoint: no startup message", "client", client, "err", err)
			return nil
		}
		switch {
		case msg.code == codeGSSENC && len(msg.body) == 4 && !gssTried:
			// No GSSAPI encryption here (nor on Azure): 'N', and the client goes on with TLS.
			gssTried = true
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil
			}
		case msg.code == codeSSL && len(msg.body) == 4:
			if _, err := c.Write([]byte{'S'}); err != nil {
				return nil
			}
			r.firstMessageDeadline(ctx, c)
			return r.routeTLS(ctx, c, client)
		case msg.code == codeCancel:
			r.forwardCancel(ctx, client, msg)
			return nil
		case msg.code>>16 == 3:
			return r.routePlaintext(ctx, c, client, msg) // plaintext.go
		default:
			r.refuse(c, &Refusal{Code: CodeProtocol, Message: fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0",
				msg.code>>16, msg.code&0xffff)})
			return nil
		}
	}
}

// firstMessageDeadline gives the client FirstMessageTimeout (within the handshake's deadline)
// for its next message: a client sends its SSLRequest and ClientHello at once, and one that
// idles must not hold a pending slot for the whole handshake timeout.
func (r *Router) firstMessageDeadline(ctx context.Context, c net.Conn) {
	d := time.Now().Add(r.cfg.FirstMessageTimeout)
	if hd, ok := ctx.Deadline(); ok && hd.Before(d) {
		d = hd
	}
	c.SetReadDeadline(d)
}

// plaintextRefusal is pg_hba.conf's refusal of a connection without TLS, as Azure answers it.
func plaintextRefusal(client netip.AddrPort, msg startup) *Refusal {
	p, _ := msg.params()
	db := p["database"]
	if db == "" {
		db = p["user"]
	}
	return &Refusal{Code: CodeNotAuthorized,
		Message: fmt.Sprintf("no pg_hba.conf entry for host %q, user %q, database %q, no encryption", client.Addr().String(), p["user"], db),
		Hint:    "Servers accept TLS connections only: connect with sslmode=require (or verify-full)."}
}

// refuse sends a refusal before TLS and ends the connection.
func (r *Router) refuse(c net.Conn, ref *Refusal) {
	r.refused.Add(1)
	c.Write(errorResponse(ref))
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
}

// routeTLS reads the ClientHello, finds the server, connects it and hands it the hello.
func (r *Router) routeTLS(ctx context.Context, c net.Conn, client netip.AddrPort) net.Conn {
	sni, hello, err := peekClientHello(c)
	if err != nil {
		// Not TLS after an SSLRequest: nothing the client could read.
		r.log.Debug("postgres endpoint: no client hello", "client", client, "err", err)
		return nil
	}
	// The rest (lookup, connecting the server, a refusal) has the handshake's deadline.
	if d, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(d)
	}
	name, ref := r.serverName(sni)
	var t Target
	if ref == nil {
		t, err = r.cfg.Directory.Lookup(ctx, name)
		ref = r.refusal(err, name)
	}
	if ref == nil && r.cfg.Admit != nil {
		ref = r.refusal(r.cfg.Admit(ctx, client, t), name)
	}
	if ref == nil {
		backend, err := r.connect(ctx, t, hello)
		if err == nil {
			return backend
		}
		r.log.Warn("postgres endpoint: connect server", "server", name, "err", err)
		ref = Unavailable(name, "is not accepting connections", "Retry in a moment.")
	}
	r.log.Debug("postgres endpoint: refused", "client", client, "server_name", sni, "reason", ref.Message)
	r.refuseTLS(c, hello, ref)
	return nil
}

// refusal turns a lookup's or admission's error into what the client is told.
func (r *Router) refusal(err error, name string) *Refusal {
	if err == nil {
		return nil
	}
	var ref *Refusal
	if errors.As(err, &ref) {
		return ref
	}
	r.log.Warn("postgres endpoint: look up server", "server", name, "err", err)
	return &Refusal{Code: CodeConnectionFault, Message: fmt.Sprintf("server %q cannot be reached now", name), Hint: "Retry in a moment."}
}

// serverName takes the server's name from the TLS server name: exactly one DNS label before
// the suffix.
func (r *Router) serverName(sni string) (string, *Refusal) {
	if sni == "" {
		return "", &Refusal{Code: CodeRejected,
			Message: "no server name: connect to the server by its host name, {server}." + r.cfg.Suffix,
			Hint:    "Servers are told apart by the TLS server name (SNI), which clients send for a host name but not for an IP address; libpq sends it from version 14 on (sslsni=1)."}
	}
	host := strings.ToLower(sni)
	label, ok := strings.CutSuffix(host, "."+r.cfg.Suffix)
	for _, a := range r.cfg.Aliases {
		if ok {
			break
		}
		label, ok = strings.CutSuffix(host, "."+a)
	}
	if !ok || !validLabel(label) {
		return "", &Refusal{Code: CodeRejected,
			Message: fmt.Sprintf("%q is not the host name of a server: servers are reached as {server}.%s", sni, r.cfg.Suffix)}
	}
	return label, nil
}

// validLabel: letters, digits and hyphens, 1 to 63 of them, not starting or ending with a
// hyphen (server names are a subset).
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
			return false
		}
	}
	return true
}

// connect opens the server's port, asks it for TLS and forwards the client's ClientHello.
func (r *Router) connect(ctx context.Context, t Target, hello []byte) (net.Conn, error) {
	b, err := r.cfg.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	if !r.track(nil, b, false) {
		b.Close()
		return nil, net.ErrClosed
	}
	ok := false
	defer func() {
		if !ok {
			r.untrack(b)
		}
	}()
	if d, has := ctx.Deadline(); has {
		b.SetDeadline(d)
	}
	if _, err := b.Write(sslRequest); err != nil {
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(b, answer[:]); err != nil {
		return nil, err
	}
	if answer[0] != 'S' {
		return nil, fmt.Errorf("the server answered %q to an SSLRequest", answer[0])
	}
	// Nothing of the client's reaches a port the server's own account does not hold.
	if err := r.checkOwner(ctx, b, t); err != nil {
		return nil, err
	}
	if _, err := b.Write(hello); err != nil {
		return nil, err
	}
	ok = true
	return b, nil
}

// checkOwner makes sure the server's end of b belongs to t.Owner, the account that runs the
// server's PostgreSQL, as the kernel records it (an accepted socket is its listener's
// account's). On loopback the server's end may become established a moment after the
// router's: it is looked for until the handshake's deadline.
func (r *Router) checkOwner(ctx context.Context, b net.Conn, t Target) error {
	serverEnd, routerEnd := netipAddr(b.RemoteAddr()), netipAddr(b.LocalAddr())
	for {
		owner, err := procfs.SocketOwner(serverEnd, routerEnd)
		if err == nil {
			if owner != t.Owner {
				r.log.Warn("postgres endpoint: a server's port is held by another account", "server", t.Name, "addr", t.Addr, "uid", owner, "want_uid", t.Owner)
				return fmt.Errorf("the port of server %s is held by uid %d, not by the server's account", t.Name, owner)
			}
			return nil
		}
		if !errors.Is(err, procfs.ErrNoSocket) {
			return fmt.Errorf("the owner of server %s's port: %w", t.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the owner of server %s's port: %w", t.Name, err)
		case <-time.After(time.Millisecond):
		}
	}
}

// netipAddr is a TCP address as netip's.
func netipAddr(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// refuseTLS completes the TLS handshake the client started, with the router's own certificate,
// to send it a refusal it can read. Only the startup message is read (so that the error is
// read by the client before the connection closes): no password is ever asked for.
func (r *Router) refuseTLS(c net.Conn, hello []byte, ref *Refusal) {
	r.refused.Add(1)
	tc := tls.Server(&replayConn{Conn: c, pending: hello}, &tls.Config{Certificates: []tls.Certificate{r.cfg.Certificate},
		MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		// A client that verifies the host name against a name the certificate does not
		// cover stops here, with a certificate error.
		return
	}
	msg, err := readStartup(tc)
	if err != nil {
		return
	}
	if ref.Startup != nil {
		p, _ := msg.params()
		shown := *ref
		shown.Message = ref.message(p)
		ref = &shown
	}
	tc.Write(errorResponse(ref))
	tc.Close()
}

// forwardCancel delivers a cancel request to the server whose backend it names. A request for
// no server's process is dropped, as PostgreSQL drops one for a process it does not know.
func (r *Router) forwardCancel(ctx context.Context, client netip.AddrPort, msg startup) {
	pid, _, err := msg.cancelKey()
	if err != nil {
		return
	}
	t, err := r.cfg.Directory.LookupProcess(ctx, pid)
	if err != nil {
		r.log.Debug("postgres endpoint: cancel request for no server's process", "client", client, "pid", pid, "err", err)
		return
	}
	if r.cfg.Admit != nil && r.cfg.Admit(ctx, client, t) != nil {
		return
	}
	b, err := r.cfg.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		r.log.Debug("postgres endpoint: cancel request", "server", t.Name, "err", err)
		return
	}
	if !r.track(nil, b, false) {
		b.Close()
		return
	}
	defer r.untrack(b)
	if d, has := ctx.Deadline(); has {
		b.SetDeadline(d)
	}
	if err := r.checkOwner(ctx, b, t); err != nil {
		r.log.Warn("postgres endpoint: cancel request", "server", t.Name, "err", err)
		return
	}
	raw := make([]byte, 4, cancelLength)
	binary.BigEndian.PutUint32(raw, cancelLength)
	if _, err := b.Write(append(raw, msg.body...)); err != nil {
		return
	}
	r.cancels.Add(1)
	// The server closes the connection once it has acted on the request; libpq waits for that
	// close to know the request was processed, so the client's connection closes after it.
	io.Copy(io.Discard, b)
}

// splice copies both ways until both directions have ended. A direction that ends cleanly is
// half-closed on the other side; one that fails ends both.
func splice(client, backend net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(backend, client)
	}()
	pipe(client, backend)
	// The server has closed: a client that keeps its side open must not hold the router.
	client.SetReadDeadline(time.Now().Add(closeGrace))
	<-done
}

// closeGrace is how long a client may keep its side open after its server closed.
const closeGrace = 30 * time.Second

func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if tc, ok := dst.(interface{ CloseWrite() error }); ok {
		if tc.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}

// clientAddr is the client's address (zero for a connection that is not TCP).
func clientAddr(c net.Conn) netip.AddrPort { return netipAddr(c.RemoteAddr()) }
