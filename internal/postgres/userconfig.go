package postgres

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/pgflex/pgflex/internal/osuser"
)

// UserConfigFile holds a server's parameters set through the API (Azure's "user-override"
// configurations), included at the end of postgresql.conf so that they win over pgflex's
// defaults. It is rewritten whole on every change.
const UserConfigFile = "postgresql.user.conf"

var userParamNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// protectedParameters are never written into the user file, whatever the caller's policy says:
// pgflex's isolation, encryption at rest, durability and control of the server depend on them.
// The API refuses them earlier with a reason (flexserver's read-only parameters); this is the
// last line.
var protectedParameters = map[string]bool{
	"listen_addresses": true, "port": true, "unix_socket_directories": true, "unix_socket_group": true,
	"unix_socket_permissions": true, "data_directory": true, "config_file": true, "hba_file": true,
	"ident_file": true, "external_pid_file": true, "include": true, "include_if_exists": true,
	"include_dir": true, "ssl": true, "ssl_cert_file": true, "ssl_key_file": true, "ssl_ca_file": true,
	"ssl_crl_file": true, "ssl_crl_dir": true, "ssl_passphrase_command": true, "ssl_ciphers": true,
	"ssl_min_protocol_version": true, "ssl_max_protocol_version": true, "ssl_dh_params_file": true,
	"ssl_ecdh_curve": true, "ssl_prefer_server_ciphers": true, "ssl_passphrase_command_supports_reload": true,
	"password_encryption": true, "shared_preload_libraries": true, "session_preload_libraries": true,
	"local_preload_libraries": true, "dynamic_library_path": true, "jit_provider": true, "extension_destdir": true,
	"fsync": true, "full_page_writes": true, "wal_level": true, "wal_init_zero": true, "data_sync_retry": true,
	"archive_mode": true, "archive_command": true, "archive_library": true, "restore_command": true,
	"logging_collector": true, "log_directory": true, "log_filename": true, "log_destination": true,
	"log_file_mode": true, "temp_tablespaces": true, "krb_server_keyfile": true,
}

// WriteUserConfig replaces UserConfigFile in dataDir with params (name → value), owned by
// user like the other configuration files. Every value is written as a quoted string
// (PostgreSQL reads a quoted value for a parameter of any type), so no value can end its line
// or add another setting; names must be plain lower-case identifiers and none may be a
// protected one.
func WriteUserConfig(ctx context.Context, dataDir string, user osuser.User, params map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := RenderUserConfig(params)
	if err != nil {
		return err
	}
	if err := writeFileAs(filepath.Join(dataDir, UserConfigFile), b, 0o640, user); err != nil {
		return fmt.Errorf("write %s: %w", UserConfigFile, err)
	}
	return nil
}

// RenderUserConfig renders UserConfigFile's contents, refusing what WriteUserConfig refuses.
func RenderUserConfig(params map[string]string) ([]byte, error) {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.WriteString("# The server's parameters, written by pgflex from its API. Edits are overwritten.\n")
	for _, n := range names {
		v := params[n]
		if !userParamNameRE.MatchString(n) || protectedParameters[n] {
			return nil, fmt.Errorf("user configuration: parameter %q may not be set", n)
		}
		if len(v) > 4096 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("user configuration: the value of %s must be one line of at most 4096 characters", n)
		}
		// Inside a quoted value the configuration parser reads backslash escapes: a
		// backslash is doubled so that it stays itself (and a final one cannot escape the
		// closing quote).
		fmt.Fprintf(&buf, "%s = %s\n", n, quoteConf(strings.ReplaceAll(v, `\`, `\\`)))
	}
	return buf.Bytes(), nil
}
