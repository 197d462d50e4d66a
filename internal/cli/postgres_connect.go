package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/pgflex/pgflex/internal/localnet"
)

// Connecting to a server: show-connection-string prints the strings az prints, with the
// server's host name (its fullyQualifiedDomainName) and the daemon's PostgreSQL endpoint port;
// connect runs psql; execute runs a query or a file and prints its rows as az does. Every
// connection verifies the server's certificate against the profile's CA (sslmode=verify-full);
// passwords never reach a command line.

// postgresURI is the URI form az prints as psql_cmd and connectionString: the port is left out
// where it is PostgreSQL's own 5432, as az leaves it out.
func postgresURI(host, port, user, password, database string) string {
	if port != "5432" {
		host += ":" + port
	}
	return fmt.Sprintf("postgresql://%s:%s@%s/%s?sslmode=require", escapeUserinfo(user), escapeUserinfo(password), host, database)
}

// escapeUserinfo percent-encodes what would end the user or password part of a URI; other
// characters (and placeholders such as "{password}") stay as they are.
func escapeUserinfo(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case ':', '@', '/', '?', '#', '%', '[', ']', ' ', '&', '=', '+':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// connectionStrings is az's _create_postgresql_connection_strings with the server's port in
// every form and sslmode=require wherever the client takes it.
func connectionStrings(host, port, user, password, database string) map[string]string {
	return map[string]string{
		"psql_cmd": postgresURI(host, port, user, password, database),
		"ado.net": fmt.Sprintf("Server=%s;Database=%s;Port=%s;User Id=%s;Password=%s;Ssl Mode=Require;",
			host, database, port, user, password),
		"jdbc": fmt.Sprintf("jdbc:postgresql://%s:%s/%s?user=%s&password=%s&sslmode=require", host, port, database, user, password),
		"node.js": fmt.Sprintf("var conn= new Client({host:'%s', user:'%s', password:'%s', database:'%s', port:%s, ssl:{ca:fs.readFileSync(\"{ca-cert filename}\")}});",
			host, user, password, database, port),
		"php": fmt.Sprintf("pg_connect(\"host=%s port=%s dbname=%s user=%s password=%s sslmode=require\");", host, port, database, user, password),
		"python": fmt.Sprintf("cnx = psycopg2.connect(user='%s', password='%s', host='%s', port=%s, database='%s', sslmode='require')",
			user, password, host, port, database),
		"ruby": fmt.Sprintf("connection = PG::Connection.new(user => \"%s\", password => \"%s\", database => \"%s\", host => \"%s\", port => '%s', sslmode => 'require')",
			user, password, database, host, port),
		"C++ (libpq)": fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=require", host, port, database, user, password),
	}
}

func newPostgresShowConnectionStringCommand(a *App) *cobra.Command {
	var group, server, database, user, password string
	var pgBouncer bool
	cmd := &cobra.Command{
		Use:   "show-connection-string",
		Short: "Show the connection strings for a PostgreSQL flexible-server database.",
		Long: "Show the connection strings for a PostgreSQL flexible-server database. With --server-name the server's " +
			"host name (its fullyQualifiedDomainName) and port (5432 unless the daemon's PostgreSQL endpoint listens elsewhere) " +
			"are filled in; what is not given stays a placeholder.",
		Example: "  pgflex postgres flexible-server show-connection-string -s mydemoserver -d mydb -u myadmin -p 'Secret123!'",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, port := "{host}", "{port}"
			if server != "" {
				srv, _, err := a.findServer(cmd.Context(), server, group)
				if err != nil {
					return err
				}
				c, err := a.ARMClient(cmd.Context())
				if err != nil {
					return err
				}
				host, port = srv.host(), strconv.Itoa(postgresPort(c))
			}
			if pgBouncer {
				a.log.warningf(pgLog, "pgflex servers have no PgBouncer; the strings name the server itself.")
			}
			return a.Print(map[string]any{"connectionStrings": connectionStrings(host, port, user, password, database)})
		},
	}
	addLookupGroupFlag(cmd, &group)
	f := cmd.Flags()
	f.StringVarP(&server, "server-name", "s", "", "Name of the server.")
	f.StringVarP(&database, "database-name", "d", "{database}", "The name of a database.")
	f.StringVarP(&user, "admin-user", "u", "{login}", "The login username of the administrator.")
	f.StringVarP(&password, "admin-password", "p", "{password}", "The login password of the administrator.")
	f.BoolVar(&pgBouncer, "pg-bouncer", false, "Show connection strings for PgBouncer.")
	return cmd
}

// addLookupGroupFlag is -g for commands that find a server by name: optional, no configured
// default.
func addLookupGroupFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "resource-group", "g", "", "Name of the server's resource group. Optional: the server is found by its name.")
}

// pgConnArgs are what connect and execute need.
type pgConnArgs struct {
	group, server, user, password, database, query, file string
	interactive                                          bool
}

func addConnFlags(cmd *cobra.Command, o *pgConnArgs) {
	addLookupGroupFlag(cmd, &o.group)
	f := cmd.Flags()
	f.StringVarP(&o.server, "name", "n", "", "Name of the server.")
	f.StringVarP(&o.user, "admin-user", "u", "", "The login username of the administrator. Default: the server's administrator login.")
	f.StringVarP(&o.password, "admin-password", "p", "", "The login password of the administrator.")
	f.StringVarP(&o.database, "database-name", "d", "", "The name of a database. Default: postgres.")
	f.StringVarP(&o.query, "querytext", "q", "", "A query to run against the flexible server.")
}

// connTarget looks the server up and fills the defaults: the administrator login, the postgres
// database (with az's warning).
func (a *App) connTarget(ctx context.Context, o *pgConnArgs) (*pgServer, error) {
	// No configured default group here: like az, these commands find the server by its
	// (globally unique) name, and -g only narrows the search.
	if err := a.ResolveArgs(RequiredArg("--name/-n", &o.server)); err != nil {
		return nil, err
	}
	srv, _, err := a.findServer(ctx, o.server, o.group)
	if err != nil {
		return nil, err
	}
	if o.user == "" {
		o.user = srv.Properties.AdministratorLogin
	}
	if o.database == "" {
		o.database = pgDefaultDatabase
		a.log.warningf(pgLog, "Connecting to %s database by default.", o.database)
	}
	return srv, nil
}

func newPostgresConnectCommand(a *App) *cobra.Command {
	var o pgConnArgs
	cmd := &cobra.Command{
		Use:   "connect",
		Short: "Connect to a flexible server with psql.",
		Long: "Connect to a flexible server with psql, verifying the server's certificate against the profile's CA " +
			"(sslmode=verify-full). Without --admin-password psql asks for the password. With --querytext psql runs " +
			"that one query and exits.",
		Example: "  pgflex postgres flexible-server connect -n mydemoserver -u myadmin\n" +
			"  pgflex postgres flexible-server connect -n mydemoserver -p 'Secret123!' -q 'select version()'",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := a.connTarget(cmd.Context(), &o)
			if err != nil {
				return err
			}
			return a.runPsql(cmd.Context(), srv, &o)
		},
	}
	addConnFlags(cmd, &o)
	cmd.Flags().BoolVar(&o.interactive, "interactive", false, "Run in interactive mode (the default without --querytext).")
	return cmd
}

// psqlConninfo is a libpq connection string; values are quoted as libpq reads them.
func psqlConninfo(kv ...string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		v := strings.ReplaceAll(strings.ReplaceAll(kv[i+1], `\`, `\\`), `'`, `\'`)
		parts = append(parts, kv[i]+"='"+v+"'")
	}
	return strings.Join(parts, " ")
}

// runPsql runs psql against the server. The profile's CA goes to a private temporary file for
// sslrootcert and is removed afterwards; the password reaches psql only through PGPASSWORD in
// its own environment, never its command line. psql owns the terminal while it runs, so
// Ctrl-C cancels a query rather than the session.
func (a *App) runPsql(ctx context.Context, srv *pgServer, o *pgConnArgs) error {
	psql, err := exec.LookPath("psql")
	if err != nil {
		return &UserError{Msg: "psql was not found on PATH. Install the PostgreSQL client (postgresql-client) to use 'pgflex postgres flexible-server connect'.", Err: err}
	}
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	caFile, err := writeTempCA(c.Profile().CACertificate)
	if err != nil {
		return err
	}
	defer os.Remove(caFile)
	conninfo := []string{"host", srv.host(), "port", strconv.Itoa(postgresPort(c)), "dbname", o.database,
		"user", o.user, "sslmode", "verify-full", "sslrootcert", caFile}
	if localnet.IsLocalhost(srv.host()) {
		// As pgflex's other clients do, *.localhost is the loopback address whatever the
		// resolver says; host still names the server (TLS server name, verification).
		conninfo = append(conninfo, "hostaddr", "127.0.0.1")
	}
	args := []string{psqlConninfo(conninfo...)}
	if o.query != "" {
		args = append(args, "-c", o.query)
		if o.interactive {
			a.log.warningf(pgLog, "Ignoring query command passed in. Cannot run a query and interactive mode simultaneously. Please try running either a simple query using -q or run your query in interactive mode using --interactive.")
			args = args[:1]
		}
	}
	cmd := exec.Command(psql, args...)
	cmd.Env = psqlEnv(os.Environ(), o.password)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.env.Stdin, a.env.Stdout, a.env.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &UserError{Msg: fmt.Sprintf("psql exited with status %d.", ee.ExitCode()), Err: err}
	}
	if err != nil {
		return userError(err, "Unable to run psql")
	}
	return nil
}

// psqlEnv is the child's environment: the caller's, with PGPASSWORD set when a password was
// given (replacing any inherited one).
func psqlEnv(environ []string, password string) []string {
	if password == "" {
		return environ
	}
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PGPASSWORD=") {
			out = append(out, kv)
		}
	}
	return append(out, "PGPASSWORD="+password)
}

// writeTempCA writes the CA certificate to a new 0600 temporary file for libpq's sslrootcert.
func writeTempCA(pemText string) (string, error) {
	f, err := os.CreateTemp("", "pgflex-ca-*.crt") // CreateTemp opens with mode 0600
	if err != nil {
		return "", fmt.Errorf("write CA certificate for psql: %w", err)
	}
	if _, err := f.WriteString(pemText); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write CA certificate for psql: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write CA certificate for psql: %w", err)
	}
	return f.Name(), nil
}

func newPostgresExecuteCommand(a *App) *cobra.Command {
	var o pgConnArgs
	cmd := &cobra.Command{
		Use:   "execute",
		Short: "Connect to a flexible server and run a query or a SQL file.",
		Long: "Connect to a flexible server (TLS, certificate verified against the profile's CA) and run a query, " +
			"printing up to 30 rows of its result as a list of objects, or run the statements of a SQL file.",
		Example: "  pgflex postgres flexible-server execute -n mydemoserver -u myadmin -p 'Secret123!' -d postgres -q 'select 1 as one'\n" +
			"  pgflex postgres flexible-server execute -n mydemoserver -p 'Secret123!' -f ./schema.sql",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.ResolveArgs(RequiredArg("--admin-password/-p", &o.password)); err != nil {
				return err
			}
			if o.query == "" && o.file == "" {
				return Usagef("the following arguments are required: --querytext/-q or --file-path/-f")
			}
			ctx := cmd.Context()
			srv, err := a.connTarget(ctx, &o)
			if err != nil {
				return err
			}
			return a.executeQuery(ctx, srv, &o)
		},
	}
	addConnFlags(cmd, &o)
	cmd.Flags().StringVarP(&o.file, "file-path", "f", "", "The path of the sql file to execute.")
	return cmd
}

// maxQueryRows is how many rows az's execute prints.
const maxQueryRows = 30

// executeQuery is az's _connect_execute_query / _connect_execute_file over one TLS connection.
func (a *App) executeQuery(ctx context.Context, srv *pgServer, o *pgConnArgs) error {
	c, err := a.ARMClient(ctx)
	if err != nil {
		return err
	}
	pool, err := c.Profile().CertPool()
	if err != nil {
		return err
	}
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return userError(err, "Unable to connect to flexible server")
	}
	// Every field the environment may have set is overwritten: the target is the server.
	cfg.Host, cfg.Port = srv.host(), uint16(postgresPort(c))
	cfg.LookupFunc = localnet.LookupHost
	cfg.User, cfg.Password, cfg.Database = o.user, o.password, o.database
	cfg.TLSConfig = &tls.Config{RootCAs: pool, ServerName: srv.host(), MinVersion: tls.VersionTLS12}
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = 15 * time.Second
	cfg.RuntimeParams = map[string]string{"application_name": "pgflex-cli"}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		a.log.warningf(pgLog, "Failed connection to %s. Check error and validate firewall and public access or virtual network settings.", o.server)
		return &UserError{Msg: "Unable to connect to flexible server: " + innermost(err).Error(), Err: err}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if o.file != "" {
		return a.executeFile(ctx, conn, o)
	}
	a.log.warningf(pgLog, "Successfully connected to %s.", o.server)
	results, err := execAll(ctx, conn, o.query)
	if err != nil {
		return &UserError{Msg: fmt.Sprintf("Unable to execute query '%s': %s", o.query, pgErrorText(err)), Err: err}
	}
	a.log.warningf(pgLog, "Ran Database Query: '%s'", o.query)
	a.log.warningf(pgLog, "Retrieving first 30 rows of query output, if applicable.")
	a.log.warningf(pgLog, "Closed the connection to %s", o.server)
	if len(results) == 0 {
		return nil
	}
	// As with psycopg2's cursor, only the last statement's result is returned.
	last := results[len(results)-1]
	if len(last.FieldDescriptions) == 0 {
		return nil
	}
	return a.Print(queryRows(last, maxQueryRows))
}

// execAll runs sql (one statement or several) and returns every statement's result, or the
// first error: the connection's or a statement's.
func execAll(ctx context.Context, conn *pgconn.PgConn, sql string) ([]*pgconn.Result, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.Err != nil {
			return nil, r.Err
		}
	}
	return results, nil
}

func (a *App) executeFile(ctx context.Context, conn *pgconn.PgConn, o *pgConnArgs) error {
	data, err := os.ReadFile(o.file)
	if err != nil {
		return userError(err, "Unable to read the sql file %s", o.file)
	}
	sql := strings.TrimPrefix(string(data), "\ufeff") // az opens the file as utf-8-sig
	a.log.warningf(pgLog, "Running sql file '%s'...", o.file)
	if _, err := execAll(ctx, conn, sql); err != nil {
		a.log.warningf(pgLog, "Unable to execute the sql file %s", o.file)
		return &UserError{Msg: pgErrorText(err), Err: err}
	}
	a.log.warningf(pgLog, "Successfully executed the file.")
	a.log.warningf(pgLog, "Closed the connection to %s", o.server)
	return nil
}

// pgErrorText is a server error as psycopg2 shows it: "ERROR:  message".
func pgErrorText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Severity + ":  " + pe.Message
	}
	return innermost(err).Error()
}

// queryRows turns up to max rows of a text-format result into az's list of {column: value}.
func queryRows(r *pgconn.Result, max int) []map[string]any {
	out := []map[string]any{}
	for i, row := range r.Rows {
		if i == max {
			break
		}
		m := map[string]any{}
		for j, fd := range r.FieldDescriptions {
			var v any
			if j < len(row) && row[j] != nil {
				v = textValue(fd.DataTypeOID, string(row[j]))
			}
			m[fd.Name] = v
		}
		out = append(out, m)
	}
	return out
}

// PostgreSQL type oids whose text form has a better JSON form.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidJSONB       = 3802
)

// textValue converts one value from PostgreSQL's text format to what psycopg2 would hand az:
// numbers as numbers, booleans, JSON as JSON, timestamps in ISO 8601, anything else as text.
func textValue(oid uint32, s string) any {
	switch oid {
	case oidBool:
		return s == "t"
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		if _, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "nN") {
			return json.Number(s)
		}
	case oidJSON, oidJSONB:
		if json.Valid([]byte(s)) {
			return json.RawMessage(s)
		}
	case oidTimestamp, oidTimestamptz:
		return isoTimestamp(s)
	}
	return s
}

// isoTimestamp turns "2024-01-02 03:04:05.123+00" into "2024-01-02T03:04:05.123+00:00".
func isoTimestamp(s string) string {
	s = strings.Replace(s, " ", "T", 1)
	if n := len(s); n > 3 && (s[n-3] == '+' || s[n-3] == '-') && strings.Contains(s, "T") {
		s += ":00"
	}
	return s
}
