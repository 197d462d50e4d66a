package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// fakePsql puts a psql on PATH that records how it was run: its arguments, PGPASSWORD, and the
// mode and first line of the file its sslrootcert names.
func fakePsql(t *testing.T) (record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "record")
	script := `#!/bin/sh
ca=$(printf '%s' "$1" | sed -n "s/.*sslrootcert='\([^']*\)'.*/\1/p")
{
  printf 'ARG1=%s\n' "$1"
  shift
  printf 'REST=%s\n' "$*"
  printf 'PW=%s\n' "$PGPASSWORD"
  printf 'CA=%s\n' "$ca"
  printf 'MODE=%s\n' "$(stat -c %a "$ca")"
  printf 'PEM=%s\n' "$(head -1 "$ca")"
} > "$PSQL_RECORD"
exit ${PSQL_EXIT:-0}
`
	if err := os.WriteFile(filepath.Join(dir, "psql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("PSQL_RECORD", record)
	return record
}

func readRecord(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("psql did not run: %v", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

func TestPostgresConnectRunsPsql(t *testing.T) {
	record := fakePsql(t)
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)

	_, errOut, code := runCLI(t, o, "postgres", "flexible-server", "connect", "-n", "srv1", "-p", "S3cret-pw!", "-q", "select 1")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	r := readRecord(t, record)
	// The server's host name on the endpoint's port (5432); a .localhost name is dialed at the
	// loopback address whatever the resolver says.
	wantArg := "host='srv1.postgres.localhost' port='5432' dbname='postgres' user='pgadmin' sslmode='verify-full' sslrootcert='" + r["CA"] + "' hostaddr='127.0.0.1'"
	if r["ARG1"] != wantArg || r["REST"] != "-c select 1" {
		t.Errorf("psql ran with %q %q\nwant %q", r["ARG1"], r["REST"], wantArg)
	}
	if r["PW"] != "S3cret-pw!" || strings.Contains(r["ARG1"]+r["REST"], "S3cret") {
		t.Errorf("password: PGPASSWORD %q, arguments %q", r["PW"], r["ARG1"]+r["REST"])
	}
	if r["MODE"] != "600" || r["PEM"] != "-----BEGIN CERTIFICATE-----" {
		t.Errorf("CA file mode %s, first line %q", r["MODE"], r["PEM"])
	}
	if _, err := os.Stat(r["CA"]); !os.IsNotExist(err) {
		t.Errorf("CA file %s left behind: %v", r["CA"], err)
	}
	if !strings.Contains(errOut, "WARNING: Connecting to postgres database by default.") {
		t.Errorf("stderr %q", errOut)
	}

	// Without -p psql asks for the password itself: no PGPASSWORD is set for it.
	t.Setenv("PGPASSWORD", "")
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "connect", "-n", "srv1", "-g", "rg", "-u", "other", "-d", "app"); code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	r = readRecord(t, record)
	if r["PW"] != "" || !strings.Contains(r["ARG1"], "dbname='app' user='other'") || r["REST"] != "" {
		t.Errorf("interactive run: %v", r)
	}

	// psql's failure is the command's failure.
	t.Setenv("PSQL_EXIT", "2")
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "connect", "-n", "srv1", "-p", "x"); code != 1 || !strings.Contains(errOut, "psql exited with status 2.") {
		t.Errorf("failing psql: exit %d %s", code, errOut)
	}
}

func TestPsqlHelpers(t *testing.T) {
	if got := psqlConninfo("host", "h", "dbname", `it's a \ db`); got != `host='h' dbname='it\'s a \\ db'` {
		t.Errorf("psqlConninfo = %s", got)
	}
	env := psqlEnv([]string{"A=1", "PGPASSWORD=old", "B=2"}, "new")
	if strings.Join(env, " ") != "A=1 B=2 PGPASSWORD=new" {
		t.Errorf("psqlEnv = %v", env)
	}
	if env := psqlEnv([]string{"A=1"}, ""); len(env) != 1 {
		t.Errorf("psqlEnv without password = %v", env)
	}
	for in, want := range map[string]string{"plain": "plain", "p@ss:w/rd": "p%40ss%3Aw%2Frd", "{password}": "{password}", "a b%": "a%20b%25"} {
		if got := escapeUserinfo(in); got != want {
			t.Errorf("escapeUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQueryRows(t *testing.T) {
	fd := func(name string, oid uint32) pgconn.FieldDescription {
		return pgconn.FieldDescription{Name: name, DataTypeOID: oid}
	}
	r := &pgconn.Result{
		FieldDescriptions: []pgconn.FieldDescription{fd("n", oidInt4), fd("f", oidFloat8), fd("ok", oidBool), fd("t", 25),
			fd("j", oidJSONB), fd("ts", oidTimestamptz), fd("nan", oidNumeric), fd("null", 25)},
	}
	for i := range 35 {
		r.Rows = append(r.Rows, [][]byte{[]byte("42"), []byte("1.5"), []byte("t"), []byte("hello"), []byte(`{"a": [1]}`),
			[]byte("2026-01-02 03:04:05.5+00"), []byte("NaN"), nil})
		_ = i
	}
	rows := queryRows(r, maxQueryRows)
	if len(rows) != 30 {
		t.Fatalf("%d rows, want az's 30", len(rows))
	}
	b, _ := json.Marshal(rows[0])
	want := `{"f":1.5,"j":{"a":[1]},"n":42,"nan":"NaN","null":null,"ok":true,"t":"hello","ts":"2026-01-02T03:04:05.5+00:00"}`
	if string(b) != want {
		t.Errorf("row\n got  %s\n want %s", b, want)
	}
	for in, want := range map[string]string{"2026-01-02 03:04:05+05:30": "2026-01-02T03:04:05+05:30", "2026-01-02 03:04:05": "2026-01-02T03:04:05",
		"2026-01-02 03:04:05-08": "2026-01-02T03:04:05-08:00"} {
		if got := isoTimestamp(in); got != want {
			t.Errorf("isoTimestamp(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPostgresExecuteArguments(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "execute", "-n", "srv1", "-q", "select 1"); code != 2 ||
		!strings.Contains(errOut, "the following arguments are required: --admin-password/-p") {
		t.Errorf("without -p: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "execute", "-n", "srv1", "-p", "x"); code != 2 ||
		!strings.Contains(errOut, "--querytext/-q or --file-path/-f") {
		t.Errorf("without a query: exit %d %s", code, errOut)
	}
	// Nothing listens on the fake's port: az's connection failure, with its warning first.
	_, errOut, code := runCLI(t, o, "postgres", "flexible-server", "execute", "-n", "srv1", "-p", "x", "-q", "select 1")
	if code != 1 || !strings.Contains(errOut, "WARNING: Failed connection to srv1. Check error and validate firewall and public access or virtual network settings.") ||
		!strings.Contains(errOut, "ERROR: Unable to connect to flexible server: ") {
		t.Errorf("unreachable server: exit %d %s", code, errOut)
	}
}
