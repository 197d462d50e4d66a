package procfs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrNoSocket is SocketOwner's answer when no established TCP socket has the addresses asked.
var ErrNoSocket = errors.New("procfs: no established TCP socket with these addresses")

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's "st" column. A socket in TIME_WAIT
// belongs to nobody (its uid column reads 0): only live connections are looked at.
const tcpEstablished = 0x01

// SocketOwner returns the uid that owns the established TCP socket whose local address is
// local and whose peer is remote, in this process's network namespace (/proc/net/tcp and
// tcp6). A server passes its client's address as local and its own as remote: the answer is
// who opened the client's end, as the kernel recorded it. IPv4-mapped IPv6 addresses match
// their IPv4 form.
func SocketOwner(local, remote netip.AddrPort) (uint32, error) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		uid, err := findSocketOwner(fh, local, remote)
		fh.Close()
		if err == nil {
			return uid, nil
		}
		if !errors.Is(err, ErrNoSocket) {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
	}
	return 0, ErrNoSocket
}

func findSocketOwner(r io.Reader, local, remote netip.AddrPort) (uint32, error) {
	norm := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
	local, remote = norm(local), norm(remote)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // the header line
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		// sl local rem st queues timer retrnsmt uid ...
		if len(f) < 8 {
			continue
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil || st != tcpEstablished {
			continue
		}
		l, err1 := parseProcAddr(f[1])
		p, err2 := parseProcAddr(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		if norm(l) != local || norm(p) != remote {
			continue
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad uid column %q", f[7])
		}
		return uint32(uid), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, ErrNoSocket
}

// parseProcAddr parses "0100007F:1F90": the address as the kernel prints it (each 32-bit word
// in host byte order, in hex), a colon, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("malformed address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("malformed port %q", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
