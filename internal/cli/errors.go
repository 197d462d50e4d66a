package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, as az uses them.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed
	exitUsage    = 2 // argparse: the command line itself is wrong
	exitNotFound = 3 // the service answered 404 (az's ResourceNotFoundError)
)

// queryReference is az's pointer to its --query documentation, printed after query errors.
const queryReference = "To learn more about --query, please visit: 'https://docs.microsoft.com/cli/azure/query-azure-cli'"

// UsageError is a problem with how a command was invoked: an unknown flag, a missing required
// argument, a bad flag value. It exits with code 2, as argparse does for az.
type UsageError struct {
	Msg string
	// Recommendation is printed on its own line after the error, as az prints its hints.
	Recommendation string
}

func (e *UsageError) Error() string { return e.Msg }

// Usagef makes a UsageError from a format string.
func Usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// UserError is a failed operation explained in one message for the user. Err keeps the cause
// for --debug; the user sees only Msg, never the chain of Go error prefixes.
type UserError struct {
	Msg            string
	Recommendation string
	Err            error
}

func (e *UserError) Error() string { return e.Msg }
func (e *UserError) Unwrap() error { return e.Err }

// userError explains a failure caused by err: the message, then only err's innermost text
// ("permission denied"), never the chain of prefixes above it.
func userError(err error, format string, args ...any) *UserError {
	return &UserError{Msg: fmt.Sprintf(format, args...) + ": " + innermost(err).Error(), Err: err}
}

// innermost is the last error of err's Unwrap chain.
func innermost(err error) error {
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return err
}

// errCancelled is az's answer when the user declines a confirmation or interrupts the command.
var errCancelled = &UserError{Msg: "Operation cancelled."}

// ARMError is an error answer of the service: the ARM error body
// {"error":{"code","message","target","details","additionalInfo","innererror"}}, or a generic
// description when the body is not one.
type ARMError struct {
	StatusCode     int
	Code           string
	Message        string
	Target         string
	Details        []*ARMError
	AdditionalInfo []ARMErrorInfo
	// InnerError is kept verbatim (its key order matters for printing).
	InnerError json.RawMessage
}

// ARMErrorInfo is one entry of additionalInfo.
type ARMErrorInfo struct {
	Type string          `json:"type"`
	Info json.RawMessage `json:"info"`
}

// Error renders the error exactly as azure-core's ARMErrorFormat does, which is what az
// prints: "(Code) Message", then "Code:", "Message:" and the optional parts. The joins
// (including the missing line break after "Exception Details:") are azure-core's.
func (e *ARMError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(%s) %s\nCode: %s\nMessage: %s", e.Code, e.Message, e.Code, e.Message)
	if e.Target != "" {
		fmt.Fprintf(&b, "\nTarget: %s", e.Target)
	}
	if len(e.Details) > 0 {
		b.WriteString("\nException Details:")
		for _, d := range e.Details {
			lines := strings.Split(d.Error(), "\n")
			for i := range lines {
				lines[i] = "\t" + lines[i]
			}
			b.WriteString(strings.Join(lines, "\n"))
		}
	}
	if len(e.InnerError) > 0 {
		b.WriteString("\nInner error: ")
		b.WriteString(pythonJSONDump(e.InnerError))
	}
	if len(e.AdditionalInfo) > 0 {
		b.WriteString("\nAdditional Information:")
		for _, info := range e.AdditionalInfo {
			fmt.Fprintf(&b, "Type: %s\nInfo: %s\n", info.Type, pythonJSONDump(info.Info))
		}
	}
	return b.String()
}

// exitCode is 3 for a 404, as az maps ResourceNotFoundError, else 1.
func (e *ARMError) exitCode() int {
	if e.StatusCode == http.StatusNotFound {
		return exitNotFound
	}
	return exitFailure
}

// armErrorJSON is the wire shape of one ARM error object.
type armErrorJSON struct {
	Code           string          `json:"code"`
	Message        string          `json:"message"`
	Target         string          `json:"target"`
	Details        []armErrorJSON  `json:"details"`
	AdditionalInfo []ARMErrorInfo  `json:"additionalInfo"`
	InnerError     json.RawMessage `json:"innererror"`
}

func (j *armErrorJSON) toError(status int) *ARMError {
	e := &ARMError{StatusCode: status, Code: j.Code, Message: j.Message, Target: j.Target,
		AdditionalInfo: j.AdditionalInfo}
	if len(j.InnerError) > 0 && string(j.InnerError) != "null" {
		e.InnerError = j.InnerError
	}
	for i := range j.Details {
		e.Details = append(e.Details, j.Details[i].toError(status))
	}
	return e
}

// decodeARMError reads an error answer. Like azure-core it accepts the error object wrapped in
// {"error": ...} or bare, and falls back to "Operation returned an invalid status" when the
// body carries no error code.
func decodeARMError(status int, body []byte) *ARMError {
	var envelope struct {
		Error json.RawMessage `json:"error"`
	}
	obj := body
	if json.Unmarshal(body, &envelope) == nil && len(envelope.Error) > 0 && envelope.Error[0] == '{' {
		obj = envelope.Error
	}
	var j armErrorJSON
	if json.Unmarshal(obj, &j) == nil && j.Code != "" {
		return j.toError(status)
	}
	return &ARMError{StatusCode: status,
		Message: fmt.Sprintf("Operation returned an invalid status '%s'", http.StatusText(status))}
}

// pythonJSONDump renders raw JSON as Python's json.dumps(obj, indent=4) does, which azure-core
// uses for inner errors and additional info: keys in document order, non-ASCII escaped.
func pythonJSONDump(raw json.RawMessage) string {
	doc, err := decodeDocument(raw)
	if err != nil {
		return string(raw)
	}
	var b strings.Builder
	writeJSON(&b, doc.node(doc.root, nil), jsonStyle{indent: "    ", ensureASCII: true}, 0)
	return b.String()
}

// report prints err the way az does and returns the process exit code. The outermost error in
// the chain that is meant for the user decides the message; anything else shows only its
// innermost message, so Go's "doing x: doing y:" prefixes never reach the user. --debug logs
// the whole chain.
func (a *App) report(err error) int {
	a.log.debugf("cli.pgflex", "command failed: %v", err)
	msg, rec, code := describeError(err)
	a.log.errorf("cli.pgflex", "%s", msg)
	if rec != "" {
		a.log.raw(rec)
	}
	return code
}

// describeError picks the message, recommendation and exit code for err.
func describeError(err error) (msg, recommendation string, code int) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch t := e.(type) {
		case *UsageError:
			return t.Msg, t.Recommendation, exitUsage
		case *UserError:
			return t.Msg, t.Recommendation, exitFailure
		case *ARMError:
			return t.Error(), "", t.exitCode()
		}
	}
	if errors.Is(err, context.Canceled) {
		return errCancelled.Msg, "", exitFailure
	}
	return innermost(err).Error(), "", exitFailure
}

// flagError translates pflag's parse errors into argparse's texts, which az prints.
func flagError(cmd *cobra.Command, err error) error {
	var notExist *pflag.NotExistError
	var needsValue *pflag.ValueRequiredError
	var invalid *pflag.InvalidValueError
	var usage *UsageError
	switch {
	case errors.As(err, &usage):
		return usage
	case errors.As(err, &notExist):
		if s := notExist.GetSpecifiedShortnames(); s != "" {
			return Usagef("unrecognized arguments: -%s", s)
		}
		return Usagef("unrecognized arguments: --%s", notExist.GetSpecifiedName())
	case errors.As(err, &needsValue):
		return Usagef("argument %s: expected one argument", flagDisplayName(needsValue.GetFlag()))
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		return Usagef("argument %s: invalid %s value: %s", flagDisplayName(f), f.Value.Type(), pythonRepr(invalid.GetValue()))
	}
	return &UsageError{Msg: err.Error()}
}

// annotationDisplay names a flag as az prints it in errors when pflag's "--long/-s" is not what
// az shows (aliases such as --name/-n/--resource-group/-g).
const annotationDisplay = "pgflex/display"

// flagDisplayName is the option list as argparse joins it: "--resource-group/-g".
func flagDisplayName(f *pflag.Flag) string {
	if f == nil {
		return ""
	}
	if d := f.Annotations[annotationDisplay]; len(d) == 1 {
		return d[0]
	}
	if f.Shorthand != "" {
		return "--" + f.Name + "/-" + f.Shorthand
	}
	return "--" + f.Name
}
