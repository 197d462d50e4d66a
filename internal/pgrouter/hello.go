package pgrouter

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// errPeeked ends the TLS handshake that only reads the ClientHello.
var errPeeked = errors.New("client hello read")

// errNoWrite: while the router reads a ClientHello nothing may reach the client.
var errNoWrite = errors.New("pgrouter: the client hello reader writes nothing")

// recorder is the client's connection as crypto/tls sees it while the router reads the
// ClientHello: every byte read is kept, to be forwarded to the server unchanged; writes (the
// alert crypto/tls sends when the peek ends its handshake) go nowhere.
type recorder struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.buf.Len() > maxHello {
		return 0, errHelloTooLong
	}
	n, err := r.Conn.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

// maxHello bounds what the router keeps of a ClientHello: crypto/tls accepts a hello of up to
// 64 KiB, which record headers (5 bytes for as little as 1 byte of hello each) could swell.
const maxHello = 80 << 10

var errHelloTooLong = errors.New("pgrouter: client hello longer than 80 KiB")

func (r *recorder) Write([]byte) (int, error) { return 0, errNoWrite }

// peekClientHello reads the client's TLS ClientHello without answering it: the server name it
// asks for (SNI; "" when the client sent none) and the bytes read, which the server gets next.
// The standard library parses the hello (crypto/tls stops at GetConfigForClient), so every
// record layout a TLS client may use is read as the server itself would read it.
func peekClientHello(c net.Conn) (serverName string, hello []byte, err error) {
	rec := &recorder{Conn: c}
	var got bool
	herr := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		serverName, got = h.ServerName, true
		return nil, errPeeked
	}}).Handshake()
	if !got {
		return "", rec.buf.Bytes(), fmt.Errorf("not a TLS client hello: %w", herr)
	}
	return serverName, rec.buf.Bytes(), nil
}

// replayConn is the client's connection with the ClientHello already read put back in front,
// for a TLS handshake the router completes itself (to refuse a connection in words).
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}
