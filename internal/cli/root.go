package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Env is what the CLI runs against: arguments, streams, environment. Tests substitute their own.
type Env struct {
	Args   []string // without the program name
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether a stream (one of Stdin, Stdout, Stderr) is an interactive
	// terminal: it decides colors, the progress spinner and confirmation prompts.
	IsTerminal func(stream any) bool
	// Version is what `pgflex version` reports; empty means the module's build version.
	Version string
}

// OSEnv is the process's real environment.
func OSEnv() Env {
	return Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, IsTerminal: isTerminal}
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.IsTerminal == nil {
		e.IsTerminal = func(any) bool { return false }
	}
	if e.Version == "" {
		e.Version = "0.0.0-dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			e.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
	}
	return e
}

// App is the state one invocation shares between the root command and its subcommands: the
// environment, global flag values, configuration, and the lazily built client. Command
// constructors take the *App and capture it; nothing lives in package variables.
type App struct {
	env    Env
	stderr io.Writer // env.Stderr, serialised between the logger and the spinner
	log    *logger
	color  bool

	// global flags
	output         string
	query          *query
	onlyShowErrors bool
	debug          bool
	verbose        bool
	subscription   string
	profileFlag    string

	// loaded on first use
	cfg            *Config
	cfgDir         string
	client         *Client
	subscriptionID string
}

type appKey struct{}

// NewRootCommand builds the `pgflex` command tree for env. main adds the daemon's `serve`
// command with root.AddCommand and runs the tree with Execute.
func NewRootCommand(env Env) *cobra.Command {
	env = env.withDefaults()
	a := &App{env: env, output: "json"}
	a.stderr = &lockedWriter{w: env.Stderr}
	// knack colors only when both stdout and stderr are terminals (and the user did not
	// opt out); colored records drop their "ERROR: " prefixes.
	a.color = env.IsTerminal(env.Stdout) && env.IsTerminal(env.Stderr) &&
		env.Getenv("NO_COLOR") == "" && !isTrue(env.Getenv("PGFLEX_CORE_NO_COLOR"))
	a.log = &logger{w: a.stderr, level: levelWarning, color: a.color}

	root := &cobra.Command{
		Use:               "pgflex",
		Short:             "pgflex: self-hosted PostgreSQL flexible servers with Azure's API and CLI.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              cobra.ArbitraryArgs,
		RunE:              helpOrMisspelled,
		PersistentPreRunE: a.preRun,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(flagError)

	pf := root.PersistentFlags()
	pf.VarP(&choiceValue{p: &a.output, choices: outputFormats(), display: "--output/-o"}, "output", "o",
		"Output format. Allowed values: "+strings.Join(outputFormats(), ", ")+".")
	pf.Var(&queryValue{p: &a.query}, "query", "JMESPath query string. See http://jmespath.org/ for more information and examples.")
	pf.BoolVar(&a.onlyShowErrors, "only-show-errors", false, "Only show errors, suppressing warnings.")
	pf.BoolVar(&a.debug, "debug", false, "Increase logging verbosity to show all debug logs.")
	pf.BoolVar(&a.verbose, "verbose", false, "Increase logging verbosity. Use --debug for full debug logs.")
	pf.StringVar(&a.subscription, "subscription", "", "Name or ID of subscription. Defaults to the profile's subscription.")
	pf.StringVar(&a.profileFlag, "profile", "", "Profile file written by 'pgflex serve'. Defaults to $PGFLEX_PROFILE, then to the profile 'pgflex login' stored.")

	root.AddCommand(
		newAccountCommand(a),
		newADCommand(a),
		newCloudCommand(a),
		newConfigureCommand(a),
		newGroupCommand(a),
		newIdentityCommand(a),
		newKeyVaultCommand(a),
		newLoginCommand(a),
		newLogoutCommand(a),
		newMonitorCommand(a),
		newPortalCommand(a),
		newPostgresCommand(a),
		newRoleCommand(a),
		newVersionCommand(a),
	)
	root.SetContext(context.WithValue(context.Background(), appKey{}, a))
	return root
}

// Execute runs the command tree built by NewRootCommand with the Env's arguments and returns
// the process exit code: 0, 1 for a failed operation, 2 for a usage error, 3 when the service
// answered 404. Errors are printed on stderr as az prints them.
func Execute(root *cobra.Command) int {
	a, _ := root.Context().Value(appKey{}).(*App)
	if a == nil {
		if err := root.Execute(); err != nil {
			fmt.Fprintln(root.ErrOrStderr(), "ERROR: "+err.Error())
			return exitFailure
		}
		return exitOK
	}
	return a.execute(root)
}

func (a *App) execute(root *cobra.Command) int {
	start := time.Now()
	args := a.env.Args
	// knack reads the log level from the raw arguments, before parsing, so that parse errors
	// are already logged at the right level.
	level, err := logLevelFromArgs(args)
	if err != nil {
		return a.report(err)
	}
	a.log.level = level
	args, err = expandMultiValueFlags(root, args)
	if err != nil {
		return a.report(err)
	}
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(root.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		return a.report(err)
	}
	a.log.infof("cli.pgflex", "Command ran in %.3f seconds", time.Since(start).Seconds())
	return exitOK
}

func logLevelFromArgs(args []string) (logLevel, error) {
	has := func(flag string) bool { return slices.Contains(args, flag) }
	switch {
	case has("--only-show-errors"):
		if has("--debug") || has("--verbose") {
			return levelWarning, &UserError{Msg: "--only-show-errors can't be used together with --debug or --verbose"}
		}
		return levelError, nil
	case has("--debug"):
		return levelDebug, nil
	case has("--verbose"):
		return levelInfo, nil
	}
	return levelWarning, nil
}

// preRun applies what the global flags and the environment decide before any command runs.
func (a *App) preRun(cmd *cobra.Command, _ []string) error {
	if !cmd.Flags().Changed("output") {
		// az's core.output setting, by environment as AZURE_CORE_OUTPUT.
		if v := strings.ToLower(a.env.Getenv("PGFLEX_CORE_OUTPUT")); v != "" && slices.Contains(outputFormats(), v) {
			a.output = v
		}
	}
	return nil
}

// helpOrMisspelled is the action of a command group: help without arguments, az's
// "misspelled" usage error with one.
func helpOrMisspelled(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &UsageError{Msg: fmt.Sprintf("'%s' is misspelled or not recognized by the system.", args[0])}
	}
	return cmd.Help()
}

// newCommandGroup makes a command that only holds subcommands (az's command group).
func newCommandGroup(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ArbitraryArgs, RunE: helpOrMisspelled}
}

// noArgs rejects positional arguments as argparse does: az commands take none.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &UsageError{Msg: "unrecognized arguments: " + strings.Join(args, " ")}
	}
	return nil
}

// choiceValue is a flag restricted to a set of values, compared case-insensitively as az's
// `type=str.lower` choices are.
type choiceValue struct {
	p       *string
	choices []string
	display string
}

func (v *choiceValue) String() string { return *v.p }
func (v *choiceValue) Type() string   { return "string" }
func (v *choiceValue) Set(s string) error {
	s = strings.ToLower(s)
	if !slices.Contains(v.choices, s) {
		quoted := make([]string, len(v.choices))
		for i, c := range v.choices {
			quoted[i] = pythonRepr(c)
		}
		return &UsageError{Msg: fmt.Sprintf("argument %s: invalid choice: %s (choose from %s)",
			v.display, pythonRepr(s), strings.Join(quoted, ", "))}
	}
	*v.p = s
	return nil
}

// queryValue compiles --query while the command line is parsed, as az's jmespath_type does.
type queryValue struct {
	p   **query
	raw string
}

func (v *queryValue) String() string { return v.raw }
func (v *queryValue) Type() string   { return "string" }
func (v *queryValue) Set(s string) error {
	q, err := compileQuery(s)
	if err != nil {
		return err
	}
	*v.p, v.raw = q, s
	return nil
}

// annotationNargs marks a flag that takes several values after it, as argparse's nargs='+' or
// nargs='*' do (--tags a=b c=d). pflag takes one value per occurrence, so
// expandMultiValueFlags rewrites "--tags a=b c=d" into "--tags=a=b --tags=c=d" before parsing.
const annotationNargs = "pgflex/nargs"

// markMultiValue makes a registered flag take several values (nargs is "+" or "*").
func markMultiValue(cmd *cobra.Command, name, nargs string) {
	_ = cmd.Flags().SetAnnotation(name, annotationNargs, []string{nargs})
}

// expandMultiValueFlags rewrites multi-value flags of the command args select into one
// occurrence per value. A value is every following argument up to the next one that looks like
// an option; "*" flags given no value get an empty one (--tags alone clears tags in az).
func expandMultiValueFlags(root *cobra.Command, args []string) ([]string, error) {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args, nil
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			out = append(out, args[i:]...)
			break
		}
		f, inline, hasInline := lookupFlagArg(cmd, arg)
		if f == nil || len(f.Annotations[annotationNargs]) == 0 {
			out = append(out, arg)
			continue
		}
		var values []string
		if hasInline {
			values = append(values, inline)
		}
		for i+1 < len(args) && !looksLikeOption(args[i+1]) {
			i++
			values = append(values, args[i])
		}
		if len(values) == 0 {
			if f.Annotations[annotationNargs][0] == "+" {
				return nil, Usagef("argument %s: expected at least one argument", flagDisplayName(f))
			}
			values = []string{""}
		}
		for _, v := range values {
			out = append(out, "--"+f.Name+"="+v)
		}
	}
	return out, nil
}

// lookupFlagArg finds the flag an argument names: --name, --name=value or -n.
func lookupFlagArg(cmd *cobra.Command, arg string) (f *pflag.Flag, inline string, hasInline bool) {
	flags := cmd.Flags()
	switch {
	case strings.HasPrefix(arg, "--") && len(arg) > 2:
		name := arg[2:]
		if i := strings.IndexByte(name, '='); i >= 0 {
			name, inline, hasInline = name[:i], name[i+1:], true
		}
		return flags.Lookup(name), inline, hasInline
	case strings.HasPrefix(arg, "-") && len(arg) == 2:
		return flags.ShorthandLookup(arg[1:]), "", false
	}
	return nil, "", false
}

// looksLikeOption is argparse's test for where a multi-value flag's values end.
func looksLikeOption(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return false // a negative number is a value
	}
	return true
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
