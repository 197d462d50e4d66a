package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
)

var identityGUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// identityCLI runs the real pgflex binary against a real daemon, with its own config dir.
type identityCLI struct {
	t   *testing.T
	d   *testenv.Daemon
	cfg string
}

func newIdentityCLI(t *testing.T) *identityCLI {
	return &identityCLI{t: t, d: testenv.Start(t, testenv.Options{}), cfg: t.TempDir()}
}

func (c *identityCLI) run(args ...string) testenv.CLIResult {
	c.t.Helper()
	return c.d.CLI(context.Background(), c.cfg, "", args...)
}

// ok runs a command that must succeed and returns its stdout.
func (c *identityCLI) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != 0 {
		c.t.Fatalf("pgflex %s: exit %d\nstderr: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// fails runs a command that must fail with the exit code and a stderr containing want.
func (c *identityCLI) fails(code int, want string, args ...string) {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != code || !strings.Contains(r.Stderr, want) || r.Stdout != "" {
		c.t.Fatalf("pgflex %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr, code, want)
	}
}

func (c *identityCLI) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("pgflex %s printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestIdentityCLI(t *testing.T) {
	c := newIdentityCLI(t)
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")

	// The seed document's step, verbatim but for the command's name.
	principalID := strings.TrimSpace(c.ok("identity", "create", "-g", "rg", "-n", "id", "-l", "eastus", "--query", "principalId", "-o", "tsv"))
	if !identityGUID.MatchString(principalID) {
		t.Fatalf("principalId = %q", principalID)
	}

	var shown map[string]any
	c.json(&shown, "identity", "show", "-g", "rg", "-n", "id")
	var keys []string
	for k := range shown {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// az's flattened shape of an identity.
	if strings.Join(keys, ",") != "clientId,id,location,name,principalId,resourceGroup,systemData,tags,tenantId,type" {
		t.Fatalf("identity show keys = %v", keys)
	}
	prof := c.d.Profile()
	if shown["principalId"] != principalID || shown["tenantId"] != prof.TenantID || shown["resourceGroup"] != "rg" ||
		shown["id"] != "/subscriptions/"+prof.SubscriptionID+"/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id" ||
		shown["systemData"] != nil || shown["location"] != "eastus" {
		t.Fatalf("identity show = %v", shown)
	}

	// Location defaults to the group's; --tags takes az's key[=value] items.
	var second map[string]any
	c.json(&second, "identity", "create", "-g", "rg", "-n", "second-id", "--tags", "env=dev", "flag")
	if second["location"] != "eastus" || !reflectEqual(second["tags"], map[string]any{"env": "dev", "flag": ""}) ||
		second["principalId"] == principalID || second["clientId"] == shown["clientId"] {
		t.Fatalf("second identity = %v", second)
	}
	names := strings.Fields(c.ok("identity", "list", "-g", "rg", "--query", "[].name", "-o", "tsv"))
	if !slices.Equal(names, []string{"id", "second-id"}) {
		t.Fatalf("identity list -g = %v", names)
	}
	table := c.ok("identity", "list", "-o", "table")
	if !strings.HasPrefix(table, "ClientId") || !strings.Contains(table, principalID) || strings.Count(table, "\n") != 4 {
		t.Fatalf("identity list -o table =\n%s", table)
	}

	// Errors as az prints them, with az's exit codes; nothing is created by a refused request.
	c.fails(3, "(ResourceNotFound)", "identity", "show", "-g", "rg", "-n", "nope")
	c.fails(1, "(LocationNotAvailableForResourceType)", "identity", "create", "-g", "rg", "-n", "x1", "-l", "marsnorth")
	c.fails(1, "(InvalidResourceName)", "identity", "create", "-g", "rg", "-n", "-bad-", "-l", "eastus")
	c.fails(3, "(ResourceGroupNotFound)", "identity", "create", "-g", "nope", "-n", "x2", "-l", "eastus")
	c.fails(2, "the following arguments are required: --name/-n", "identity", "create", "-g", "rg")
	if n := strings.Fields(c.ok("identity", "list", "--query", "length(@)", "-o", "tsv")); len(n) != 1 || n[0] != "2" {
		t.Fatalf("identities after refusals = %v", n)
	}

	if out := c.ok("identity", "delete", "-g", "rg", "-n", "id"); out != "" {
		t.Fatalf("identity delete printed %q", out)
	}
	c.fails(3, "(ResourceNotFound)", "identity", "show", "-g", "rg", "-n", "id")
	// A re-created identity of the same name is another principal.
	again := strings.TrimSpace(c.ok("identity", "create", "-g", "rg", "-n", "id", "--query", "principalId", "-o", "tsv"))
	if !identityGUID.MatchString(again) || again == principalID {
		t.Fatalf("re-created identity's principal = %q (old %q)", again, principalID)
	}
}

func reflectEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
