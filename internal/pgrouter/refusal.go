package pgrouter

import (
	"fmt"
	"net/netip"
)

// Refusal is a connection the router answers with a PostgreSQL error instead of a server: the
// client prints "FATAL:  {Message}" (and "HINT:  {Hint}"). A Directory or an Admit hook
// returns one to say why a server cannot be reached; any other error reaches the client as a
// generic failure and is logged.
type Refusal struct {
	Code    string // SQLSTATE
	Message string
	Hint    string
	// Startup, when set, writes Message from the user and database of the client's startup
	// message, which the router reads only after it has completed TLS for the refusal (the
	// server is chosen from the ClientHello, before any of it): pg_hba.conf's refusal names
	// both. Message stays the text for logs and for a refusal sent before the startup message.
	Startup func(user, database string) string
}

func (r *Refusal) Error() string { return r.Message }

// SQLSTATEs of the refusals: codes PostgreSQL clients already act on. 57P03
// (cannot_connect_now) is what a server starting up or shutting down answers, which drivers and
// pools treat as "retry later"; 28000 is what pg_hba.conf answers; 08004 is "the server rejected
// the establishment of the connection"; 08P01 is a protocol violation.
const (
	CodeRejected           = "08004"
	CodeCannotConnect      = "57P03"
	CodeNotAuthorized      = "28000"
	CodeProtocol           = "08P01"
	CodeConnectionFault    = "08006"
	CodeTooManyConnections = "53300"
)

// message is the text the client is told, given its startup message's parameters.
func (r *Refusal) message(p map[string]string) string {
	if r.Startup == nil {
		return r.Message
	}
	db := p["database"]
	if db == "" {
		db = p["user"] // libpq's default, as PostgreSQL reports it
	}
	return r.Startup(p["user"], db)
}

// NoHBAEntry refuses a TLS client that no firewall rule admits, in the words PostgreSQL's
// pg_hba.conf check uses and Azure answers: no pg_hba.conf entry for host "{client}", user
// "{user}", database "{database}", SSL encryption (28000).
func NoHBAEntry(client netip.Addr) *Refusal {
	host := client.Unmap().String()
	return &Refusal{Code: CodeNotAuthorized,
		Message: fmt.Sprintf("no pg_hba.conf entry for host %q, SSL encryption", host),
		Startup: func(user, database string) string {
			return fmt.Sprintf("no pg_hba.conf entry for host %q, user %q, database %q, SSL encryption", host, user, database)
		}}
}

// NotFound refuses a name that no server has.
func NotFound(name string) *Refusal {
	return &Refusal{Code: CodeRejected, Message: fmt.Sprintf("server %q was not found", name)}
}

// Unavailable refuses a server that exists but does not accept connections now; why is a
// short phrase such as "is stopped".
func Unavailable(name, why, hint string) *Refusal {
	return &Refusal{Code: CodeCannotConnect, Message: fmt.Sprintf("server %q %s", name, why), Hint: hint}
}
