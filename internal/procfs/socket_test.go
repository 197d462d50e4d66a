package procfs

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pgflex/pgflex/internal/testkit"
)

func TestParseProcAddr(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0100007F:1F90", "127.0.0.1:8080", true},
		{"0101A8C0:0016", "192.168.1.1:22", true},
		{"00000000000000000000000001000000:20FB", "[::1]:8443", true},
		{"0000000000000000FFFF00000100007F:20FB", "[::ffff:127.0.0.1]:8443", true},
		{"0100007F", "", false},
		{"0100007G:1F90", "", false},
		{"01007F:1F90", "", false},
		{"0100007F:1FFFF", "", false},
	} {
		got, err := parseProcAddr(c.in)
		if (err == nil) != c.ok || (c.ok && got.String() != c.want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

// TestFindSocketOwner: the client's end of the connection is found by its own address and its
// peer's, never the server's end of the same connection (the daemon's, root's) nor a closed
// connection that reused the addresses (TIME_WAIT, listed as uid 0).
func TestFindSocketOwner(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0 100 0 0 10 0
   1: 0100007F:20FB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0 20 4 30 10 -1
   2: 0100007F:9C40 0100007F:20FB 01 00000000:00000000 00:00000000 00000000  1001        0 102 1 0 20 4 30 10 -1
   3: 0100007F:9C41 0100007F:20FB 06 00000000:00000000 03:00000F9D 00000000     0        0 0 3 0
   4: 0100007F:9C42 0100007F:20FB 01 00000000:00000000 00:00000000 00000000 65534        0 103 1 0 20 4 30 10 -1
`
	server := netip.MustParseAddrPort("127.0.0.1:8443")
	for _, c := range []struct {
		client string
		uid    uint32
		err    error
	}{
		{"127.0.0.1:40000", 1001, nil},
		{"[::ffff:127.0.0.1]:40000", 1001, nil}, // a dual-stack listener sees the mapped form
		{"127.0.0.1:40002", 65534, nil},
		{"127.0.0.1:40001", 0, ErrNoSocket}, // TIME_WAIT only
		{"127.0.0.1:40003", 0, ErrNoSocket},
	} {
		uid, err := findSocketOwner(strings.NewReader(table), netip.MustParseAddrPort(c.client), server)
		if uid != c.uid || !errors.Is(err, c.err) {
			t.Errorf("owner of %s = %d, %v; want %d, %v", c.client, uid, err, c.uid, c.err)
		}
	}
	// Asked the other way round (the server's end), the answer is the server's account.
	if uid, err := findSocketOwner(strings.NewReader(table), server, netip.MustParseAddrPort("127.0.0.1:40000")); uid != 0 || err != nil {
		t.Errorf("server end = %d, %v", uid, err)
	}
}

// TestSocketOwnerLive: on this machine's real socket table, a connection from this process is
// this account's, and one from a process of another account is that account's.
func TestSocketOwnerLive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ownerOfNext := func() uint32 {
		t.Helper()
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		uid, err := SocketOwner(conn.RemoteAddr().(*net.TCPAddr).AddrPort(), conn.LocalAddr().(*net.TCPAddr).AddrPort())
		if err != nil {
			t.Fatalf("SocketOwner: %v", err)
		}
		return uid
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if uid := ownerOfNext(); uid != uint32(os.Geteuid()) {
		t.Fatalf("own connection owned by uid %d, want %d", uid, os.Geteuid())
	}

	testkit.Require(t, testkit.Root)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// bash's /dev/tcp opens the connection as uid 65534 and holds it until the server closes.
	cmd := exec.Command("/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+port+"; read -r -u 3 _ || true")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	if uid := ownerOfNext(); uid != 65534 {
		t.Fatalf("uid 65534's connection owned by uid %d", uid)
	}
}
