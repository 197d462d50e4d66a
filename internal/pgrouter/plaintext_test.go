package pgrouter

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestSplitServerUser(t *testing.T) {
	tests := []struct {
		in, login, server string
		ok                bool
	}{
		{"pgadmin@alpha", "pgadmin", "alpha", true},
		{"a@b@Alpha", "a@b", "alpha", true},
		{"pgadmin", "", "", false},
		{"@alpha", "", "", false},
		{"pgadmin@", "", "", false},
		{"pgadmin@alpha.example", "", "", false},
	}
	for _, tt := range tests {
		login, server, ok := splitServerUser(tt.in)
		if ok != tt.ok || (ok && (login != tt.login || server != tt.server)) {
			t.Errorf("splitServerUser(%q) = %q, %q, %v", tt.in, login, server, ok)
		}
	}
}

// plaintextDirectory lets the named servers take connections without TLS.
type plaintextDirectory struct {
	*directory
	allow map[string]bool
}

func (d plaintextDirectory) Lookup(ctx context.Context, name string) (Target, error) {
	t, err := d.directory.Lookup(ctx, name)
	t.AllowPlaintext = d.allow[name]
	return t, err
}

// TestPlaintext: a client without TLS reaches only a server that allows it, named as
// user@server, and the server sees the user without the suffix. The fixture's servers
// themselves require TLS (pg_hba.conf hostssl), so the answer tells who refused: the router
// names the user as sent, the server names the rewritten user.
func TestPlaintext(t *testing.T) {
	f := requireServers(t)
	// alpha and charlie (alpha's port under another name) allow plaintext; bravo does not;
	// the firewall admits alpha only.
	base := newDirectory(f)
	base.extra["charlie"] = Target{Name: "charlie", Addr: f.servers["alpha"].addr, Owner: f.servers["alpha"].user.UID}
	dir := plaintextDirectory{directory: base, allow: map[string]bool{"alpha": true, "charlie": true}}
	admitted := map[string]bool{"alpha": true}
	rn := startRouter(t, f, Config{Directory: dir, Admit: func(_ context.Context, client netip.AddrPort, tg Target) error {
		if !admitted[tg.Name] {
			return NoHBAEntry(client.Addr())
		}
		return nil
	}})
	tests := []struct {
		name, user, want string
	}{
		// alpha's own pg_hba.conf (its last line, "host all all all reject") answers.
		{"allowed: forwarded with the user rewritten", "pgadmin@alpha",
			`pg_hba.conf rejects connection for host "127.0.0.1", user "pgadmin", database "postgres", no encryption`},
		{"not allowed: the router's refusal", "pgadmin@bravo",
			`no pg_hba.conf entry for host "127.0.0.1", user "pgadmin@bravo", database "postgres", no encryption`},
		{"no server in the user", "pgadmin",
			`no pg_hba.conf entry for host "127.0.0.1", user "pgadmin", database "postgres", no encryption`},
		{"unknown server", "pgadmin@nosuch", `server "nosuch" was not found`},
		// The firewall's refusal in the words PostgreSQL uses for a client without TLS.
		{"allowed, no firewall rule", "pgadmin@charlie",
			`no pg_hba.conf entry for host "127.0.0.1", user "pgadmin@charlie", database "postgres", no encryption`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.pgxConfig(t, "127.0.0.1", rn.port, "disable")
			cfg.User = tt.user
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := pgx.ConnectConfig(ctx, cfg)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || !strings.Contains(pe.Message, tt.want) {
				t.Errorf("%s: %v, want %q", tt.user, err, tt.want)
			}
		})
	}
	// The first case reached alpha's own PostgreSQL: nothing else was routed.
	if st := rn.r.Stats(); st.Routed != 1 {
		t.Errorf("stats %+v: one connection should have been routed", st)
	}
}
