package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// logLevel follows knack's CliLogLevel: what reaches stderr.
type logLevel int

const (
	levelError   logLevel = 1 // --only-show-errors
	levelWarning logLevel = 2 // default
	levelInfo    logLevel = 3 // --verbose
	levelDebug   logLevel = 4 // --debug
)

func (l logLevel) name() string {
	switch l {
	case levelError:
		return "ERROR"
	case levelWarning:
		return "WARNING"
	case levelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// ansi codes colorama uses for knack's log records.
func (l logLevel) color() string {
	switch l {
	case levelError:
		return "\x1b[91m"
	case levelWarning:
		return "\x1b[33m"
	case levelInfo:
		return "\x1b[32m"
	default:
		return "\x1b[36m"
	}
}

// logger writes az-style records on stderr. With color (stdout and stderr both terminals) a
// record is the message in its level's color; without, it is prefixed "ERROR: ", "WARNING: "...;
// at debug level the logger name follows, as knack's formats do.
type logger struct {
	w      io.Writer
	level  logLevel
	color  bool
	redact func(string) string
}

func (l *logger) log(lv logLevel, name, format string, args ...any) {
	if lv > l.level {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if l.redact != nil {
		msg = l.redact(msg)
	}
	var parts []string
	if !l.color {
		parts = append(parts, lv.name())
	}
	if l.level == levelDebug {
		parts = append(parts, name)
	}
	line := strings.Join(append(parts, msg), ": ")
	if l.color {
		line = lv.color() + line + "\x1b[0m"
	}
	fmt.Fprintln(l.w, line)
}

func (l *logger) errorf(name, format string, args ...any) { l.log(levelError, name, format, args...) }
func (l *logger) warningf(name, format string, args ...any) {
	l.log(levelWarning, name, format, args...)
}
func (l *logger) infof(name, format string, args ...any)  { l.log(levelInfo, name, format, args...) }
func (l *logger) debugf(name, format string, args ...any) { l.log(levelDebug, name, format, args...) }

// raw prints a line without decoration, as az prints recommendations after an error.
func (l *logger) raw(line string) { fmt.Fprintln(l.w, line) }

// lockedWriter serialises writes to stderr, shared by the logger and the progress spinner
// running on its own goroutine.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}
