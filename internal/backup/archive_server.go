package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/procfs"
)

// Operations the archive helper asks for.
const (
	opArchivePush = "archive-push"
	opArchiveGet  = "archive-get"
)

// protocolVersion starts every request line. Version 1 handed passphrases
// to the helper; it is refused.
const protocolVersion = "pgflex-backup/2"

// ErrUnknownStanza is what an ArchiveServer's Target returns for a peer
// that is no server's PostgreSQL.
var ErrUnknownStanza = errors.New("backup: unknown stanza")

// ErrNotInArchive is what ArchiveTarget.Get returns when the archive has no
// such file (the normal end of recovery).
var ErrNotInArchive = errors.New("backup: WAL file not in the archive")

// ArchiveTarget is a server as the ArchiveServer serves it: whose requests
// it accepts, and what archiving and fetching WAL mean for it.
type ArchiveTarget struct {
	// Stanza is the server's stanza (requests name it, as a check).
	Stanza string
	// UID is the OS account the server's PostgreSQL runs as.
	UID uint32
	// Postmaster is the server's running postmaster: a request is served
	// only for a process that descends from it (the archiver, or the
	// startup process, through the shell running the command).
	Postmaster procfs.Identity
	// Push archives pg_wal/name of the server's data directory. Nil: the
	// server does not archive (a restore's recovery socket).
	Push func(ctx context.Context, name string, peer Peer) error
	// Get fetches name from the archive the server recovers from, returning
	// it open for reading (or ErrNotInArchive). Nil: the server is not
	// recovering from an archive.
	Get func(ctx context.Context, name string, peer Peer) (*os.File, error)
}

// Peer is the process that asked, as the kernel reports it.
type Peer struct {
	PID int
	UID uint32
}

// ArchiveServer answers the archive helper (RunHelper) on a Unix socket: it
// archives WAL for, or fetches WAL to, the asking server's PostgreSQL, and
// never hands out a key or a passphrase. The daemon runs one for all
// servers; Restore runs one of its own while a restored server recovers.
//
// Every connection is authenticated by the kernel before anything is done:
// SO_PEERCRED gives the peer's uid and pid; the uid must be a server's
// PostgreSQL account (each server has its own, so the uid alone names the
// server), and the peer must descend from that server's postmaster, named
// by PID and start time (Instance.Postmaster) — not by an executable's
// name, which anyone can choose. The socket itself is world-writable
// (0666) so that every server's account can connect; those checks are the
// access control, and a refused peer learns nothing but the refusal.
type ArchiveServer struct {
	// Path is the socket path (at most 107 bytes). A stale socket left by
	// an earlier daemon is replaced.
	Path string
	// Target returns the server whose PostgreSQL runs as uid, or an error
	// wrapping ErrUnknownStanza. It must be cheap and must not touch keys.
	Target func(ctx context.Context, uid uint32) (ArchiveTarget, error)
	// Logger receives refusals (warn) and requests (debug); nil means
	// slog.Default().
	Logger *slog.Logger

	mu sync.Mutex
	ln *net.UnixListener
}

func (s *ArchiveServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Listen binds the socket. Call it before starting PostgreSQL servers
// whose archive_command needs it, then Serve.
func (s *ArchiveServer) Listen() error {
	if s.Target == nil {
		return errors.New("backup: archive server needs Target")
	}
	if !filepath.IsAbs(s.Path) || len(s.Path) > maxSocketPath {
		return fmt.Errorf("backup: archive socket %q must be an absolute path of at most %d bytes", s.Path, maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o711); err != nil {
		return fmt.Errorf("backup: archive socket dir: %w", err)
	}
	if fi, err := os.Lstat(s.Path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("backup: %s exists and is not a socket", s.Path)
		}
		if err := os.Remove(s.Path); err != nil {
			return fmt.Errorf("backup: remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.Path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("backup: archive socket: %w", err)
	}
	if err := os.Chmod(s.Path, 0o666); err != nil {
		ln.Close()
		return fmt.Errorf("backup: archive socket: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Serve answers requests until ctx ends, then closes and removes the socket
// and waits for the requests in flight.
func (s *ArchiveServer) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("backup: archive server: Serve before Listen")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("backup: archive server: %w", err)
		}
		wg.Go(func() { s.handle(ctx, conn) })
	}
}

// Close stops accepting requests and removes the socket.
func (s *ArchiveServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}

// requestReadTimeout bounds how long a peer may take to send its request.
const requestReadTimeout = 10 * time.Second

// maxAncestors bounds the walk from the peer up to its postmaster: helper,
// shell, archiver or startup process, postmaster.
const maxAncestors = 6

// request is one helper request.
type request struct {
	op, stanza, name string
}

func (s *ArchiveServer) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	_ = conn.SetReadDeadline(time.Now().Add(requestReadTimeout))
	_ = conn.SetWriteDeadline(time.Now().Add(helperTimeout))

	cred, err := peerCred(conn)
	if err != nil {
		s.logger().WarnContext(ctx, "archive request: no peer credentials", "err", err)
		return
	}
	peer := Peer{PID: int(cred.Pid), UID: cred.Uid}
	req, err := readRequest(conn)
	if err != nil {
		s.refuse(ctx, conn, peer, req, "bad request: "+err.Error())
		return
	}
	target, err := s.Target(ctx, peer.UID)
	if errors.Is(err, ErrUnknownStanza) {
		s.refuse(ctx, conn, peer, req, fmt.Sprintf("uid %d is not the PostgreSQL account of a server", peer.UID))
		return
	}
	if err != nil {
		s.logger().WarnContext(ctx, "archive request: target lookup failed", "peer_uid", peer.UID, "err", err)
		writeLine(conn, "error "+oneLine(err.Error()))
		return
	}
	if target.UID != peer.UID || target.Stanza != req.stanza {
		s.refuse(ctx, conn, peer, req, fmt.Sprintf("uid %d asks for stanza %s, which is not its server's", peer.UID, req.stanza))
		return
	}
	if !procfs.DescendsFrom(peer.PID, target.Postmaster, maxAncestors) {
		s.refuse(ctx, conn, peer, req, fmt.Sprintf("pid %d does not descend from the postmaster (pid %d) of stanza %s", peer.PID, target.Postmaster.PID, req.stanza))
		return
	}
	s.logger().DebugContext(ctx, "archive request", "stanza", req.stanza, "op", req.op, "wal", req.name, "peer_pid", peer.PID)
	switch req.op {
	case opArchivePush:
		if target.Push == nil {
			s.refuse(ctx, conn, peer, req, "this socket does not archive")
			return
		}
		if err := target.Push(ctx, req.name, peer); err != nil {
			code := 1
			var pe *Error
			if errors.As(err, &pe) && pe.Code > 0 {
				code = pe.Code
			}
			s.logger().WarnContext(ctx, "archive-push failed", "stanza", req.stanza, "wal", req.name, "err", err)
			writeLine(conn, fmt.Sprintf("failed %d %s", code, oneLine(err.Error())))
			return
		}
		writeLine(conn, "ok")
	case opArchiveGet:
		if target.Get == nil {
			s.refuse(ctx, conn, peer, req, "this socket serves no recovery")
			return
		}
		f, err := target.Get(ctx, req.name, peer)
		if errors.Is(err, ErrNotInArchive) {
			writeLine(conn, "missing")
			return
		}
		if err != nil {
			s.logger().WarnContext(ctx, "archive-get failed", "stanza", req.stanza, "wal", req.name, "err", err)
			writeLine(conn, "failed 1 "+oneLine(err.Error()))
			return
		}
		defer f.Close()
		if _, _, err := conn.WriteMsgUnix([]byte("ok\n"), syscall.UnixRights(int(f.Fd())), nil); err != nil {
			s.logger().WarnContext(ctx, "archive-get answer failed", "stanza", req.stanza, "err", err)
		}
	}
}

func (s *ArchiveServer) refuse(ctx context.Context, conn net.Conn, peer Peer, req request, why string) {
	s.logger().WarnContext(ctx, "archive request refused", "stanza", req.stanza, "op", req.op,
		"peer_pid", peer.PID, "peer_uid", peer.UID, "reason", why)
	writeLine(conn, "refused "+oneLine(why))
}

func writeLine(w io.Writer, s string) { _, _ = io.WriteString(w, s+"\n") }

func oneLine(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " ") }

// maxRequest bounds a request line.
const maxRequest = 512

// readRequest reads "pgflex-backup/2 OP STANZA WALNAME\n".
func readRequest(r io.Reader) (request, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxRequest), maxRequest).ReadString('\n')
	if err != nil {
		return request{}, fmt.Errorf("read: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 1 || f[0] != protocolVersion {
		return request{}, fmt.Errorf("not a %s request", protocolVersion)
	}
	if len(f) != 4 {
		return request{}, errors.New("malformed request")
	}
	req := request{op: f[1], stanza: f[2], name: f[3]}
	if req.op != opArchivePush && req.op != opArchiveGet {
		return request{}, fmt.Errorf("unknown operation %q", req.op)
	}
	if err := validateStanzaName(req.stanza); err != nil {
		return request{}, err
	}
	if err := validateWALName(req.name); err != nil {
		return request{}, err
	}
	return req, nil
}

// walNameRE: the names PostgreSQL archives and restores: segments,
// partial segments, backup history files and timeline history files.
var walNameRE = regexp.MustCompile(`^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$`)

func validateWALName(name string) error {
	if !walNameRE.MatchString(name) {
		return fmt.Errorf("backup: %q is not a WAL file name", name)
	}
	return nil
}

// peerCred returns the connecting process's credentials from the kernel.
func peerCred(conn *net.UnixConn) (*syscall.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, serr
}
