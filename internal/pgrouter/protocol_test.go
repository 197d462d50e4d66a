package pgrouter

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestServerName(t *testing.T) {
	r := &Router{cfg: Config{Suffix: "postgres.localhost", Aliases: []string{"postgres.database.azure.com"}}}
	tests := []struct {
		sni, want, refusal string
	}{
		{"pg-one.postgres.localhost", "pg-one", ""},
		{"PG-One.Postgres.LocalHost", "pg-one", ""},
		{"a1.postgres.localhost", "a1", ""},
		{"", "", "no server name"},
		{"postgres.localhost", "", "is not the host name of a server"},
		{".postgres.localhost", "", "is not the host name of a server"},
		{"a.b.postgres.localhost", "", "is not the host name of a server"},
		{"-a.postgres.localhost", "", "is not the host name of a server"},
		{"a-.postgres.localhost", "", "is not the host name of a server"},
		{"a_b.postgres.localhost", "", "is not the host name of a server"},
		{"pg-one.postgres.localhost.evil.example", "", "is not the host name of a server"},
		{"pg-onepostgres.localhost", "", "is not the host name of a server"},
		{"localhost", "", "is not the host name of a server"},
		{strings.Repeat("a", 64) + ".postgres.localhost", "", "is not the host name of a server"},
		{strings.Repeat("a", 63) + ".postgres.localhost", strings.Repeat("a", 63), ""},
		// Azure's suffix, which az's show-connection-string writes, routes as an alias.
		{"pg-one.postgres.database.azure.com", "pg-one", ""},
		{"PG-One.Postgres.Database.Azure.Com", "pg-one", ""},
		{"database.azure.com", "", "is not the host name of a server"},
		{"pg-one.mysql.database.azure.com", "", "is not the host name of a server"},
		{"a.b.postgres.database.azure.com", "", "is not the host name of a server"},
	}
	for _, tt := range tests {
		got, ref := r.serverName(tt.sni)
		if tt.refusal == "" {
			if ref != nil || got != tt.want {
				t.Errorf("serverName(%q) = %q, %v; want %q", tt.sni, got, ref, tt.want)
			}
			continue
		}
		if ref == nil || !strings.Contains(ref.Message, tt.refusal) || ref.Code != CodeRejected || got != "" {
			t.Errorf("serverName(%q) = %q, %+v; want a refusal %q", tt.sni, got, ref, tt.refusal)
		}
	}
}

func message(code uint32, rest ...byte) []byte {
	b := make([]byte, 8, 8+len(rest))
	binary.BigEndian.PutUint32(b[0:4], uint32(8+len(rest)))
	binary.BigEndian.PutUint32(b[4:8], code)
	return append(b, rest...)
}

func TestReadStartup(t *testing.T) {
	startupMsg, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "u1", "database": "d1"}}).Encode(nil)
	tests := []struct {
		name     string
		in       []byte
		code     uint32
		protoErr bool
		user     string
	}{
		{"ssl request", message(codeSSL), codeSSL, false, ""},
		{"gssenc request", message(codeGSSENC), codeGSSENC, false, ""},
		{"cancel request", message(codeCancel, 0, 0, 0, 7, 0, 0, 0, 9), codeCancel, false, ""},
		{"startup message", startupMsg, protocol3, false, "u1"},
		{"length below 8", []byte{0, 0, 0, 7, 0, 0, 0, 0}, 0, true, ""},
		{"length above 10000", []byte{0, 0, 0x27, 0x11, 0, 0, 0, 0}, 0, true, ""},
		{"a TLS hello instead", []byte{0x16, 3, 1, 0, 0xc8, 1, 0, 0}, 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bytes after the message stay unread: they belong to the server.
			rd := bytes.NewReader(append(append([]byte{}, tt.in...), "after"...))
			msg, err := readStartup(rd)
			if tt.protoErr {
				if !errors.Is(err, errProtocol) {
					t.Fatalf("err = %v, want a protocol error", err)
				}
				return
			}
			if err != nil || msg.code != tt.code {
				t.Fatalf("readStartup = %v, %v; want code %d", msg.code, err, tt.code)
			}
			if rest, _ := io.ReadAll(rd); string(rest) != "after" {
				t.Errorf("left %q unread, want %q", rest, "after")
			}
			if tt.user != "" {
				p, err := msg.params()
				if err != nil || p["user"] != tt.user {
					t.Errorf("params = %v, %v", p, err)
				}
			}
		})
	}
	msg, _ := readStartup(bytes.NewReader(message(codeCancel, 0, 0, 0x30, 0x39, 0xde, 0xad, 0xbe, 0xef)))
	if pid, key, err := msg.cancelKey(); err != nil || pid != 12345 || key != 0xdeadbeef {
		t.Errorf("cancelKey = %d, %x, %v", pid, key, err)
	}
	msg, _ = readStartup(bytes.NewReader(message(codeCancel, 0, 0, 0, 1)))
	if _, _, err := msg.cancelKey(); !errors.Is(err, errProtocol) {
		t.Errorf("a short cancel request: %v", err)
	}
}

func TestErrorResponseAndPlaintextRefusal(t *testing.T) {
	startupMsg, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "alice"}}).Encode(nil)
	msg, err := readStartup(bytes.NewReader(startupMsg))
	if err != nil {
		t.Fatal(err)
	}
	ref := plaintextRefusal(netip.MustParseAddrPort("192.0.2.7:40000"), msg)
	b := errorResponse(ref)
	if b[0] != 'E' || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-1 {
		t.Fatalf("not an ErrorResponse frame: %q", b)
	}
	var er pgproto3.ErrorResponse
	if err := er.Decode(b[5:]); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL's own words; the database defaults to the user name, as the server's does.
	want := `no pg_hba.conf entry for host "192.0.2.7", user "alice", database "alice", no encryption`
	if er.Severity != "FATAL" || er.SeverityUnlocalized != "FATAL" || er.Code != "28000" || er.Message != want ||
		!strings.Contains(er.Hint, "sslmode=require") {
		t.Errorf("decoded %+v", er)
	}
}

// clientHello is the first flight of a Go TLS client for serverName: the bytes it writes.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		c.Handshake()
		a.Close()
	}()
	var hdr [5]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return append(hdr[:], body...)
}

// fragment splits a single-record hello into records of at most n bytes of handshake each, as
// a TLS client may send it.
func fragment(hello []byte, n int) []byte {
	var out []byte
	body := hello[5:]
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, 0x16, hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

// pipeConn serves in as the client's side of a connection.
func pipeConn(t *testing.T, in []byte) net.Conn {
	a, b := net.Pipe()
	go func() {
		a.Write(in)
		// Then wait, as a client waiting for the ServerHello does.
		io.Copy(io.Discard, a)
	}()
	t.Cleanup(func() { a.Close(); b.Close() })
	return b
}

func TestPeekClientHello(t *testing.T) {
	hello := clientHello(t, "pg-one.postgres.localhost")
	noSNI := clientHello(t, "")
	tests := []struct {
		name, want string
		in         []byte
		notTLS     bool
	}{
		{"one record", "pg-one.postgres.localhost", hello, false},
		{"fragmented over records", "pg-one.postgres.localhost", fragment(hello, 100), false},
		{"no server name", "", noSNI, false},
		{"not TLS", "", append([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), make([]byte, 64)...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, got, err := peekClientHello(pipeConn(t, tt.in))
			if tt.notTLS {
				if err == nil {
					t.Fatalf("peek of non-TLS bytes succeeded: %q", name)
				}
				return
			}
			if err != nil || name != tt.want {
				t.Fatalf("peek = %q, %v; want %q", name, err, tt.want)
			}
			// Exactly what the client sent is kept, for the server.
			if !bytes.Equal(got, tt.in) {
				t.Errorf("recorded %d bytes, the client sent %d", len(got), len(tt.in))
			}
		})
	}
}

// TestNoHBAEntry: the firewall's refusal names the startup message's user and database (the
// user's name when no database is given, as PostgreSQL reports it), and an IPv4 client seen
// through an IPv6 socket by its IPv4 address.
func TestNoHBAEntry(t *testing.T) {
	ref := NoHBAEntry(netip.MustParseAddr("::ffff:10.1.2.3"))
	if ref.Code != CodeNotAuthorized {
		t.Errorf("code %s, want %s", ref.Code, CodeNotAuthorized)
	}
	for _, tt := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"user": "ann", "database": "sales"}, `no pg_hba.conf entry for host "10.1.2.3", user "ann", database "sales", SSL encryption`},
		{map[string]string{"user": "ann"}, `no pg_hba.conf entry for host "10.1.2.3", user "ann", database "ann", SSL encryption`},
	} {
		if got := ref.message(tt.params); got != tt.want {
			t.Errorf("message(%v) = %q, want %q", tt.params, got, tt.want)
		}
	}
	if plain := (&Refusal{Message: "m"}).message(map[string]string{"user": "x"}); plain != "m" {
		t.Errorf("a refusal without Startup says %q, want its Message", plain)
	}
}
