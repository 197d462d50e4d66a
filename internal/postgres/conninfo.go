package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ConnInfo says how to reach a server. It is turned into a pgx
// configuration field by field, never through a connection string, so no
// value needs escaping and nothing is read from PG* environment variables,
// service files or ~/.pgpass.
type ConnInfo struct {
	// Host is an IP address or host name for TCP, or an absolute socket
	// directory for a Unix socket.
	Host string
	Port int
	User string
	// Password for scram-sha-256; empty for peer authentication. pgx
	// keeps it as a string, which cannot be zeroed: use it only for
	// client connections the caller opens with a user's password.
	Password string
	// Database; default "postgres".
	Database string
	// TLS is required for TCP: a nil TLS means a plaintext connection,
	// which is only allowed over a Unix socket.
	TLS *tls.Config
	// ConnectTimeout; default 10s.
	ConnectTimeout time.Duration
	// SearchPath, if set, is the session's search_path, sent in the startup packet (which
	// takes precedence over any ALTER ROLE/DATABASE ... SET): the service's superuser
	// sessions use pg_catalog only, so that no object a customer created is ever resolved
	// by them.
	SearchPath string
}

// IsSocket reports whether c connects over a Unix socket.
func (c ConnInfo) IsSocket() bool { return strings.HasPrefix(c.Host, "/") }

// Config returns the pgx configuration for c.
func (c ConnInfo) Config() (*pgx.ConnConfig, error) {
	if c.Host == "" || c.Port == 0 || c.User == "" {
		return nil, errors.New("postgres: conninfo needs host, port and user")
	}
	if c.TLS == nil && !c.IsSocket() {
		return nil, errors.New("postgres: TCP connections need TLS")
	}
	// ParseConfig("") gives a fully initialised config; every field that
	// it may have taken from the environment is then overwritten.
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("postgres: base config: %w", err)
	}
	cfg.Host = c.Host
	cfg.Port = uint16(c.Port)
	cfg.User = c.User
	cfg.Password = c.Password
	cfg.Database = c.Database
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	cfg.TLSConfig = c.TLS
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = c.ConnectTimeout
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	cfg.RuntimeParams = map[string]string{"application_name": "pgflex"}
	if c.SearchPath != "" {
		cfg.RuntimeParams["search_path"] = c.SearchPath
	}
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	return cfg, nil
}

// Connect opens one connection.
func (c ConnInfo) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%d as %s: %w", c.Host, c.Port, c.User, err)
	}
	return conn, nil
}
