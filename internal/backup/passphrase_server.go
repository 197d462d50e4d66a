package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Operations a helper asks passphrases for.
const (
	opArchivePush = "archive-push"
	opArchiveGet  = "archive-get"
)

// protocolVersion starts every request line.
const protocolVersion = "pgflex-backup/1"

// ErrUnknownStanza is what an Owner callback returns for a stanza it does
// not know.
var ErrUnknownStanza = errors.New("backup: unknown stanza")

// Request is a helper's request.
type Request struct {
	// Op is "archive-push" (PostgreSQL's archive_command) or
	// "archive-get" (restore_command during a restore).
	Op string
	// Stanza is the stanza whose passphrases are asked for.
	Stanza string
	// PeerPID and PeerUID are the asking process, from SO_PEERCRED.
	PeerPID int
	PeerUID uint32
}

// Owner is who may ask for a stanza's passphrases: the stanza's own
// PostgreSQL.
type Owner struct {
	// UID is the OS user the stanza's PostgreSQL runs as; a peer of any
	// other uid is refused.
	UID uint32
	// DataDir is the data directory of the only PostgreSQL that may ask:
	// the peer must descend from a postgres process working in it (the
	// archiver, or the startup process during a restore, through the
	// shell that runs archive_command or restore_command).
	DataDir string
}

// PassphraseServer answers the archive helper (RunHelper) over a Unix
// socket with the passphrases of the asking server's own stanza. The daemon
// runs one for all servers; Restore runs one of its own while a restored
// server recovers.
//
// Every connection is authenticated by the kernel before any key is
// touched: SO_PEERCRED gives the peer's uid and pid, the uid must be the
// Owner's, and one of the peer's ancestors must be a postgres process whose
// working directory is the Owner's DataDir. Only then are the passphrases
// looked up. The socket itself is world-writable (0666) so that the
// PostgreSQL user can connect; those checks are the access control.
type PassphraseServer struct {
	// Path is the socket path (at most 107 bytes). A stale socket left by
	// an earlier daemon is replaced.
	Path string
	// Owner returns who may ask for a stanza's passphrases, or an error
	// wrapping ErrUnknownStanza. It runs for every request, before the
	// peer is authenticated, so it must be cheap (the daemon's state
	// store) and must not touch keys.
	Owner func(ctx context.Context, stanza string) (Owner, error)
	// Passphrases returns the passphrases of a stanza's repositories; it
	// runs only for an authenticated peer. The daemon's implementation
	// unwraps the backup DEKs with the server's keys and derives them
	// (Passphrase). The helper passes on those of the repositories its
	// pgbackrest.conf defines and fails if one is missing, so a
	// repository whose key is unusable must be paused (Stanza.SetPaused).
	// The server wipes them after answering.
	Passphrases func(ctx context.Context, req Request) (Passphrases, error)
	// Logger receives refusals (warn) and answers (debug); nil means
	// slog.Default().
	Logger *slog.Logger

	mu sync.Mutex
	ln *net.UnixListener
}

func (s *PassphraseServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Listen binds the socket. Call it before starting PostgreSQL servers
// whose archive_command needs it, then Serve.
func (s *PassphraseServer) Listen() error {
	if s.Owner == nil || s.Passphrases == nil {
		return errors.New("backup: passphrase server needs Owner and Passphrases")
	}
	if !filepath.IsAbs(s.Path) || len(s.Path) > maxSocketPath {
		return fmt.Errorf("backup: passphrase socket %q must be an absolute path of at most %d bytes", s.Path, maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o711); err != nil {
		return fmt.Errorf("backup: passphrase socket dir: %w", err)
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
		return fmt.Errorf("backup: passphrase socket: %w", err)
	}
	if err := os.Chmod(s.Path, 0o666); err != nil {
		ln.Close()
		return fmt.Errorf("backup: passphrase socket: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Serve answers requests until ctx ends, then closes and removes the socket
// and waits for the requests in flight.
func (s *PassphraseServer) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("backup: passphrase server: Serve before Listen")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("backup: passphrase server: %w", err)
		}
		wg.Go(func() { s.handle(ctx, conn) })
	}
}

// Close stops accepting requests and removes the socket.
func (s *PassphraseServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}

// requestTimeout bounds one exchange; a helper that stalls is dropped.
const requestTimeout = 10 * time.Second

func (s *PassphraseServer) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))

	cred, err := peerCred(conn)
	if err != nil {
		s.logger().WarnContext(ctx, "backup passphrase request: no peer credentials", "err", err)
		return
	}
	req, err := readRequest(conn)
	if err != nil {
		s.refuse(ctx, conn, Request{PeerPID: int(cred.Pid), PeerUID: cred.Uid}, "bad request: "+err.Error())
		return
	}
	req.PeerPID, req.PeerUID = int(cred.Pid), cred.Uid

	owner, err := s.Owner(ctx, req.Stanza)
	if errors.Is(err, ErrUnknownStanza) {
		s.refuse(ctx, conn, req, "unknown stanza "+req.Stanza)
		return
	}
	if err != nil {
		s.logger().WarnContext(ctx, "backup passphrase request: owner lookup failed", "stanza", req.Stanza, "err", err)
		writeLine(conn, "error stanza "+req.Stanza+": "+oneLine(err.Error()))
		return
	}
	if cred.Uid != owner.UID {
		s.refuse(ctx, conn, req, fmt.Sprintf("peer uid %d is not the PostgreSQL user of stanza %s", cred.Uid, req.Stanza))
		return
	}
	if err := descendsFromPostgres(int(cred.Pid), owner.DataDir); err != nil {
		s.refuse(ctx, conn, req, fmt.Sprintf("peer pid %d is not run by the PostgreSQL of stanza %s: %v", cred.Pid, req.Stanza, err))
		return
	}
	pp, err := s.Passphrases(ctx, req)
	defer pp.Wipe()
	if err != nil {
		s.logger().WarnContext(ctx, "backup passphrases unavailable", "stanza", req.Stanza, "op", req.Op, "err", err)
		writeLine(conn, "error passphrases of stanza "+req.Stanza+" are unavailable: "+oneLine(err.Error()))
		return
	}
	for n, p := range pp {
		if (n != RepoPrimary && n != RepoGeo) || len(p) == 0 || bytes.ContainsAny(p, " \t\r\n") {
			s.logger().ErrorContext(ctx, "backup passphrases malformed", "stanza", req.Stanza, "repo", n)
			writeLine(conn, "error passphrases of stanza "+req.Stanza+" are malformed")
			return
		}
	}
	// Sized up front, so that no copy of a passphrase is left behind in a
	// buffer outgrown and dropped.
	var b bytes.Buffer
	b.Grow(16 + len(pp)*(16+64))
	fmt.Fprintf(&b, "ok %d\n", len(pp))
	for n, p := range pp {
		fmt.Fprintf(&b, "repo %d ", n)
		b.Write(p)
		b.WriteByte('\n')
	}
	_, err = conn.Write(b.Bytes())
	clear(b.Bytes())
	if err != nil {
		s.logger().WarnContext(ctx, "backup passphrase answer failed", "stanza", req.Stanza, "err", err)
		return
	}
	s.logger().DebugContext(ctx, "backup passphrases given", "stanza", req.Stanza, "op", req.Op, "peer_pid", cred.Pid, "repos", len(pp))
}

func (s *PassphraseServer) refuse(ctx context.Context, conn net.Conn, req Request, why string) {
	s.logger().WarnContext(ctx, "backup passphrase request refused", "stanza", req.Stanza, "op", req.Op,
		"peer_pid", req.PeerPID, "peer_uid", req.PeerUID, "reason", why)
	writeLine(conn, "refused "+oneLine(why))
}

func writeLine(w io.Writer, s string) { _, _ = io.WriteString(w, s+"\n") }

func oneLine(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " ") }

// maxRequest bounds a request line.
const maxRequest = 512

// readRequest reads "pgflex-backup/1 OP STANZA\n".
func readRequest(r io.Reader) (Request, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxRequest), maxRequest).ReadString('\n')
	if err != nil {
		return Request{}, fmt.Errorf("read: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != protocolVersion {
		return Request{}, errors.New("malformed request")
	}
	if f[1] != opArchivePush && f[1] != opArchiveGet {
		return Request{}, fmt.Errorf("unknown operation %q", f[1])
	}
	if err := validateStanzaName(f[2]); err != nil {
		return Request{}, err
	}
	return Request{Op: f[1], Stanza: f[2]}, nil
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

// maxAncestors bounds the walk up the process tree: helper, shell,
// archiver or startup process, postmaster.
const maxAncestors = 6

// descendsFromPostgres reports nil if pid or one of its near ancestors is a
// postgres process working in dataDir (PostgreSQL's processes chdir to the
// data directory, and the shell running archive_command inherits it).
func descendsFromPostgres(pid int, dataDir string) error {
	if dataDir == "" {
		return errors.New("no data directory to check against")
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for p, i := pid, 0; p > 1 && i < maxAncestors; i++ {
		proc := "/proc/" + strconv.Itoa(p)
		if exe, err := os.Readlink(proc + "/exe"); err == nil && filepath.Base(exe) == "postgres" {
			if cwd, err := os.Readlink(proc + "/cwd"); err == nil && cwd == want {
				return nil
			}
		}
		pp, err := parentPID(p)
		if err != nil {
			return err
		}
		p = pp
	}
	return errors.New("no postgres ancestor works in its data directory")
}

// parentPID reads the parent of pid from /proc/pid/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so parse after the last ')'.
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[1])
}
