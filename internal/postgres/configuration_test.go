package postgres

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func validSettings() Settings {
	return Settings{Port: 5433, SocketDir: "/run/pgflex/s1"}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Settings)
		wantErr string
	}{
		{name: "defaults", mod: func(*Settings) {}},
		{name: "port missing", mod: func(s *Settings) { s.Port = 0 }, wantErr: "port 0"},
		{name: "relative socket dir", mod: func(s *Settings) { s.SocketDir = "run" }, wantErr: "socket dir"},
		{name: "socket dir with quote", mod: func(s *Settings) { s.SocketDir = "/run/a'b" }, wantErr: "socket dir"},
		{name: "socket dir too long", mod: func(s *Settings) { s.SocketDir = "/" + strings.Repeat("d", 100) }, wantErr: "too long"},
		{name: "wal_sync_method unknown", mod: func(s *Settings) { s.WALSyncMethod = "none" }, wantErr: "wal_sync_method"},
		{name: "wal_sync_method open_datasync", mod: func(s *Settings) { s.WALSyncMethod = "open_datasync" }},
		{name: "wal_compression off", mod: func(s *Settings) { s.WALCompression = "off" }},
		{name: "wal_compression unknown", mod: func(s *Settings) { s.WALCompression = "gzip" }, wantErr: "wal_compression"},
		{name: "size not kB", mod: func(s *Settings) { s.SharedBuffers = 128*MB + 1 }, wantErr: "shared_buffers"},
		{name: "min above max wal", mod: func(s *Settings) { s.MinWALSize = 4 * GB }, wantErr: "min_wal_size"},
		{name: "commit_delay too long", mod: func(s *Settings) { s.CommitDelay = time.Second }, wantErr: "commit_delay"},
		{name: "checkpoint_timeout too short", mod: func(s *Settings) { s.CheckpointTimeout = time.Second }, wantErr: "checkpoint_timeout"},
		{name: "archive command without mode", mod: func(s *Settings) { s.ArchiveCommand = "true" }, wantErr: "archive_command"},
		{name: "archive mode unknown", mod: func(s *Settings) { s.ArchiveMode = "off" }, wantErr: "archive_mode"},
		{name: "archive on", mod: func(s *Settings) { s.ArchiveMode = "on"; s.ArchiveCommand = "pgbackrest --stanza=s1 archive-push %p" }},
		{name: "log dir outside data dir", mod: func(s *Settings) { s.LogDirectory = "/var/log/pg" }, wantErr: "log directory"},
		{name: "log dir escapes", mod: func(s *Settings) { s.LogDirectory = "../log" }, wantErr: "log directory"},
		{name: "superuser name with quote", mod: func(s *Settings) { s.Superuser = "a'b" }, wantErr: "superuser name"},
		{name: "TLS key path escapes", mod: func(s *Settings) { s.SSLKeyFile = "../../etc/key" }, wantErr: "TLS file path"},
		{name: "extensions listed", mod: func(s *Settings) { s.Extensions = []string{"uuid-ossp", "pg_stat_statements"} }},
		{name: "no extensions", mod: func(s *Settings) { s.Extensions = []string{} }},
		{name: "extension name with quote", mod: func(s *Settings) { s.Extensions = []string{"pgcrypto", "a'b"} }, wantErr: "extension name"},
		{name: "extension name with comma", mod: func(s *Settings) { s.Extensions = []string{"a,b"} }, wantErr: "extension name"},
		{name: "extension name upper case", mod: func(s *Settings) { s.Extensions = []string{"PgCrypto"} }, wantErr: "extension name"},
		{name: "extension name empty", mod: func(s *Settings) { s.Extensions = []string{""} }, wantErr: "extension name"},
		{name: "extension name too long", mod: func(s *Settings) { s.Extensions = []string{strings.Repeat("e", 64)} }, wantErr: "extension name"},
		{name: "auth delay 10s", mod: func(s *Settings) { s.AuthDelay = 10 * time.Second }},
		{name: "auth delay 1ms", mod: func(s *Settings) { s.AuthDelay = time.Millisecond }},
		{name: "auth delay negative", mod: func(s *Settings) { s.AuthDelay = -time.Millisecond }, wantErr: "auth_delay"},
		{name: "auth delay too long", mod: func(s *Settings) { s.AuthDelay = 10*time.Second + time.Millisecond }, wantErr: "auth_delay"},
		{name: "auth delay not whole ms", mod: func(s *Settings) { s.AuthDelay = 1500 * time.Microsecond }, wantErr: "auth_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSettings()
			tt.mod(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// confValues parses the generated postgresql.conf back into a map, failing
// on a parameter set twice.
func confValues(t *testing.T, conf []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(string(conf), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, " = ")
		if !ok {
			t.Fatalf("malformed line %q", l)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("%s set twice", k)
		}
		m[k] = v
	}
	return m
}

func TestPostgresqlConf(t *testing.T) {
	tests := []struct {
		name string
		s    Settings
		want map[string]string
	}{
		{
			name: "defaults",
			s:    validSettings(),
			want: map[string]string{
				"listen_addresses": "'127.0.0.1'", "port": "5433", "unix_socket_directories": "'/run/pgflex/s1'",
				"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
				"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'",
				"password_encryption": "'scram-sha-256'", "logging_collector": "on", "log_directory": "'log'",
				"archive_mode": "off", "wal_sync_method": "fdatasync", "wal_buffers": "16384kB", "wal_compression": "lz4",
				"commit_delay": "0", "checkpoint_timeout": "900s", "max_wal_size": "2097152kB",
				"temp_tablespaces": "''", "log_statement": "'none'", "wal_init_zero": "on",
				"shared_preload_libraries":    "'pgflex_guard,auth_delay,pg_stat_statements'",
				"pgflex_guard.reserved_roles": "'pgflex_superuser,pgflex_backup,azure_pg_admin'",
				"azure.extensions":            "'" + strings.Join(DefaultExtensions, ",") + "'",
				"auth_delay.milliseconds":     "500",
			},
		},
		{
			name: "extensions and auth delay",
			s:    Settings{Port: 1, SocketDir: "/r", Extensions: []string{"pgcrypto", "uuid-ossp"}, AuthDelay: 2 * time.Second},
			want: map[string]string{
				"shared_preload_libraries": "'pgflex_guard,auth_delay,pg_stat_statements'",
				"azure.extensions":         "'pgcrypto,uuid-ossp'",
				"auth_delay.milliseconds":  "2000",
			},
		},
		{
			name: "no extensions",
			s:    Settings{Port: 1, SocketDir: "/r", Extensions: []string{}},
			want: map[string]string{
				"shared_preload_libraries":    "'pgflex_guard,auth_delay,pg_stat_statements'",
				"pgflex_guard.reserved_roles": "'pgflex_superuser,pgflex_backup,azure_pg_admin'",
				"azure.extensions":            "''",
			},
		},
		{
			name: "tuned and archiving",
			s: Settings{
				Port: 6000, SocketDir: "/run/x", ListenAddresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
				SharedBuffers: 512 * MB, WALSyncMethod: "open_datasync", WALCompression: "zstd", CommitDelay: 200 * time.Microsecond, CommitSiblings: 2,
				CheckpointTimeout: 30 * time.Minute, ArchiveMode: "on", ArchiveCommand: "pgbackrest --stanza='s 1' archive-push %p",
				SkipWALInitZero: true,
			},
			want: map[string]string{
				"listen_addresses": "'127.0.0.1,::1'", "shared_buffers": "524288kB", "wal_sync_method": "open_datasync", "wal_compression": "zstd",
				"commit_delay": "200", "commit_siblings": "2", "checkpoint_timeout": "1800s", "archive_mode": "on",
				"archive_command": "'pgbackrest --stanza=''s 1'' archive-push %p'", "wal_init_zero": "off",
				"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := tt.s.PostgresqlConf()
			if err != nil {
				t.Fatal(err)
			}
			got := confValues(t, conf)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if tt.s.ArchiveMode == "" {
				if _, ok := got["archive_command"]; ok {
					t.Error("archive_command set while archiving is off")
				}
			}
		})
	}
	if _, err := (Settings{}).PostgresqlConf(); err == nil {
		t.Error("PostgresqlConf rendered invalid settings")
	}
}

func TestHBAConf(t *testing.T) {
	tests := []struct {
		name      string
		s         Settings
		want      []string // lines, in order
		forbidden []string
	}{
		{
			name: "TLS required",
			s:    validSettings(),
			want: []string{
				"local\tall\tpgflex_superuser\t\tpeer map=pgflex_service",
				"local\tall\tpgflex_backup\t\treject",
				"local\tall\tall\t\tscram-sha-256",
				"host\tall\tpgflex_superuser\tall\treject",
				"host\tall\tpgflex_backup\tall\treject",
				"hostssl\tall\tall\t127.0.0.1/32\tscram-sha-256",
				"hostssl\tall\tall\t::1/128\tscram-sha-256",
				"host\tall\tall\tall\treject",
			},
			forbidden: []string{"trust", "md5", "password", "\thost\tall\tall\t127"},
		},
		{
			name: "backup account",
			s:    Settings{Port: 1, SocketDir: "/r", BackupOSUser: "pgflex-bk-0123"},
			want: []string{
				"local\tall\tpgflex_superuser\t\tpeer map=pgflex_service",
				"local\tall\tpgflex_backup\t\tpeer map=pgflex_service",
				"local\tall\tall\t\tscram-sha-256",
				"host\tall\tpgflex_backup\tall\treject",
			},
			forbidden: []string{"trust", "pgflex_backup\t\treject"},
		},
		{
			name: "insecure transport allowed",
			s:    Settings{Port: 1, SocketDir: "/r", AllowInsecureTransport: true, ClientCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}},
			want: []string{
				"host\tall\tpgflex_superuser\tall\treject",
				"host\tall\tall\t10.0.0.0/8\tscram-sha-256",
				"host\tall\tall\tall\treject",
			},
			forbidden: []string{"trust", "md5", "hostssl"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.s.HBAConf()
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			i := 0
			for _, l := range lines {
				if i < len(tt.want) && l == tt.want[i] {
					i++
				}
			}
			if i != len(tt.want) {
				t.Errorf("pg_hba.conf lacks, in order, %q; got\n%s", tt.want[i], b)
			}
			for _, f := range tt.forbidden {
				if strings.Contains(string(b), f) {
					t.Errorf("pg_hba.conf contains %q", f)
				}
			}
		})
	}
}

func TestIdentConf(t *testing.T) {
	s := validSettings()
	b, err := s.IdentConf()
	if err != nil {
		t.Fatal(err)
	}
	// Only root is mapped, and only to the superuser: no other OS user (least of all the
	// server's own) can become it.
	if got, want := string(b), "# Generated by pgflex. Edits are overwritten.\npgflex_service\troot\tpgflex_superuser\n"; got != want {
		t.Errorf("pg_ident.conf without a backup account:\n%s\nwant:\n%s", got, want)
	}
	s.BackupOSUser = "pgflex-bk-0123"
	if b, err = s.IdentConf(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pgflex_service\troot\tpgflex_superuser\n", "pgflex_service\tpgflex-bk-0123\tpgflex_backup\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("pg_ident.conf lacks %q:\n%s", want, b)
		}
	}
	if strings.Count(string(b), "pgflex_superuser") != 1 {
		t.Errorf("the superuser is mapped from more than root:\n%s", b)
	}
	for _, bad := range []string{"bad user", "root", "Upper"} {
		s.BackupOSUser = bad
		if _, err := s.IdentConf(); err == nil {
			t.Errorf("accepted backup OS user %q", bad)
		}
	}
}

func TestStopModeAndReason(t *testing.T) {
	if _, err := StopMode("graceful").signal(); err == nil {
		t.Error("unknown stop mode accepted")
	}
	tests := []struct {
		r    *ExitReport
		want string
	}{
		{&ExitReport{Requested: StopFast, ClusterState: "shut down"}, "stopped on request (fast shutdown); cluster state: shut down"},
		{&ExitReport{Signal: "killed", ExitCode: -1, ClusterState: "in production"}, "killed by signal: killed; cluster state: in production"},
		{&ExitReport{ExitCode: 1, ClusterState: "shut down"}, "exited with status 1"},
		{&ExitReport{ExitCode: -1, ClusterState: "in production"}, "stopped abruptly"},
		{nil, "not stopped"},
	}
	for _, tt := range tests {
		if got := tt.r.Reason(); !strings.Contains(got, tt.want) {
			t.Errorf("Reason() = %q, want %q", got, tt.want)
		}
	}
}

func TestValidateRoleName(t *testing.T) {
	for name, ok := range map[string]bool{
		"pgadmin": true, "app_owner1": true, "MyAdmin": true, "_x": true, "pg_admin": false, "azure_superuser": false,
		"Admin": false, "1admin": false, "a-b": false, "": false, DefaultSuperuser: false, BackupRole: false,
		"PgFlex_Backup": false, "azure_x": false, "Postgres": false, "ROOT": false,
		strings.Repeat("a", 63): true, strings.Repeat("a", 64): false,
	} {
		if err := ValidateRoleName(name); (err == nil) != ok {
			t.Errorf("ValidateRoleName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
