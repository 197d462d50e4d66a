package pgrouter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The request codes a PostgreSQL client may open a connection with (protocol.h).
const (
	codeCancel   = 1234<<16 | 5678
	codeSSL      = 1234<<16 | 5679
	codeGSSENC   = 1234<<16 | 5680
	protocol3    = 3 << 16
	maxStartup   = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	cancelLength = 16
)

// startup is the first message of a connection: a request code and what follows it.
type startup struct {
	code uint32
	body []byte // the whole message after its length word, code included
}

// readStartup reads one untyped startup-phase message with exact reads: nothing past it is
// consumed, so the TLS bytes that follow an SSLRequest stay in the socket for the server.
func readStartup(r io.Reader) (startup, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return startup{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > maxStartup {
		return startup{}, fmt.Errorf("%w: startup packet length %d", errProtocol, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return startup{}, err
	}
	return startup{code: binary.BigEndian.Uint32(body), body: body}, nil
}

// errProtocol marks input that is not PostgreSQL's protocol.
var errProtocol = errors.New("invalid startup packet")

// params decodes a protocol 3 StartupMessage's parameters (user, database, ...).
func (s startup) params() (map[string]string, error) {
	var m pgproto3.StartupMessage
	if err := m.Decode(s.body); err != nil {
		return nil, fmt.Errorf("%w: %v", errProtocol, err)
	}
	return m.Parameters, nil
}

// cancelKey decodes a CancelRequest: the backend's process id and secret key.
func (s startup) cancelKey() (pid, key uint32, err error) {
	if len(s.body) != cancelLength-4 {
		return 0, 0, fmt.Errorf("%w: cancel request of %d bytes", errProtocol, len(s.body)+4)
	}
	return binary.BigEndian.Uint32(s.body[4:8]), binary.BigEndian.Uint32(s.body[8:12]), nil
}

// sslRequest is the SSLRequest the router sends a server before forwarding a client's TLS.
var sslRequest = func() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:4], 8)
	binary.BigEndian.PutUint32(b[4:8], codeSSL)
	return b
}()

// errorResponse encodes a FATAL ErrorResponse as a PostgreSQL server sends it before it
// closes a connection: libpq prints "FATAL:  message" (and "HINT:  hint").
func errorResponse(r *Refusal) []byte {
	b, err := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: r.Code,
		Message: r.Message, Hint: r.Hint}).Encode(nil)
	if err != nil {
		// Encode fails only for a message over 1 GB; a refusal is one sentence.
		panic(fmt.Sprintf("pgrouter: encode error response: %v", err))
	}
	return b
}
