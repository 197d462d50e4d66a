package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgflex/pgflex/internal/daemon"
)

// defaultDataDir is where `pgflex serve` keeps its state unless told otherwise.
func defaultDataDir() string {
	if d := os.Getenv("PGFLEX_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/pgflex"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".pgflex-data"
	}
	return filepath.Join(home, ".pgflex", "data")
}

func newServeCommand() *cobra.Command {
	var cfg daemon.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pgflex daemon: the resource-manager API, the key store and the servers' data plane.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := daemon.Open(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "pgflex serves at %s\nServers are reached at {server}.%s:%d\nUse the CLI with:  pgflex login --profile %s\n"+
				"The portal is at %s (sign in with the link 'pgflex portal --query url -o tsv' prints, or the profile's clientId and clientSecret)\n",
				d.Endpoint(), d.PostgresDNSSuffix(), d.PostgresPort(), d.ProfilePath(), d.PortalURL())
			return d.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "Directory for the daemon's state, keys and servers (created with mode 0700).")
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8443", "Address to listen on (HTTPS). Port 0 picks a free port.")
	f.StringVar(&cfg.KeyVaultSuffix, "keyvault-dns-suffix", "vault.localhost", "DNS suffix of Key Vault hosts.")
	f.StringVar(&cfg.ManagedHSMSuffix, "managedhsm-dns-suffix", "managedhsm.localhost", "DNS suffix of Managed HSM hosts.")
	f.StringVar(&cfg.GraphHost, "graph-host", "graph.localhost", "Host name Microsoft Graph is served at (routed by Host header; on the HTTPS certificate).")
	f.StringVar(&cfg.PortalHost, "portal-host", "portal.localhost", "Host name the web console is served at (routed by Host header; on the HTTPS certificate).")
	f.DurationVar(&cfg.PortalIdleTimeout, "portal-idle-timeout", 30*time.Minute, "How long a portal session lasts without user activity.")
	f.BoolVar(&cfg.MSIEndpoint, "msi-endpoint", false, "Serve the administrator's tokens at /msi/token to processes of the daemon's own OS account, "+
		"for az login --identity with MSI_ENDPOINT={endpoint}/msi/token. Anyone who can run code as that account, root included, gets administrator tokens.")
	f.StringSliceVar(&cfg.ExtraHosts, "tls-host", nil, "Extra host names or addresses for the HTTPS certificate.")
	f.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	f.StringVar(&cfg.VolumeLayer, "volume-layer", "auto", "Encrypting layer of new servers' volumes: auto (picked from what the host offers, logged), fscrypt (the kernel's ext4 encryption on a per-server image) or gocryptfs (FUSE). Existing servers keep theirs.")
	f.StringVar(&cfg.RuntimeDir, "runtime-dir", "", "Directory for the servers' mount points and sockets (default /run/pgflex/{hash of the data dir}).")
	f.StringVar(&cfg.Servers.ListenAddress, "server-address", "127.0.0.1", "The host's address for PostgreSQL clients: the PostgreSQL endpoint's default address (servers themselves listen on 127.0.0.1 only, behind the endpoint and its firewall rules).")
	f.StringVar(&cfg.PostgresAddr, "postgres-addr", "", "Address of the PostgreSQL endpoint, where every server is reached by its host name (default {--server-address}:5432). Port 0 picks a free port.")
	f.StringVar(&cfg.PostgresDNSSuffix, "postgres-dns-suffix", "postgres.localhost", "DNS suffix of server host names: {server}.{suffix} is a server's fullyQualifiedDomainName. Outside this host it needs a wildcard DNS record *.{suffix} for the endpoint's address.")
	f.StringSliceVar(&cfg.PostgresDNSAliases, "postgres-dns-alias", []string{"postgres.database.azure.com"}, "Further DNS suffixes whose names reach the same servers (az's show-connection-string always writes Azure's own); the names must resolve to the endpoint's address. An empty value turns aliases off.")
	f.IntVar(&cfg.Servers.PortMin, "server-port-min", 15432, "Lowest port given to a server's own PostgreSQL (behind the endpoint).")
	f.IntVar(&cfg.Servers.PortMax, "server-port-max", 16431, "Highest port given to a server's own PostgreSQL (behind the endpoint).")
	f.DurationVar(&cfg.Servers.BackupInterval, "backup-interval", 24*time.Hour, "Time between automatic full backups of each server (WAL is archived continuously).")
	f.DurationVar(&cfg.Servers.StorageCheckInterval, "storage-check-interval", 5*time.Second, "How often each running server's storage is measured (autogrow, read-only when nearly full, storage metrics).")
	f.DurationVar(&cfg.KeyMonitor.Interval, "key-check-interval", 5*time.Second, "How often each customer-managed key is revalidated (jittered).")
	f.DurationVar(&cfg.KeyMonitor.Grace, "key-grace-period", time.Minute, "How long a key store may be unreachable before its servers are made Inaccessible.")
	f.StringVar(&cfg.KeyStoreOutageFile, "test-keystore-outage-file", "", "Tests only: while this file exists the key store answers 503.")
	_ = f.MarkHidden("test-keystore-outage-file")
	return cmd
}
