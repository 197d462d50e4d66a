package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgflex/pgflex/internal/osuser"
)

// Roles the service creates in every server besides its superuser (DefaultSuperuser). The
// administrator and every role it creates may not alter, drop, rename, grant or take them
// (pgflex_guard enforces it; see ReservedRoles).
const (
	// BackupRole is the login pgBackRest uses, by peer authentication from the server's
	// backup OS user only: not a superuser, just the backup functions and pg_read_all_settings.
	BackupRole = "pgflex_backup"
	// AdminGroupRole is Azure's group of server administrators: its members may create the
	// allow-listed extensions (azure.extensions). The administrator holds it WITH ADMIN OPTION.
	AdminGroupRole = "azure_pg_admin"
)

// ReservedRoles are the roles of the service that no customer role may alter, drop, rename,
// grant or be granted into (AdminGroupRole excepted: its members may grant it).
func ReservedRoles() []string { return []string{DefaultSuperuser, BackupRole, AdminGroupRole} }

// adminLoginRE: letters, digits and underscores, not starting with a digit, at most 63 bytes
// (PostgreSQL's identifier limit). Case is kept: the role is created quoted.
var adminLoginRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// reservedLogins are the names no administrator may take, compared case-insensitively: Azure's
// list, PostgreSQL's own superuser name and pgflex's service roles.
var reservedLogins = []string{"azure_superuser", AdminGroupRole, "admin", "administrator", "root", "guest", "public",
	"postgres", DefaultSuperuser, BackupRole}

// reservedLoginPrefixes: PostgreSQL's predefined roles, and the names pgflex_guard keeps for
// the service.
var reservedLoginPrefixes = []string{"pg_", "pgflex_", "azure_"}

// AdminLoginProblem says why name cannot be a server's administrator login, or "" if it can.
// It is the one rule: the resource provider refuses such a name before anything is created,
// and CreateAdmin checks it again.
func AdminLoginProblem(name string) string {
	if name == "" || len(name) > 63 {
		return "it must be 1 to 63 characters long."
	}
	if c := name[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
		return "it must start with a letter or an underscore."
	}
	if !adminLoginRE.MatchString(name) {
		return "it can contain only letters, digits and underscores."
	}
	lower := strings.ToLower(name)
	if slices.Contains(reservedLogins, lower) {
		return "it cannot be azure_superuser, azure_pg_admin, admin, administrator, root, guest, public, postgres, " +
			DefaultSuperuser + " or " + BackupRole + "."
	}
	for _, p := range reservedLoginPrefixes {
		if strings.HasPrefix(lower, p) {
			return "it cannot start with pg_, pgflex_ or azure_."
		}
	}
	return ""
}

// ValidateRoleName reports whether name may be the administrator login.
func ValidateRoleName(name string) error {
	if why := AdminLoginProblem(name); why != "" {
		return fmt.Errorf("postgres: role name %q is not allowed: %s", name, why)
	}
	return nil
}

// CreateAdmin creates the server administrator role as Azure does: LOGIN
// CREATEDB CREATEROLE, not a superuser, member of pg_monitor and
// pg_signal_backend, and holding AdminGroupRole (created NOLOGIN here if
// missing) WITH ADMIN OPTION, so that it may create the allow-listed
// extensions and grant that right. conn must be a superuser connection.
//
// The password is sent only as a SCRAM-SHA-256 verifier computed here, so
// the plaintext never reaches the server; the statement runs with statement
// and error-statement logging off, so not even the verifier is logged.
func CreateAdmin(ctx context.Context, conn *pgx.Conn, name string, password []byte) error {
	if err := ValidateRoleName(name); err != nil {
		return err
	}
	verifier, err := ScramVerifier(password)
	if err != nil {
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	group := pgx.Identifier{AdminGroupRole}.Sanitize()
	return quietly(ctx, conn, "create administrator "+name,
		"CREATE ROLE "+ident+" WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS INHERIT PASSWORD "+quoteLiteral(verifier),
		"GRANT pg_monitor, pg_signal_backend TO "+ident,
		"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "+quoteLiteral(AdminGroupRole)+
			") THEN CREATE ROLE "+group+" NOLOGIN; END IF; END$$",
		"GRANT "+group+" TO "+ident+" WITH ADMIN OPTION",
	)
}

// SetPassword replaces a role's password, sent as a SCRAM verifier.
func SetPassword(ctx context.Context, conn *pgx.Conn, name string, password []byte) error {
	if !adminLoginRE.MatchString(name) {
		return fmt.Errorf("postgres: role name %q not allowed", name)
	}
	verifier, err := ScramVerifier(password)
	if err != nil {
		return err
	}
	return quietly(ctx, conn, "set password of "+name,
		"ALTER ROLE "+pgx.Identifier{name}.Sanitize()+" PASSWORD "+quoteLiteral(verifier))
}

// quietly runs statements in one transaction with every statement-logging
// path off (pg_stat_statements too, whose view the administrator may read:
// a statement carrying a verifier must not land there), and reports errors
// without echoing the statements.
func quietly(ctx context.Context, conn *pgx.Conn, what string, stmts ...string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(context.Background())
	for _, s := range []string{
		"SET LOCAL log_statement = 'none'",
		"SET LOCAL log_min_error_statement = 'panic'",
		"SET LOCAL log_min_duration_statement = -1",
		"SET LOCAL log_duration = off",
		"SET LOCAL pg_stat_statements.track = 'none'",
		"SET LOCAL pg_stat_statements.track_utility = off",
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported PostgreSQL).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ServerKeyFile is the TLS private key's name in the data directory. It is
// the one file there the server's group cannot read (PostgreSQL insists on
// 0600), so backups leave it out; a restored server gets a key of its own.
const ServerKeyFile = "server.key"

// InstallServerCertificate writes the TLS certificate chain and private key
// (PEM) into the data directory as server.crt (0640) and server.key (0600),
// owned by user: inside the volume, where PostgreSQL accepts them. The
// caller zeroes keyPEM afterwards.
func InstallServerCertificate(ctx context.Context, dataDir string, user osuser.User, certPEM, keyPEM []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFileAs(filepath.Join(dataDir, "server.crt"), certPEM, 0o640, user); err != nil {
		return fmt.Errorf("install server certificate: %w", err)
	}
	if err := writeFileAs(filepath.Join(dataDir, ServerKeyFile), keyPEM, 0o600, user); err != nil {
		return fmt.Errorf("install server key: %w", err)
	}
	return nil
}

// CreateBackupRole creates BackupRole: a login for pgBackRest that is not a
// superuser and has only what a backup needs (settings, checkpoints, the
// backup and WAL-switch functions). It has no password: pg_hba.conf lets it
// in only over the socket, by peer authentication from the server's backup
// OS account. conn must be a superuser connection. Creating it twice is an
// error: a restored server brings it from its source.
func CreateBackupRole(ctx context.Context, conn *pgx.Conn) error {
	ident := pgx.Identifier{BackupRole}.Sanitize()
	return quietly(ctx, conn, "create the backup role",
		"CREATE ROLE "+ident+" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT",
		"GRANT pg_read_all_settings, pg_checkpoint TO "+ident,
		"GRANT EXECUTE ON FUNCTION pg_catalog.pg_backup_start(text, boolean), pg_catalog.pg_backup_stop(boolean), "+
			"pg_catalog.pg_switch_wal(), pg_catalog.pg_create_restore_point(text) TO "+ident,
	)
}

// ForgetSuperuserPassword removes the password initdb had to give the superuser: the service
// reaches it only by peer authentication, and a role that may read pg_authid (pg_read_all_data)
// then finds no verifier to guess at.
func ForgetSuperuserPassword(ctx context.Context, conn *pgx.Conn) error {
	return quietly(ctx, conn, "forget the superuser's password",
		"ALTER ROLE "+pgx.Identifier{DefaultSuperuser}.Sanitize()+" PASSWORD NULL")
}
