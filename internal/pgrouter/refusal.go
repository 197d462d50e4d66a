package pgrouter

import "fmt"

// Refusal is a connection the router answers with a PostgreSQL error instead of a server: the
// client prints "FATAL:  {Message}" (and "HINT:  {Hint}"). A Directory or an Admit hook
// returns one to say why a server cannot be reached; any other error reaches the client as a
// generic failure and is logged.
type Refusal struct {
	Code    string // SQLSTATE
	Message string
	Hint    string
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

// NotFound refuses a name that no server has.
func NotFound(name string) *Refusal {
	return &Refusal{Code: CodeRejected, Message: fmt.Sprintf("server %q was not found", name)}
}

// Unavailable refuses a server that exists but does not accept connections now; why is a
// short phrase such as "is stopped".
func Unavailable(name, why, hint string) *Refusal {
	return &Refusal{Code: CodeCannotConnect, Message: fmt.Sprintf("server %q %s", name, why), Hint: hint}
}
