package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pgflex/pgflex/internal/osuser"
	"github.com/pgflex/pgflex/internal/sandbox"
)

// Error is a failed pgBackRest command, with pgBackRest's own error code and
// message (never a passphrase: pgBackRest redacts them, and Error removes
// any that would still appear).
type Error struct {
	// Command is the pgBackRest command, e.g. "backup" or "restore".
	Command string
	// Code is pgBackRest's error code (e.g. 37 for a missing option), or
	// its exit status when it printed no code.
	Code int
	// Message is pgBackRest's message, hints included.
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pgbackrest %s: [%03d] %s", e.Command, e.Code, e.Message)
}

// invocation is one pgBackRest command as a server's backup account.
type invocation struct {
	bin    string
	config string
	stanza string
	// user runs pgBackRest, with exactly its groups (the server's group,
	// to read the data directory).
	user osuser.User
	// repos are the repository indexes the configuration defines and
	// whether each is encrypted; every encrypted one needs a passphrase.
	repos  map[int]bool
	pass   Passphrases
	logger *slog.Logger
	// sandbox, if set, confines the command; exe runs sandbox.Main.
	sandbox *sandbox.Spec
	exe     string
}

// stanzaInvocation is an invocation against s's own pgbackrest.conf.
func (s *Stanza) invocation(pp Passphrases) invocation {
	repos := map[int]bool{}
	for _, r := range s.Repos {
		if !r.Paused {
			repos[r.Index] = !r.plaintext
		}
	}
	return invocation{bin: s.pgbackrest(), config: s.ConfigPath(), stanza: s.Name, user: s.Account,
		repos: repos, pass: pp, logger: s.logger(), sandbox: s.Sandbox, exe: s.SandboxExec}
}

// baseEnv is the whole environment of pgBackRest apart from passphrases:
// nothing of the daemon's own environment is passed on.
func baseEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TZ=UTC"}
}

// cipherEnv adds PGBACKREST_REPO{n}_CIPHER_PASS for every encrypted
// repository. Go strings cannot be zeroed: these copies live until the
// garbage collector reclaims them.
func cipherEnv(env []string, repos map[int]bool, pp Passphrases) ([]string, error) {
	idx := make([]int, 0, len(repos))
	for n := range repos {
		idx = append(idx, n)
	}
	slices.Sort(idx)
	for _, n := range idx {
		if !repos[n] {
			continue
		}
		p := pp[n]
		if len(p) == 0 {
			return nil, fmt.Errorf("backup: no passphrase for repository %d", n)
		}
		env = append(env, "PGBACKREST_REPO"+strconv.Itoa(n)+"_CIPHER_PASS="+string(p))
	}
	return env, nil
}

// maxOutput bounds what is kept of pgBackRest's output; maxMessage the
// length of an error message.
const (
	maxOutput  = 16 << 20
	maxMessage = 2000
)

// run runs pgbackrest --config --stanza [options...] command [params...]
// (args starting with "--" are options) and returns its standard output.
func (inv invocation) run(ctx context.Context, command string, args ...string) ([]byte, error) {
	env, err := cipherEnv(baseEnv(), inv.repos, inv.pass)
	if err != nil {
		return nil, err
	}
	// Options go before the command, its parameters (a WAL file, a
	// destination) after it.
	argv := []string{"--config=" + inv.config, "--stanza=" + inv.stanza}
	var params []string
	for _, a := range args {
		if strings.HasPrefix(a, "--") {
			argv = append(argv, a)
		} else {
			params = append(params, a)
		}
	}
	argv = append(append(argv, command), params...)
	cmd, err := inv.command(ctx, argv)
	if err != nil {
		return nil, err
	}
	cmd.Env = env
	// A cancelled backup is asked to stop (pgBackRest then stops its
	// local processes and leaves a resumable backup), killed only if it
	// does not.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	inv.logger.DebugContext(ctx, "pgbackrest", "command", command, "stanza", inv.stanza, "duration", time.Since(start), "ok", err == nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pgbackrest %s: %w", command, ctx.Err())
		}
		return nil, parseError(command, stderr.buf.Bytes(), cmd.ProcessState, err, inv.pass)
	}
	return stdout.buf.Bytes(), nil
}

// command is pgbackrest argv as the invocation's account: in its sandbox when it has one
// (which drops to the account itself).
func (inv invocation) command(ctx context.Context, argv []string) (*exec.Cmd, error) {
	if inv.sandbox != nil {
		spec := *inv.sandbox
		spec.User, spec.Dir = inv.user, "/"
		return spec.CommandContext(ctx, inv.exe, append([]string{inv.bin}, argv...)...)
	}
	cmd := exec.CommandContext(ctx, inv.bin, argv...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: inv.user.Credential()}
	return cmd, nil
}

var errorLineRE = regexp.MustCompile(`^(?:ERROR|ASSERT): \[(\d+)\]: (.*)$`)

// parseError turns pgBackRest's stderr into an *Error.
func parseError(command string, stderr []byte, ps interface{ ExitCode() int }, runErr error, secrets Passphrases) error {
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		// It did not run at all (missing binary, bad credentials).
		return fmt.Errorf("pgbackrest %s: %w", command, runErr)
	}
	e := &Error{Command: command, Code: ps.ExitCode()}
	lines := strings.Split(string(stderr), "\n")
	for i, l := range lines {
		m := errorLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		e.Code, _ = strconv.Atoi(m[1])
		msg := []string{m[2]}
		for _, cont := range lines[i+1:] {
			if !strings.HasPrefix(cont, " ") {
				break
			}
			msg = append(msg, strings.TrimSpace(cont))
		}
		e.Message = strings.Join(msg, " ")
		break
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(stderr))
		if e.Message == "" {
			e.Message = runErr.Error()
		}
	}
	e.Message = scrub(e.Message, secrets)
	return e
}

// scrub makes a pgBackRest message safe to show: passphrases removed
// (defence in depth: pgBackRest already redacts them); each line cut where
// it stops being printable text (a wrong passphrase decrypts an info file
// into noise that pgBackRest quotes); lines joined; length bounded.
func scrub(msg string, secrets Passphrases) string {
	for _, p := range secrets {
		if len(p) > 0 {
			msg = strings.ReplaceAll(msg, string(p), "<redacted>")
		}
	}
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		for i, r := range line {
			if r == utf8.RuneError || (!unicode.IsPrint(r) && r != '\t') {
				line = line[:i] + "<unreadable>"
				break
			}
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	s := strings.Join(out, " ")
	if len(s) > maxMessage {
		n := maxMessage
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return s
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
