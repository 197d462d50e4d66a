package daemon

import (
	"strings"
	"testing"
)

// TestCheckGraphHost: a Graph host is a DNS name that no other API is reached at.
func TestCheckGraphHost(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, c := range []struct {
		host string
		addr string // default 127.0.0.1:8443
		want string // a part of the error; "" for accepted
	}{
		{host: "graph.localhost"},
		{host: "Graph.LocalHost"},
		{host: "graph"},
		{host: "graph-1.example.com"},
		{host: "graph.microsoft.localhost"},
		{host: "vaults.localhost"}, // a sibling of vault.localhost, not under it
		{host: long + "." + long + "." + long + "." + strings.Repeat("a", 61)}, // 253 characters
		{host: "127.0.0.1", want: "an IP address"},
		{host: "::1", want: "an IP address"},
		{host: "[::1]", want: "not a DNS name"},
		{host: "10.1.2.3", want: "an IP address"},
		{host: "127.1", want: "an IP address"},
		{host: "0x7f000001", want: "an IP address"},
		{host: "localhost", want: "localhost is where"},
		{host: "LOCALHOST", want: "localhost is where"},
		{host: "vault.localhost", want: "Key Vault DNS suffix"},
		{host: "graph.vault.localhost", want: "Key Vault DNS suffix"},
		{host: "Graph.Vault.Localhost", want: "Key Vault DNS suffix"},
		{host: "managedhsm.localhost", want: "Managed HSM DNS suffix"},
		{host: "x.managedhsm.localhost", want: "Managed HSM DNS suffix"},
		{host: "pgflex.example.com", addr: "pgflex.example.com:8443", want: "listen address"},
		{host: "", want: "a host name is required"},
		{host: long + "." + long + "." + long + "." + strings.Repeat("a", 62), want: "at most 253"},
		{host: long + "a.localhost", want: "1 to 63"},
		{host: "graph..localhost", want: "1 to 63"},
		{host: "graph.localhost.", want: "1 to 63"},
		{host: ".graph.localhost", want: "1 to 63"},
		{host: "-graph.localhost", want: "hyphen"},
		{host: "graph-.localhost", want: "hyphen"},
		{host: "graph_api.localhost", want: "not a letter, digit or hyphen"},
		{host: "graph.localhost:8443", want: "not a letter, digit or hyphen"},
		{host: "gräph.localhost", want: "not a letter, digit or hyphen"},
		{host: "*.localhost", want: "not a letter, digit or hyphen"},
	} {
		cfg := Config{GraphHost: c.host, Addr: c.addr, DataDir: "unused"}
		if cfg.Addr == "" {
			cfg.Addr = "127.0.0.1:8443"
		}
		cfg.KeyVaultSuffix, cfg.ManagedHSMSuffix = "vault.localhost", "managedhsm.localhost"
		err := checkGraphHost(cfg)
		// The portal's host name is checked the same way.
		pcfg := cfg
		pcfg.GraphHost, pcfg.PortalHost = "graph.localhost", c.host
		if perr := checkPortalHost(pcfg); (perr == nil) != (err == nil) && !strings.EqualFold(c.host, "graph.localhost") {
			t.Errorf("portal host %q: %v, but as Graph host: %v", c.host, perr, err)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q refused: %v", c.host, err)
		case c.want != "" && err == nil:
			t.Errorf("%q accepted, want an error with %q", c.host, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%q: %v, want an error with %q", c.host, err, c.want)
		}
	}
}

func TestPortalHostIsNotGraphHost(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:8443", GraphHost: "graph.localhost", PortalHost: "GRAPH.localhost",
		KeyVaultSuffix: "vault.localhost", ManagedHSMSuffix: "managedhsm.localhost"}
	if err := checkPortalHost(cfg); err == nil || !strings.Contains(err.Error(), "Graph host") {
		t.Fatalf("portal host equal to the Graph host: %v", err)
	}
	cfg.PortalHost = "console.localhost"
	if err := checkPortalHost(cfg); err != nil {
		t.Fatal(err)
	}
}
