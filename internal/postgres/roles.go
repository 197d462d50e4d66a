package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// reservedRoleName reports names the administrator may not take (Azure's
// list, plus PostgreSQL's own and our superuser).
func reservedRoleName(name string) bool {
	switch name {
	case "azure_superuser", "azure_pg_admin", "admin", "administrator",
		"root", "guest", "public", "postgres", DefaultSuperuser:
		return true
	}
	return false
}

// ValidateRoleName reports whether name may be the administrator login.
func ValidateRoleName(name string) error {
	if !roleNameRE.MatchString(name) {
		return fmt.Errorf("postgres: role name %q must be 1-63 lower-case letters, digits or _, not starting with a digit", name)
	}
	if strings.HasPrefix(name, "pg_") || reservedRoleName(name) {
		return fmt.Errorf("postgres: role name %q is reserved", name)
	}
	return nil
}

// CreateAdmin creates the server administrator role as Azure does: LOGIN
// CREATEDB CREATEROLE, not a superuser, member of pg_monitor and
// pg_signal_backend. conn must be a superuser connection.
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
	return quietly(ctx, conn, "create administrator "+name,
		"CREATE ROLE "+ident+" WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER NOREPLICATION NOBYPASSRLS INHERIT PASSWORD "+quoteLiteral(verifier),
		"GRANT pg_monitor, pg_signal_backend TO "+ident,
	)
}

// SetPassword replaces a role's password, sent as a SCRAM verifier.
func SetPassword(ctx context.Context, conn *pgx.Conn, name string, password []byte) error {
	if !roleNameRE.MatchString(name) {
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
// path off, and reports errors without echoing the statements.
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

// InstallServerCertificate writes the TLS certificate chain and private key
// (PEM) into the data directory as server.crt and server.key, mode 0600,
// owned by user: inside the volume, where PostgreSQL accepts them. The
// caller zeroes keyPEM afterwards.
func InstallServerCertificate(ctx context.Context, dataDir string, user OSUser, certPEM, keyPEM []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFileAs(filepath.Join(dataDir, "server.crt"), certPEM, 0o600, user); err != nil {
		return fmt.Errorf("install server certificate: %w", err)
	}
	if err := writeFileAs(filepath.Join(dataDir, "server.key"), keyPEM, 0o600, user); err != nil {
		return fmt.Errorf("install server key: %w", err)
	}
	return nil
}
