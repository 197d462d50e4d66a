package backup

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit statuses of the helper.
const (
	// exitRetry: archive-push failed; PostgreSQL keeps the segment and
	// retries it later.
	exitRetry = 1
	// exitNotFound: archive-get found no such file (the normal end of the
	// archive during recovery).
	exitNotFound = 1
	// exitAbort: archive-get could not tell whether the file exists.
	// PostgreSQL treats a restore_command exit status above 125 as fatal
	// and stops recovery, where any lower status would mean "end of
	// archive" and promote a server that has not replayed all its WAL.
	exitAbort = 126
)

// RunHelper runs the archive helper when args (os.Args[1:]) name it, and
// reports whether they did. cmd/pgflex calls it first thing:
//
//	if code, ok := backup.RunHelper(os.Args[1:]); ok { os.Exit(code) }
//
// PostgreSQL runs it, as the server's own OS account and inside its
// sandbox, as archive_command (Stanza.ArchiveCommand):
//
//	pgflex archive-push --socket=S --stanza=N --tool=pgbackrest %p
//
// and, while a restored server recovers, as restore_command (archive-get
// ... %f %p). It holds no secret and learns none: it asks the daemon's
// ArchiveServer at S to archive the segment (the daemon runs pgBackRest as
// the server's backup account, with the repository passphrases in that
// process's environment only), or to fetch one from the archive (the daemon
// hands over an open file descriptor of the fetched segment, which the
// helper copies to %p). The helper writes nothing else to disk.
func RunHelper(args []string) (code int, ok bool) {
	if len(args) == 0 || (args[0] != opArchivePush && args[0] != opArchiveGet) {
		return 0, false
	}
	return runHelper(context.Background(), args, os.Stderr), true
}

func runHelper(ctx context.Context, args []string, stderr io.Writer) int {
	op := args[0]
	failCode := exitRetry
	if op == opArchiveGet {
		failCode = exitAbort
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pgflex %s: "+format+"\n", append([]any{op}, a...)...)
		return failCode
	}
	fs := flag.NewFlagSet("pgflex "+op, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "the daemon's archive socket")
	stanza := fs.String("stanza", "", "the pgBackRest stanza")
	// pgBackRest's check and backup refuse an archive_command that does
	// not name pgbackrest; the daemon runs it.
	_ = fs.String("tool", "pgbackrest", "the archiver the daemon runs")
	if err := fs.Parse(args[1:]); err != nil {
		return failCode
	}
	wantArgs := 1 // %p
	if op == opArchiveGet {
		wantArgs = 2 // %f %p
	}
	if fs.NArg() != wantArgs {
		return fail("want %d WAL argument(s), got %d", wantArgs, fs.NArg())
	}
	if *socket == "" {
		return fail("--socket is required")
	}
	if err := validateStanzaName(*stanza); err != nil {
		return fail("%v", err)
	}
	if op == opArchivePush {
		// %p is relative to the data directory: pg_wal/NAME.
		p := fs.Arg(0)
		if filepath.Dir(p) != "pg_wal" {
			return fail("%q is not a file of pg_wal", p)
		}
		name := filepath.Base(p)
		if err := validateWALName(name); err != nil {
			return fail("%v", err)
		}
		if err := askPush(ctx, *socket, *stanza, name); err != nil {
			return fail("%v (the WAL segment stays with PostgreSQL, which retries it)", err)
		}
		return 0
	}
	name, dst := fs.Arg(0), fs.Arg(1)
	if err := validateWALName(name); err != nil {
		return fail("%v", err)
	}
	f, err := askGet(ctx, *socket, *stanza, name)
	if errors.Is(err, errNotInArchive) {
		return exitNotFound
	}
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	if err := copyTo(f, dst); err != nil {
		return fail("%v", err)
	}
	return 0
}

// copyTo writes r's content to path (PostgreSQL reads it right after).
func copyTo(r io.Reader, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return out.Close()
}

// helperTimeout bounds one exchange: pushing a segment through pgBackRest,
// or fetching one. PostgreSQL waits meanwhile (and retries on failure).
const helperTimeout = 10 * time.Minute

// dialArchive connects to the ArchiveServer and sends one request line.
func dialArchive(ctx context.Context, socket, op, stanza, name string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("archive service unavailable: %w", err)
	}
	conn := c.(*net.UnixConn)
	_ = conn.SetDeadline(time.Now().Add(helperTimeout))
	if _, err := fmt.Fprintf(conn, "%s %s %s %s\n", protocolVersion, op, stanza, name); err != nil {
		conn.Close()
		return nil, fmt.Errorf("archive service: %w", err)
	}
	return conn, nil
}

// askPush asks the daemon to archive pg_wal/name of the caller's server.
func askPush(ctx context.Context, socket, stanza, name string) error {
	conn, err := dialArchive(ctx, socket, opArchivePush, stanza, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	head, err := bufio.NewReaderSize(io.LimitReader(conn, 4<<10), 4<<10).ReadString('\n')
	if err != nil {
		return fmt.Errorf("archive service: no answer: %w", err)
	}
	return answerError(strings.TrimSuffix(head, "\n"))
}

// errNotInArchive: the archive has no such file (the end of recovery).
var errNotInArchive = errors.New("not in the archive")

// askGet asks the daemon for a WAL file from the archive the caller's
// recovery reads, and returns it open for reading.
func askGet(ctx context.Context, socket, stanza, name string) (*os.File, error) {
	conn, err := dialArchive(ctx, socket, opArchiveGet, stanza, name)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4<<10)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("archive service: no answer: %w", err)
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
			for _, m := range msgs {
				fds, err := syscall.ParseUnixRights(&m)
				if err != nil {
					continue
				}
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "archived-wal"))
				}
			}
		}
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if line == "ok" && len(files) == 1 {
		return files[0], nil
	}
	for _, f := range files {
		f.Close()
	}
	if line == "missing" {
		return nil, errNotInArchive
	}
	if line == "ok" {
		return nil, errors.New("archive service: answer without the file")
	}
	return nil, answerError(line)
}

// answerError turns an answer line into nil ("ok") or an error.
func answerError(line string) error {
	verb, rest, _ := strings.Cut(line, " ")
	switch verb {
	case "ok":
		return nil
	case "refused":
		return fmt.Errorf("archive service refused: %s", rest)
	case "failed":
		code, msg, _ := strings.Cut(rest, " ")
		if _, err := strconv.Atoi(code); err != nil {
			return errors.New("archive service: malformed answer")
		}
		return fmt.Errorf("pgbackrest failed (exit %s): %s", code, msg)
	case "error":
		return fmt.Errorf("archive service: %s", rest)
	}
	return errors.New("archive service: malformed answer")
}
