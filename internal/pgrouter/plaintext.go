package pgrouter

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Connections without TLS (a server whose require_secure_transport is off).
//
// A client that does not ask for TLS sends no server name, so the server is named the way
// Azure's Single Server gateway had users name it: in the startup message's user,
// "user@server". Only a server that allows such connections (Target.AllowPlaintext) is
// reached; the user is rewritten to "user" and the startup message forwarded to the server's
// own port, whose pg_hba.conf then accepts the connection without TLS (password
// authentication as always). Every other plaintext connection keeps pg_hba.conf's refusal.

// routePlaintext routes a protocol 3 startup message sent without TLS, or refuses it. It
// returns the server's connection, ready to splice, or nil when it refused the client.
func (r *Router) routePlaintext(ctx context.Context, c net.Conn, client netip.AddrPort, msg startup) net.Conn {
	p, err := msg.params()
	if err != nil {
		r.refuse(c, &Refusal{Code: CodeProtocol, Message: "invalid startup packet layout"})
		return nil
	}
	login, name, ok := splitServerUser(p["user"])
	if !ok {
		r.refuse(c, plaintextRefusal(client, msg))
		return nil
	}
	t, err := r.cfg.Directory.Lookup(ctx, name)
	ref := r.refusal(err, name)
	if ref == nil && !t.AllowPlaintext {
		// As if the server were not named: the same answer as for any client without TLS.
		ref = plaintextRefusal(client, msg)
	}
	if ref == nil && r.cfg.Admit != nil {
		ref = r.refusal(r.cfg.Admit(ctx, client, t), name)
	}
	if ref == nil {
		forwarded := make(map[string]string, len(p))
		for k, v := range p {
			forwarded[k] = v
		}
		forwarded["user"] = login
		if _, hasDB := p["database"]; !hasDB {
			// PostgreSQL's default database is the user's name: the name the server knows.
			forwarded["database"] = login
		}
		backend, err := r.connectPlain(ctx, t, &pgproto3.StartupMessage{ProtocolVersion: msg.code, Parameters: forwarded})
		if err == nil {
			return backend
		}
		r.log.Warn("postgres endpoint: connect server", "server", name, "err", err)
		ref = Unavailable(name, "is not accepting connections", "Retry in a moment.")
	}
	if ref.Startup != nil {
		// A refusal in pg_hba.conf's words (the firewall's): as PostgreSQL says them to a
		// client without TLS.
		ref = plaintextRefusal(client, msg)
	}
	r.log.Debug("postgres endpoint: refused without TLS", "client", client, "server", name, "reason", ref.Message)
	r.refuse(c, ref)
	return nil
}

// splitServerUser splits "user@server" at its last '@' (a role name may hold one); the
// server part must be a valid server name.
func splitServerUser(u string) (login, server string, ok bool) {
	i := strings.LastIndexByte(u, '@')
	if i <= 0 {
		return "", "", false
	}
	login, server = u[:i], strings.ToLower(u[i+1:])
	return login, server, validLabel(server)
}

// connectPlain opens the server's port and, once the kernel shows that the server's own
// account holds it, sends the client's (rewritten) startup message.
func (r *Router) connectPlain(ctx context.Context, t Target, m *pgproto3.StartupMessage) (net.Conn, error) {
	startupBytes, err := m.Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("encode the startup message: %w", err)
	}
	b, err := r.cfg.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	if !r.track(nil, b, false) {
		b.Close()
		return nil, net.ErrClosed
	}
	if d, has := ctx.Deadline(); has {
		b.SetDeadline(d)
	}
	if err := r.checkOwner(ctx, b, t); err != nil {
		r.untrack(b)
		return nil, err
	}
	if _, err := b.Write(startupBytes); err != nil {
		r.untrack(b)
		return nil, err
	}
	return b, nil
}
