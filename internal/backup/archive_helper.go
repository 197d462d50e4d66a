package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
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
// PostgreSQL runs it as archive_command (Stanza.ArchiveCommand):
//
//	pgflex archive-push --socket=S --stanza=N --config=C --pgbackrest=B %p
//
// and, during a restore, as restore_command (archive-get ... %f %p). It asks
// the PassphraseServer at S for stanza N's passphrases, then runs
// pgbackrest with them in that child's environment only; pgBackRest's
// output goes to PostgreSQL's log. The helper writes nothing to disk.
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
	socket := fs.String("socket", "", "the daemon's passphrase socket")
	stanza := fs.String("stanza", "", "the pgBackRest stanza")
	config := fs.String("config", "", "the stanza's pgbackrest.conf")
	pgbackrest := fs.String("pgbackrest", DefaultPgbackrest, "the pgbackrest executable")
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
	if *socket == "" || *config == "" {
		return fail("--socket and --config are required")
	}
	if err := validateStanzaName(*stanza); err != nil {
		return fail("%v", err)
	}

	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	pp, err := askPassphrases(qctx, *socket, op, *stanza)
	cancel()
	if err != nil {
		if op == opArchivePush {
			return fail("%v (the WAL segment stays with PostgreSQL, which retries it)", err)
		}
		return fail("%v", err)
	}
	defer pp.Wipe()
	repos, err := configuredRepos(*config)
	if err != nil {
		return fail("%v", err)
	}
	env, err := cipherEnv(baseEnv(), repos, pp)
	pp.Wipe()
	if err != nil {
		return fail("%v: is that repository paused?", err)
	}

	argv := append([]string{"--config=" + *config, "--stanza=" + *stanza, op}, fs.Args()...)
	cmd := exec.CommandContext(ctx, *pgbackrest, argv...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stderr, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		if op == opArchivePush {
			return ee.ExitCode()
		}
		if ee.ExitCode() == exitNotFound {
			return exitNotFound
		}
		return exitAbort
	default:
		return fail("run pgbackrest: %v", err)
	}
}

// askPassphrases asks the PassphraseServer for a stanza's passphrases.
func askPassphrases(ctx context.Context, socket, op, stanza string) (Passphrases, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("passphrase service unavailable: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	}
	if _, err := fmt.Fprintf(conn, "%s %s %s\n", protocolVersion, op, stanza); err != nil {
		return nil, fmt.Errorf("passphrase service: %w", err)
	}
	return readAnswer(conn)
}

// readAnswer reads "ok N" and N lines "repo I PASS", or "refused WHY" or
// "error WHY".
func readAnswer(r io.Reader) (Passphrases, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, 8<<10), 1<<10)
	head, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("passphrase service: no answer: %w", err)
	}
	head = strings.TrimSuffix(head, "\n")
	verb, rest, _ := strings.Cut(head, " ")
	switch verb {
	case "refused":
		return nil, fmt.Errorf("passphrase service refused: %s", rest)
	case "error":
		return nil, fmt.Errorf("passphrase service: %s", rest)
	case "ok":
	default:
		return nil, errors.New("passphrase service: malformed answer")
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n > 2 {
		return nil, errors.New("passphrase service: malformed answer")
	}
	pp := Passphrases{}
	for range n {
		line, err := br.ReadSlice('\n')
		if err != nil {
			pp.Wipe()
			return nil, fmt.Errorf("passphrase service: truncated answer: %w", err)
		}
		f := bytes.Fields(line)
		idx := 0
		if len(f) == 3 && string(f[0]) == "repo" {
			idx, _ = strconv.Atoi(string(f[1]))
		}
		if idx != RepoPrimary && idx != RepoGeo {
			clear(line)
			pp.Wipe()
			return nil, errors.New("passphrase service: malformed answer")
		}
		pp[idx] = append([]byte(nil), f[2]...)
		clear(line)
	}
	return pp, nil
}

var repoCipherRE = regexp.MustCompile(`^repo([0-9]+)-cipher-type=(.*)$`)

// configuredRepos reads which repositories pgbackrest.conf defines (those
// that are not paused) and whether each is encrypted. The file is pgflex's
// own rendering (renderINI), so a line-wise read is exact.
func configuredRepos(path string) (map[int]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pgBackRest configuration: %w", err)
	}
	repos := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := repoCipherRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			n, _ := strconv.Atoi(m[1])
			repos[n] = m[2] != "none"
		}
	}
	if len(repos) == 0 {
		return nil, fmt.Errorf("%s defines no repository", path)
	}
	return repos, nil
}
