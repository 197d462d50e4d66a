package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgflex/pgflex/internal/testkit"
)

// SQLSTATEs the guard answers with.
const (
	sqlstateInsufficientPrivilege = "42501"
	sqlstateReservedName          = "42939"
	sqlstateFeatureNotSupported   = "0A000"
)

// Texts of pgflex_guard's refusals (and PostgreSQL's, which it reuses).
func deniedGrant(role string) string  { return `permission denied to grant role "` + role + `"` }
func deniedRevoke(role string) string { return `permission denied to revoke role "` + role + `"` }
func deniedAlter(role string) string  { return `permission denied to alter role "` + role + `"` }
func deniedDrop(role string) string   { return `permission denied to drop role "` + role + `"` }
func deniedRename(role string) string { return `permission denied to rename role "` + role + `"` }
func reservedName(role string) string { return `role name "` + role + `" is reserved` }
func notAllowListed(ext string) string {
	return `extension "` + ext + `" is not allow-listed for "azure_pg_admin" users in Azure Database for PostgreSQL`
}

const (
	azureExtensionHint = "to see the list of allowed extensions, please run: SHOW azure.extensions;"
	copyHint           = "Anyone can COPY to stdout or from stdin. psql's \\copy command also works for anyone."
	copyProgram        = "must be superuser or have privileges of the pg_execute_server_program role to COPY to or from an external program"
	copyFromFile       = "must be superuser or have privileges of the pg_read_server_files role to COPY from a file"
	copyToFile         = "must be superuser or have privileges of the pg_write_server_files role to COPY to a file"
)

// TestGuard runs, on one server, the ways a non-superuser administrator
// (Azure's: CREATEROLE CREATEDB, pg_monitor, pg_signal_backend,
// azure_pg_admin WITH ADMIN OPTION) and the roles it creates could leave
// SQL, and checks that each is refused with the exact SQLSTATE and text;
// then that what an administrator legitimately does still works.
func TestGuard(t *testing.T) {
	requireIntegration(t)
	env := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := env.inst.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	su, err := env.inst.Connect(ctx)
	if err != nil {
		t.Fatalf("superuser over the socket: %v", err)
	}
	defer su.Close(context.Background())

	const (
		adminName  = "pgadmin"
		holderName = "files_holder"
		database   = "guarddb"
	)
	adminPassword := "Adm1n-guard-" + randomSuffix(t)
	holderPassword := "H0lder-guard-" + randomSuffix(t)
	r2Password := "R2-guard-" + randomSuffix(t)
	if err := CreateAdmin(ctx, su, adminName, []byte(adminPassword)); err != nil {
		t.Fatalf("CreateAdmin: %v", err)
	}
	// The service's backup role (pgflex_backup); NOLOGIN is enough here.
	// files_holder is given, by the superuser, the roles that reach the
	// server's files and programs: the guard refuses COPY to and from
	// them whatever the memberships.
	mustExec(t, su,
		"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"+BackupRole+"') THEN CREATE ROLE "+BackupRole+" NOLOGIN; END IF; END$$",
		"CREATE ROLE "+holderName+" LOGIN",
		"GRANT pg_execute_server_program, pg_read_server_files, pg_write_server_files TO "+holderName,
	)
	if err := SetPassword(ctx, su, holderName, []byte(holderPassword)); err != nil {
		t.Fatal(err)
	}

	connect := func(user, password string) *pgx.Conn {
		t.Helper()
		ci := env.tcp(user, password)
		ci.Database = database
		c, err := ci.Connect(ctx)
		if err != nil {
			t.Fatalf("%s over TCP+TLS: %v", user, err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	// PostgreSQL 15 lets no one but a database's owner create in it: the
	// administrator works in a database of its own.
	func() {
		c, err := env.tcp(adminName, adminPassword).Connect(ctx)
		if err != nil {
			t.Fatalf("admin over TCP+TLS: %v", err)
		}
		defer c.Close(ctx)
		mustExec(t, c, "CREATE DATABASE "+database)
	}()
	admin := connect(adminName, adminPassword)
	mustExec(t, admin,
		"CREATE TABLE t (line text)",
		"INSERT INTO t VALUES ('a row')",
		"GRANT ALL ON t TO "+holderName,
		"CREATE ROLE r1 NOLOGIN",
		"CREATE ROLE r2 LOGIN CREATEROLE PASSWORD '"+r2Password+"'",
		"CREATE SCHEMA s",
		"CREATE EXTENSION citext",
	)
	holder := connect(holderName, holderPassword)
	r2 := connect("r2", r2Password)
	adminInPostgres, err := env.tcp(adminName, adminPassword).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer adminInPostgres.Close(context.Background())
	conns := map[string]*pgx.Conn{"": admin, "r2": r2, "holder": holder, "postgres": adminInPostgres}
	copyTarget := fmt.Sprintf("/tmp/pgflex-guard-test-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(copyTarget) })

	attacks := []struct {
		name string
		as   string // "" (the administrator), "r2" (a CREATEROLE role it made), "holder", or "postgres" (the administrator in a database it does not own)
		sql  string
		code string
		msg  string
		hint string // checked when set
		// pg marks what PostgreSQL refuses by itself: asserted so that a
		// regression is caught, though it would hold without the guard.
		pg bool
	}{
		// Taking the roles that reach the server's files and programs.
		{name: "grant pg_execute_server_program to self", sql: "GRANT pg_execute_server_program TO " + adminName, code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_execute_server_program")},
		{name: "grant pg_read_server_files to self", sql: "GRANT pg_read_server_files TO " + adminName, code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_read_server_files")},
		{name: "grant pg_write_server_files to self", sql: "GRANT pg_write_server_files TO " + adminName, code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_write_server_files")},
		{name: "grant pg_execute_server_program to new role", sql: "GRANT pg_execute_server_program TO r1", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_execute_server_program")},
		{name: "grant pg_read_server_files to new role", sql: "GRANT pg_read_server_files TO r1 WITH ADMIN OPTION", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_read_server_files")},
		{name: "grant pg_write_server_files to new role", sql: "GRANT pg_write_server_files TO r1", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_write_server_files")},
		{name: "revoke pg_read_server_files", sql: "REVOKE pg_read_server_files FROM r1", code: sqlstateInsufficientPrivilege, msg: deniedRevoke("pg_read_server_files")},
		{name: "created role grants itself", as: "r2", sql: "GRANT pg_execute_server_program TO r2", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_execute_server_program")},
		{name: "created role grants azure_pg_admin without admin option", as: "r2", sql: "GRANT azure_pg_admin TO r2", code: sqlstateInsufficientPrivilege, msg: deniedGrant("azure_pg_admin")},
		{name: "create role in pg_execute_server_program", sql: "CREATE ROLE x1 IN ROLE pg_execute_server_program", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_execute_server_program")},
		{name: "create role in group pg_write_server_files", sql: "CREATE USER x1 IN GROUP pg_write_server_files", code: sqlstateInsufficientPrivilege, msg: deniedGrant("pg_write_server_files")},
		{name: "alter group pg_read_server_files add user", sql: "ALTER GROUP pg_read_server_files ADD USER " + adminName, code: sqlstateInsufficientPrivilege, msg: deniedAlter("pg_read_server_files")},

		// The service's roles.
		{name: "create role named like the backup role", sql: "CREATE ROLE " + BackupRole, code: sqlstateReservedName, msg: reservedName(BackupRole)},
		{name: "create role azure_pg_admin", sql: "CREATE ROLE azure_pg_admin", code: sqlstateReservedName, msg: reservedName("azure_pg_admin")},
		{name: "create role pgflex_ prefix", sql: "CREATE ROLE pgflex_monitor", code: sqlstateReservedName, msg: reservedName("pgflex_monitor")},
		{name: "create role azure_ prefix", sql: "CREATE ROLE azure_superuser2", code: sqlstateReservedName, msg: reservedName("azure_superuser2")},
		{name: "schema named after the superuser", sql: "CREATE SCHEMA " + DefaultSuperuser, code: sqlstateReservedName, msg: `schema name "` + DefaultSuperuser + `" is reserved`},
		{name: "schema renamed after the backup role", sql: "ALTER SCHEMA s RENAME TO " + BackupRole, code: sqlstateReservedName, msg: `schema name "` + BackupRole + `" is reserved`},
		{name: "rename a role to a reserved name", sql: "ALTER ROLE r1 RENAME TO pgflex_r1", code: sqlstateReservedName, msg: reservedName("pgflex_r1")},
		{name: "create role with backup role as member", sql: "CREATE ROLE x2 ROLE " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedGrant("x2")},
		{name: "create role with backup role as admin", sql: "CREATE ROLE x2 ADMIN " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedGrant("x2")},
		{name: "alter group add backup role", sql: "ALTER GROUP r1 ADD USER " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedGrant("r1")},
		{name: "alter backup role password", sql: "ALTER ROLE " + BackupRole + " LOGIN PASSWORD 'x'", code: sqlstateInsufficientPrivilege, msg: deniedAlter(BackupRole)},
		{name: "alter backup role set", sql: "ALTER ROLE " + BackupRole + " SET work_mem = '1MB'", code: sqlstateInsufficientPrivilege, msg: deniedAlter(BackupRole)},
		{name: "rename backup role", sql: "ALTER ROLE " + BackupRole + " RENAME TO backup2", code: sqlstateInsufficientPrivilege, msg: deniedRename(BackupRole)},
		{name: "drop backup role", sql: "DROP ROLE IF EXISTS " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedDrop(BackupRole)},
		{name: "alter azure_pg_admin", sql: "ALTER ROLE azure_pg_admin LOGIN", code: sqlstateInsufficientPrivilege, msg: deniedAlter("azure_pg_admin")},
		{name: "rename azure_pg_admin", sql: "ALTER ROLE azure_pg_admin RENAME TO admins", code: sqlstateInsufficientPrivilege, msg: deniedRename("azure_pg_admin")},
		{name: "drop azure_pg_admin", sql: "DROP ROLE azure_pg_admin", code: sqlstateInsufficientPrivilege, msg: deniedDrop("azure_pg_admin")},
		{name: "grant self to backup role", sql: "GRANT " + adminName + " TO " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedGrant(adminName)},
		{name: "grant azure_pg_admin to backup role", sql: "GRANT azure_pg_admin TO " + BackupRole, code: sqlstateInsufficientPrivilege, msg: deniedGrant("azure_pg_admin")},
		{name: "grant backup role to self", sql: "GRANT " + BackupRole + " TO " + adminName, code: sqlstateInsufficientPrivilege, msg: deniedGrant(BackupRole)},

		// Programs and server files, even for a role holding the roles.
		{name: "copy from program with the role", as: "holder", sql: "COPY t FROM PROGRAM 'id'", code: sqlstateInsufficientPrivilege, msg: copyProgram, hint: copyHint},
		{name: "copy to program with the role", as: "holder", sql: "COPY t TO PROGRAM 'cat >/dev/null'", code: sqlstateInsufficientPrivilege, msg: copyProgram, hint: copyHint},
		{name: "copy from file with the role", as: "holder", sql: "COPY t FROM '/etc/passwd'", code: sqlstateInsufficientPrivilege, msg: copyFromFile, hint: copyHint},
		{name: "copy to file with the role", as: "holder", sql: "COPY t TO '" + copyTarget + "'", code: sqlstateInsufficientPrivilege, msg: copyToFile, hint: copyHint},
		{name: "copy query to program with the role", as: "holder", sql: "COPY (SELECT 1) TO PROGRAM 'id'", code: sqlstateInsufficientPrivilege, msg: copyProgram, hint: copyHint},
		{name: "copy from program", sql: "COPY t FROM PROGRAM 'id'", code: sqlstateInsufficientPrivilege, msg: copyProgram, hint: copyHint, pg: true},
		{name: "copy to program", sql: "COPY t TO PROGRAM 'cat >/dev/null'", code: sqlstateInsufficientPrivilege, msg: copyProgram, hint: copyHint, pg: true},
		{name: "copy from file", sql: "COPY t FROM '/etc/passwd'", code: sqlstateInsufficientPrivilege, msg: copyFromFile, hint: copyHint, pg: true},
		{name: "copy to file", sql: "COPY t TO '" + copyTarget + "'", code: sqlstateInsufficientPrivilege, msg: copyToFile, hint: copyHint, pg: true},

		// Libraries, configuration, languages.
		{name: "load", sql: "LOAD 'auth_delay'", code: sqlstateInsufficientPrivilege, msg: `permission denied to load library "auth_delay"`},
		{name: "alter system", sql: "ALTER SYSTEM SET work_mem = '1MB'", code: sqlstateInsufficientPrivilege, msg: "permission denied to run ALTER SYSTEM"},
		{name: "create language", sql: "CREATE LANGUAGE plx HANDLER plpgsql_call_handler", code: sqlstateInsufficientPrivilege, msg: `permission denied to create language "plx"`},
		{name: "create language short form", sql: "CREATE LANGUAGE plperlu", code: sqlstateInsufficientPrivilege, msg: notAllowListed("plperlu"), hint: azureExtensionHint},
		{name: "alter role set local_preload_libraries", sql: "ALTER ROLE " + adminName + " SET local_preload_libraries = 'x'", code: sqlstateInsufficientPrivilege, msg: `permission denied to set parameter "local_preload_libraries"`},
		{name: "alter database set local_preload_libraries", sql: "ALTER DATABASE " + database + ` SET "Local_Preload_Libraries" = 'x'`, code: sqlstateInsufficientPrivilege, msg: `permission denied to set parameter "Local_Preload_Libraries"`},

		// Extensions.
		{name: "create extension adminpack", sql: "CREATE EXTENSION adminpack", code: sqlstateInsufficientPrivilege, msg: notAllowListed("adminpack"), hint: azureExtensionHint},
		{name: "create extension file_fdw", sql: "CREATE EXTENSION file_fdw", code: sqlstateInsufficientPrivilege, msg: notAllowListed("file_fdw"), hint: azureExtensionHint},
		{name: "create unlisted extension", sql: "CREATE EXTENSION IF NOT EXISTS xml2", code: sqlstateInsufficientPrivilege, msg: notAllowListed("xml2"), hint: azureExtensionHint},
		{name: "drop unlisted extension", sql: "DROP EXTENSION IF EXISTS xml2", code: sqlstateInsufficientPrivilege, msg: notAllowListed("xml2"), hint: azureExtensionHint},
		{name: "alter extension set schema", sql: "ALTER EXTENSION citext SET SCHEMA s", code: sqlstateFeatureNotSupported, msg: "SET SCHEMA clause for ALTER EXTENSION is not supported."},
		{name: "privileged extension in a database not its own", as: "postgres", sql: "CREATE EXTENSION pg_buffercache", code: sqlstateInsufficientPrivilege, msg: `permission denied to create extension "pg_buffercache"`, hint: "Must have CREATE privilege on current database to create this extension."},
		{name: "privileged extension into pg_catalog", sql: "CREATE EXTENSION pg_buffercache SCHEMA pg_catalog", code: sqlstateInsufficientPrivilege, msg: "permission denied for schema pg_catalog"},
		{name: "privileged extension into pg_catalog by search_path", sql: "SET search_path = pg_catalog; CREATE EXTENSION pg_buffercache", code: sqlstateInsufficientPrivilege, msg: "permission denied for schema pg_catalog"},
		{name: "trusted extension into pg_catalog", sql: "CREATE EXTENSION hstore SCHEMA pg_catalog", code: sqlstateInsufficientPrivilege, msg: "permission denied for schema pg_catalog"},
		{name: "privileged extension without azure_pg_admin", as: "r2", sql: "CREATE EXTENSION pg_prewarm", code: sqlstateInsufficientPrivilege, msg: `Only members of "azure_pg_admin" are allowed to use CREATE EXTENSION`},

		// What PostgreSQL refuses by itself.
		{name: "pg_read_file", sql: "SELECT pg_read_file('/etc/passwd')", code: sqlstateInsufficientPrivilege, msg: "permission denied for function pg_read_file", pg: true},
		{name: "pg_ls_dir", sql: "SELECT pg_ls_dir('/')", code: sqlstateInsufficientPrivilege, msg: "permission denied for function pg_ls_dir", pg: true},
		{name: "lo_import", sql: "SELECT lo_import('/etc/passwd')", code: sqlstateInsufficientPrivilege, msg: "permission denied for function lo_import", pg: true},
		{name: "C function", sql: "CREATE FUNCTION f() RETURNS int AS '/lib/x86_64-linux-gnu/libc.so.6', 'getpid' LANGUAGE c", code: sqlstateInsufficientPrivilege, msg: "permission denied for language c", pg: true},
		{name: "become superuser", sql: "ALTER ROLE " + adminName + " SUPERUSER", code: sqlstateInsufficientPrivilege, msg: "must be superuser to alter superuser roles or change superuser attribute", pg: true},
		{name: "replication role", sql: "CREATE ROLE rr REPLICATION", code: sqlstateInsufficientPrivilege, msg: "must be superuser to create replication users", pg: true},
		{name: "set session_preload_libraries", sql: "SET session_preload_libraries = 'x'", code: sqlstateInsufficientPrivilege, msg: `permission denied to set parameter "session_preload_libraries"`, pg: true},
		{name: "create tablespace", sql: "CREATE TABLESPACE ts LOCATION '/tmp'", code: sqlstateInsufficientPrivilege, msg: `permission denied to create tablespace "ts"`, pg: true},
		{name: "create event trigger", sql: "CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION nofunc()", code: sqlstateInsufficientPrivilege, msg: `permission denied to create event trigger "et"`, pg: true},
		{name: "reload configuration", sql: "SELECT pg_reload_conf()", code: sqlstateInsufficientPrivilege, msg: "permission denied for function pg_reload_conf", pg: true},
	}
	for _, a := range attacks {
		t.Run("refused/"+a.name, func(t *testing.T) {
			conn := conns[a.as]
			_, err := conn.Exec(ctx, a.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("%s: got %v, want SQLSTATE %s %q", a.sql, err, a.code, a.msg)
			}
			if pgErr.Code != a.code || pgErr.Message != a.msg {
				t.Errorf("%s:\n got %s %q\nwant %s %q", a.sql, pgErr.Code, pgErr.Message, a.code, a.msg)
			}
			if a.hint != "" && pgErr.Hint != a.hint {
				t.Errorf("%s: hint %q, want %q", a.sql, pgErr.Hint, a.hint)
			}
		})
	}

	t.Run("allowed/show azure.extensions", func(t *testing.T) {
		if got := queryString(t, admin, "SHOW azure.extensions"); got != strings.Join(DefaultExtensions, ",") {
			t.Errorf("azure.extensions = %q", got)
		}
	})
	t.Run("allowed/trusted extension", func(t *testing.T) {
		mustExec(t, admin, "CREATE EXTENSION pgcrypto")
		if got := queryString(t, admin, "SELECT encode(digest('abc', 'sha256'), 'hex')"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
			t.Errorf("sha256(abc) = %s", got)
		}
		// PostgreSQL's trusted-extension mechanism: the user owns it.
		if got := queryString(t, admin, "SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pgcrypto'"); got != adminName {
			t.Errorf("pgcrypto owned by %s", got)
		}
		mustExec(t, admin, "DROP EXTENSION pgcrypto")
	})
	t.Run("allowed/privileged extensions", func(t *testing.T) {
		mustExec(t, admin, "CREATE EXTENSION pg_stat_statements", "CREATE EXTENSION pg_buffercache")
		// Created by the bootstrap superuser on the administrator's behalf.
		if got := queryString(t, admin, "SELECT bool_and(r.rolsuper)::text FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner WHERE extname IN ('pg_stat_statements', 'pg_buffercache')"); got != "true" {
			t.Errorf("privileged extensions owned by a superuser: %s", got)
		}
		if got := queryString(t, admin, "SELECT has_table_privilege('pg_stat_statements', 'SELECT')::text"); got != "true" {
			t.Errorf("SELECT on pg_stat_statements: %s", got)
		}
		// Preloaded, as on Azure: the view answers.
		if got := queryString(t, admin, "SELECT (count(*) >= 0)::text FROM pg_stat_statements"); got != "true" {
			t.Errorf("pg_stat_statements: %s", got)
		}
		if got := queryString(t, admin, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_buffercache'"); got != "public" {
			t.Errorf("pg_buffercache in schema %s, want public (the administrator's search_path)", got)
		}
		if got := queryString(t, admin, "SELECT (count(*) > 0)::text FROM pg_buffercache"); got != "true" {
			t.Errorf("pg_buffercache rows: %s", got)
		}
		// Its dangerous part stays superuser-only.
		if _, err := admin.Exec(ctx, "SELECT pg_stat_statements_reset()"); err == nil {
			t.Error("pg_stat_statements_reset allowed")
		}
		mustExec(t, admin, "ALTER EXTENSION pg_buffercache UPDATE", "DROP EXTENSION pg_stat_statements, pg_buffercache")
	})
	t.Run("allowed/cascade and foreign-data wrappers", func(t *testing.T) {
		// earthdistance needs cube, which CASCADE creates as the
		// superuser; the administrator can still drop both.
		mustExec(t, admin, "CREATE EXTENSION earthdistance CASCADE", "DROP EXTENSION earthdistance, cube")
		mustExec(t, admin,
			"CREATE EXTENSION postgres_fdw",
			"CREATE SERVER here FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '"+env.settings.SocketDir+"', port '"+fmt.Sprint(env.settings.Port)+"', dbname 'postgres')",
			"CREATE USER MAPPING FOR CURRENT_USER SERVER here OPTIONS (user '"+DefaultSuperuser+"')",
			"CREATE FOREIGN TABLE remote_roles (rolname name) SERVER here OPTIONS (schema_name 'pg_catalog', table_name 'pg_authid')",
		)
		// postgres_fdw will not log a non-superuser in without a password.
		_, err := admin.Exec(ctx, "SELECT count(*) FROM remote_roles")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Message != "password is required" {
			t.Errorf("postgres_fdw as the superuser without a password: %v", err)
		}
		mustExec(t, admin, "DROP EXTENSION postgres_fdw CASCADE")
	})
	t.Run("allowed/roles", func(t *testing.T) {
		mustExec(t, admin,
			"CREATE ROLE app_reader LOGIN PASSWORD 'R3ader-"+randomSuffix(t)+"'",
			"GRANT pg_read_all_data TO app_reader",
			"GRANT azure_pg_admin TO app_reader",
			"CREATE ROLE app_team NOLOGIN IN ROLE azure_pg_admin",
			"REVOKE azure_pg_admin FROM app_team",
		)
		if got := queryString(t, admin, "SELECT (pg_has_role('app_reader', 'pg_read_all_data', 'MEMBER') AND pg_has_role('app_reader', 'azure_pg_admin', 'MEMBER'))::text"); got != "true" {
			t.Errorf("app_reader memberships: %s", got)
		}
	})
	t.Run("allowed/change own password", func(t *testing.T) {
		newPassword := "N3w-admin-" + randomSuffix(t)
		mustExec(t, admin, "ALTER ROLE "+adminName+" PASSWORD '"+newPassword+"'")
		c := connect(adminName, newPassword)
		if got := queryString(t, c, "SELECT current_user::text"); got != adminName {
			t.Errorf("current_user = %s", got)
		}
	})
	t.Run("allowed/superuser is unrestricted", func(t *testing.T) {
		mustExec(t, su, "CREATE TEMP TABLE program_output (line text)", "COPY program_output FROM PROGRAM 'id -u'")
		if got := queryString(t, su, "SELECT line FROM program_output"); got != fmt.Sprint(env.user.UID) {
			t.Errorf("COPY FROM PROGRAM as the superuser read %q, want the server's uid %d", got, env.user.UID)
		}
	})

	t.Run("no password verifier reaches pg_stat_statements", func(t *testing.T) {
		mustExec(t, admin, "CREATE EXTENSION pg_stat_statements")
		defer mustExec(t, admin, "DROP EXTENSION pg_stat_statements")
		marker := "pgss-control-" + randomSuffix(t)
		// Positive control: the superuser's own statements are tracked and the administrator
		// reads them.
		mustExec(t, su, "COMMENT ON ROLE "+holderName+" IS '"+marker+"'")
		if got := queryString(t, admin, "SELECT count(*)::text FROM pg_stat_statements WHERE query LIKE '%"+marker+"%'"); got == "0" {
			t.Fatal("control: the tracked statement is not in pg_stat_statements; the check proves nothing")
		}
		if err := SetPassword(ctx, su, holderName, []byte("Another-pass-"+randomSuffix(t))); err != nil {
			t.Fatal(err)
		}
		if got := queryString(t, admin, "SELECT count(*)::text FROM pg_stat_statements WHERE query LIKE '%SCRAM-SHA-256%'"); got != "0" {
			t.Errorf("%s statements carrying a verifier are in pg_stat_statements", got)
		}
	})
	t.Run("a service session resolves nothing the administrator made", func(t *testing.T) {
		// The administrator plants a function in its database's public schema and asks for it
		// in every session of that database.
		mustExec(t, admin, "CREATE FUNCTION public.pgflex_probe() RETURNS text LANGUAGE sql AS $$SELECT 'trojan'$$",
			"ALTER DATABASE "+database+" SET search_path = public, pg_catalog")
		plain := env.inst.SuperuserConnInfo()
		plain.Database = database
		c, err := plain.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		// Positive control: a superuser session with the default search_path runs it.
		if got := queryString(t, c, "SELECT pgflex_probe()"); got != "trojan" {
			t.Fatalf("control: %q", got)
		}
		service := plain
		service.SearchPath = "pg_catalog"
		sc, err := service.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close(ctx)
		if got := queryString(t, sc, "SHOW search_path"); got != "pg_catalog" {
			t.Errorf("service search_path = %q", got)
		}
		var pe *pgconn.PgError
		if _, err := sc.Exec(ctx, "SELECT pgflex_probe()"); !errors.As(err, &pe) || pe.Code != "42883" {
			t.Errorf("the service session resolved the administrator's function: %v", err)
		}
	})

	t.Run("failed logins are delayed", func(t *testing.T) {
		if got := queryString(t, su, "SHOW auth_delay.milliseconds"); got != "500ms" {
			t.Errorf("auth_delay.milliseconds = %q", got)
		}
		start := time.Now()
		c, err := env.tcp(adminName, "not-the-password").Connect(ctx)
		elapsed := time.Since(start)
		if err == nil {
			c.Close(ctx)
			t.Fatal("wrong password accepted")
		}
		// A lower bound only: a slow machine may take longer.
		if elapsed < 400*time.Millisecond {
			t.Errorf("failed login answered after %v, want at least 400ms", elapsed)
		}
	})
}

func mustExec(t *testing.T, conn *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

// TestGuardDefaultExtensions checks the default allow-list against the
// installed PostgreSQL: every extension exists, and none of those that reach
// files, programs or untrusted code is on it.
func TestGuardDefaultExtensions(t *testing.T) {
	testkit.Require(t, testkit.PostgreSQL)
	dir := "/usr/share/postgresql/15/extension"
	seen := map[string]bool{}
	for _, e := range DefaultExtensions {
		if seen[e] {
			t.Errorf("%s listed twice", e)
		}
		seen[e] = true
		if _, err := os.Stat(dir + "/" + e + ".control"); err != nil {
			t.Errorf("%s: %v", e, err)
		}
		if !extensionNameRE.MatchString(e) {
			t.Errorf("%s: not a valid entry", e)
		}
	}
	for _, e := range []string{"adminpack", "file_fdw", "plperlu", "plpython3u", "pltclu", "pg_surgery", "xml2", "lo_manage", "pg_walinspect", "old_snapshot", "sepgsql"} {
		if seen[e] {
			t.Errorf("%s must not be allow-listed", e)
		}
	}
	if err := (Settings{Port: 1, SocketDir: "/r", Extensions: DefaultExtensions}).Validate(); err != nil {
		t.Error(err)
	}
}
