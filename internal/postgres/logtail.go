package postgres

import (
	"bytes"
	"errors"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// logTailBytes bounds how much of each log file LogTail reads from its end.
const logTailBytes = 32 << 10

// LogTail returns, oldest first, up to maxLines of what the server logged last: the tail of
// the postmaster's own output (errors before the logging collector runs, such as a port in
// use) followed by the tail of the newest file the logging collector wrote (errors after it,
// such as a recovery that cannot find its WAL). Each line is passed through RedactLogLine.
// It is evidence for an operation's error, read while the volume is still mounted: files are
// opened beneath the data directory without following links, since the server's account owns
// them. Unreadable files give no lines, not an error.
func (i *Instance) LogTail(maxLines int) []string {
	if maxLines <= 0 {
		return nil
	}
	logDir := path.Dir(postmasterLogName)
	var lines []string
	for _, rel := range []string{postmasterLogName, i.newestLog(logDir)} {
		if rel == "" {
			continue
		}
		for _, l := range tailLines(i.DataDir, rel, maxLines) {
			lines = append(lines, RedactLogLine(l))
		}
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return lines
}

// newestLog names the logging collector's newest file in logDir, "" if there is none. Its
// names (log_filename postgresql-%Y-%m-%d_%H%M%S.log) sort by time.
func (i *Instance) newestLog(logDir string) string {
	d, err := fsutil.OpenBeneath(i.DataDir, logDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return ""
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return ""
	}
	names = slices.DeleteFunc(names, func(n string) bool {
		return !strings.HasPrefix(n, "postgresql-") || !strings.HasSuffix(n, ".log")
	})
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return path.Join(logDir, names[len(names)-1])
}

// tailLines reads the last lines of a regular file beneath dir.
func tailLines(dir, rel string, maxLines int) []string {
	f, err := fsutil.OpenBeneath(dir, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	start := max(fi.Size()-logTailBytes, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, start, logTailBytes))
	if err != nil {
		return nil
	}
	if start > 0 {
		// The first line read is a fragment.
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
			b = b[nl+1:]
		}
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimRight(l, "\r \t"); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > maxLines {
		out = out[len(out)-maxLines:]
	}
	return out
}

var (
	// A password or verifier in a statement that a log line quotes: PASSWORD '...' (any case).
	passwordLiteralRE = regexp.MustCompile(`(?i)(\bpassword\s+)'(?:[^']|'')*'`)
	// A SCRAM verifier wherever it appears.
	scramVerifierRE = regexp.MustCompile(`SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+`)
	// password=... in a connection string.
	connPasswordRE = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// RedactLogLine removes what could be a credential from a line of PostgreSQL's log before it
// leaves the server (into an operation's error or the activity log): password literals of
// role statements, SCRAM verifiers, and passwords in connection strings. The service runs its
// own password statements with logging off; this is the second line.
func RedactLogLine(line string) string {
	line = passwordLiteralRE.ReplaceAllString(line, "${1}'[redacted]'")
	line = scramVerifierRE.ReplaceAllString(line, "[redacted]")
	return connPasswordRE.ReplaceAllString(line, "${1}[redacted]")
}

// LogEvidence is an error that carries the end of the server's log, read when the error
// happened (a failed start or recovery), before anyone removed the files.
type LogEvidence struct {
	Err   error
	Lines []string
}

func (e *LogEvidence) Error() string { return e.Err.Error() }
func (e *LogEvidence) Unwrap() error { return e.Err }

// EvidenceLines is how much of the log an error carries.
const EvidenceLines = 40

// WithLog wraps err with the tail of the server's log (nil stays nil, and an error that
// already carries the log is kept as it is).
func (i *Instance) WithLog(err error) error {
	if err == nil || LogOf(err) != nil {
		return err
	}
	lines := i.LogTail(EvidenceLines)
	if len(lines) == 0 {
		return err
	}
	return &LogEvidence{Err: err, Lines: lines}
}

// LogOf returns the log lines an error carries, nil if none.
func LogOf(err error) []string {
	var le *LogEvidence
	if errors.As(err, &le) {
		return le.Lines
	}
	return nil
}

// FailureLine is what the log says went wrong: the last PANIC or FATAL line, else the last
// ERROR line, from its severity on and with its spacing collapsed; "" if there is none.
// Clients turned away while the server starts or recovers ("the database system is ...")
// are not why it failed.
func FailureLine(lines []string) string {
	for _, sevs := range [][]string{{"PANIC:", "FATAL:"}, {"ERROR:"}} {
		for _, l := range slices.Backward(lines) {
			if strings.Contains(l, "the database system is") {
				continue
			}
			for _, sev := range sevs {
				if i := strings.Index(l, sev); i >= 0 {
					return strings.Join(strings.Fields(l[i:]), " ")
				}
			}
		}
	}
	return ""
}
