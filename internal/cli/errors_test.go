package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestARMErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
		code       int
	}{
		{
			name:   "code and message",
			body:   `{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'x' could not be found."}}`,
			status: 404, code: exitNotFound,
			want: "(ResourceGroupNotFound) Resource group 'x' could not be found.\nCode: ResourceGroupNotFound\nMessage: Resource group 'x' could not be found.",
		},
		{
			name:   "bare error object, as azure-core also accepts",
			body:   `{"code":"Conflict","message":"Busy."}`,
			status: 409, code: exitFailure,
			want: "(Conflict) Busy.\nCode: Conflict\nMessage: Busy.",
		},
		{
			name: "target, two details, inner error and additional info",
			body: `{"error":{"code":"InvalidTemplate","message":"Bad.","target":"properties",
				"details":[{"code":"A","message":"first"},{"code":"B","message":"second","target":"t"}],
				"innererror":{"z":1,"a":"é"},
				"additionalInfo":[{"type":"PolicyViolation","info":{"policy":"p"}}]}}`,
			status: 400, code: exitFailure,
			want: "(InvalidTemplate) Bad.\nCode: InvalidTemplate\nMessage: Bad.\nTarget: properties\n" +
				"Exception Details:\t(A) first\n\tCode: A\n\tMessage: first\t(B) second\n\tCode: B\n\tMessage: second\n\tTarget: t\n" +
				"Inner error: {\n    \"z\": 1,\n    \"a\": \"\\u00e9\"\n}\n" +
				"Additional Information:Type: PolicyViolation\nInfo: {\n    \"policy\": \"p\"\n}\n",
		},
		{
			name: "not an ARM body", body: `<html>oops</html>`, status: 503, code: exitFailure,
			want: "Operation returned an invalid status 'Service Unavailable'",
		},
		{
			name: "error without code", body: `{"error":{"message":"no code"}}`, status: 500, code: exitFailure,
			want: "Operation returned an invalid status 'Internal Server Error'",
		},
		{
			name: "empty 404 (HEAD)", body: ``, status: 404, code: exitNotFound,
			want: "Operation returned an invalid status 'Not Found'",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := decodeARMError(tc.status, []byte(tc.body))
			if e.Error() != tc.want {
				t.Errorf("got\n%q\nwant\n%q", e.Error(), tc.want)
			}
			if _, _, code := describeError(fmt.Errorf("show: %w", e)); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
		})
	}
}

func TestDescribeError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		msg  string
		code int
	}{
		{"usage", fmt.Errorf("parse: %w", Usagef("unrecognized arguments: x")), "unrecognized arguments: x", exitUsage},
		{"user error hides the chain", fmt.Errorf("a: %w", &UserError{Msg: "Nice words.", Err: errors.New("b: c")}), "Nice words.", exitFailure},
		{"outermost user-facing error wins", &UserError{Msg: "outer", Err: &ARMError{Code: "X", Message: "inner", StatusCode: 404}}, "outer", exitFailure},
		{"plain chain shows its innermost message", fmt.Errorf("load: %w", fmt.Errorf("read: %w", errors.New("disk on fire"))), "disk on fire", exitFailure},
		{"interrupted", fmt.Errorf("wait: %w", context.Canceled), "Operation cancelled.", exitFailure},
	} {
		msg, _, code := describeError(tc.err)
		if msg != tc.msg || code != tc.code {
			t.Errorf("%s: got %q exit %d, want %q exit %d", tc.name, msg, code, tc.msg, tc.code)
		}
	}
}

// TestCLIUsageErrors runs command lines through Execute: argparse's texts on stderr, exit code 2.
func TestCLIUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "show", "--bogus"}, "ERROR: unrecognized arguments: --bogus\n"},
		{[]string{"group", "show", "-x"}, "ERROR: unrecognized arguments: -x\n"},
		{[]string{"group", "show", "extra", "args"}, "ERROR: unrecognized arguments: extra args\n"},
		{[]string{"group", "show", "-n"}, "ERROR: argument --name/-n/--resource-group/-g: expected one argument\n"},
		{[]string{"group", "show"}, "ERROR: the following arguments are required: --name/-n/--resource-group/-g\n"},
		{[]string{"group", "create"}, "ERROR: the following arguments are required: --name/--resource-group/-n/-g, --location/-l\n"},
		{[]string{"group", "frobnicate"}, "ERROR: 'frobnicate' is misspelled or not recognized by the system.\n"},
		{[]string{"nope"}, "ERROR: 'nope' is misspelled or not recognized by the system.\n"},
		{[]string{"version", "-o", "XML"}, "ERROR: argument --output/-o: invalid choice: 'xml' (choose from 'json', 'jsonc', 'yaml', 'yamlc', 'table', 'tsv', 'none')\n"},
		{[]string{"version", "--query", "[?"}, "ERROR: argument --query: invalid jmespath_type value: '[?'\n" + queryReference + "\n"},
		{[]string{"group", "delete", "--yes=maybe", "-n", "x"}, "ERROR: argument --yes/-y: invalid bool value: 'maybe'\n"},
		{[]string{"configure", "--defaults"}, "ERROR: argument --defaults/-d: expected at least one argument\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, runOpts{}, tc.args...)
			if code != exitUsage || stderr != tc.want || stdout != "" {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2, stderr %q", code, stderr, stdout, tc.want)
			}
		})
	}
}

func TestCLIErrorColorsWithoutPrefixOnTerminals(t *testing.T) {
	_, stderr, code := runCLI(t, runOpts{terminal: true}, "group", "show")
	want := "\x1b[91mthe following arguments are required: --name/-n/--resource-group/-g\x1b[0m\n"
	if code != exitUsage || stderr != want {
		t.Errorf("exit %d, stderr %q, want %q", code, stderr, want)
	}
}

func TestCLIOnlyShowErrorsConflicts(t *testing.T) {
	_, stderr, code := runCLI(t, runOpts{}, "version", "--only-show-errors", "--debug")
	if code != exitFailure || stderr != "ERROR: --only-show-errors can't be used together with --debug or --verbose\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestCLINotLoggedIn(t *testing.T) {
	_, stderr, code := runCLI(t, runOpts{}, "group", "list")
	if code != exitFailure || stderr != "ERROR: Please run 'pgflex login' to setup account.\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCLI(t, runOpts{}, "group", "list", "--profile", "/does/not/exist.json")
	if code != exitFailure || stderr != "ERROR: The profile file '/does/not/exist.json' does not exist.\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
