package flexserver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
)

func TestAdmission(t *testing.T) {
	srv := &Server{PublicNetworkAccess: "Enabled", FirewallRules: []FirewallRule{
		{Name: "one", Start: "127.0.0.1", End: "127.0.0.1"},
		{Name: "range", Start: "10.0.0.96", End: "10.0.0.111"},
	}}
	a := admissionOf(srv)
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.2": false, "10.0.0.96": true, "10.0.0.100": true, "10.0.0.111": true, "10.0.0.112": false,
		"10.0.0.95": false, "::ffff:127.0.0.1": true, "::1": false, "2001:db8::1": false,
	} {
		if got := a.Admits(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Admits(%s) = %v, want %v", addr, got, want)
		}
	}
	srv.PublicNetworkAccess = "Disabled"
	if admissionOf(srv).Admits(netip.MustParseAddr("127.0.0.1")) {
		t.Error("publicNetworkAccess Disabled admitted a client a rule covers")
	}
	if (Admission{}).Admits(netip.MustParseAddr("127.0.0.1")) {
		t.Error("no rules admitted a client")
	}
}

func TestFirewallRuleValidation(t *testing.T) {
	for _, name := range []string{"a", "Allow_All-1", "x"} {
		if err := validateFirewallRuleName(name); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'r'
	}
	for _, name := range []string{"", "bad.name", "with space", "ü", string(long)} {
		if ae := arm.AsError(validateFirewallRuleName(name)); ae == nil || ae.Status != 400 || ae.Code != "InvalidParameterValue" {
			t.Errorf("name %q: %v, want 400 InvalidParameterValue", name, ae)
		}
	}
	for _, tc := range []struct {
		start, end, code string
	}{
		{"0.0.0.0", "255.255.255.255", ""},
		{"10.0.0.96", "10.0.0.111", ""},
		{"10.0.0.1", "10.0.0.1", ""},
		{"10.0.0.9", "10.0.0.1", "FirewallRuleStartIpAddressGreaterThanEndIpAddress"},
		{"10.0.0", "10.0.0.1", "InvalidParameterValue"},
		{"10.0.0.1", "10.0.0.256", "InvalidParameterValue"},
		{"010.0.0.1", "10.0.0.2", "InvalidParameterValue"},
		{"::1", "::1", "InvalidParameterValue"},
		{"::ffff:10.0.0.1", "10.0.0.2", "InvalidParameterValue"},
		{"", "10.0.0.2", "InvalidParameterValue"},
	} {
		err := validateFirewallRule(FirewallRule{Name: "r", Start: tc.start, End: tc.end})
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s-%s refused: %v", tc.start, tc.end, err)
			}
			continue
		}
		if ae := arm.AsError(err); ae == nil || ae.Status != 400 || ae.Code != tc.code {
			t.Errorf("%s-%s: %v, want 400 %s", tc.start, tc.end, err, tc.code)
		}
	}
}

// TestFirewallRuleLimit: a server takes up to maxFirewallRules rules, then refuses one more
// with a 400 that says what to do.
func TestFirewallRuleLimit(t *testing.T) {
	srv := &Server{Name: "s1"}
	for range maxFirewallRules {
		if err := checkRuleCount(srv); err != nil {
			t.Fatalf("rule %d refused: %v", len(srv.FirewallRules)+1, err)
		}
		srv.FirewallRules = append(srv.FirewallRules, FirewallRule{})
	}
	err := checkRuleCount(srv)
	if e := arm.AsError(err); e == nil || e.Status != 400 || e.Code != "FirewallRuleLimitExceeded" || !strings.Contains(e.Message, "Delete a rule") {
		t.Fatalf("rule %d: %v, want FirewallRuleLimitExceeded", maxFirewallRules+1, err)
	}
}
