package cli_test

import (
	"sort"
	"strings"
	"testing"
)

func TestRoleCLI(t *testing.T) {
	c := newIdentityCLI(t)
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
	principalID := strings.TrimSpace(c.ok("identity", "create", "-g", "rg", "-n", "id", "-l", "eastus", "--query", "principalId", "-o", "tsv"))
	clientID := strings.TrimSpace(c.ok("identity", "show", "-g", "rg", "-n", "id", "--query", "clientId", "-o", "tsv"))
	sub := c.d.Profile().SubscriptionID
	vault := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/cmk"
	key := vault + "/keys/k1"
	const cseu = "e147488a-f6f5-4113-8e2d-b22465e65bf6"

	// Role definitions, as az prints them.
	actions := strings.Fields(c.ok("role", "definition", "list", "--name", "Key Vault Crypto Service Encryption User",
		"--query", "[0].permissions[0].dataActions", "-o", "tsv"))
	if strings.Join(actions, " ") != "Microsoft.KeyVault/vaults/keys/read Microsoft.KeyVault/vaults/keys/wrap/action Microsoft.KeyVault/vaults/keys/unwrap/action" {
		t.Fatalf("dataActions = %v", actions)
	}
	if got := strings.TrimSpace(c.ok("role", "definition", "list", "--name", cseu, "--query", "[0].[roleName,roleType,type]", "-o", "tsv")); got != "Key Vault Crypto Service Encryption User\nBuiltInRole\nMicrosoft.Authorization/roleDefinitions" {
		t.Fatalf("definition by id = %q", got)
	}
	if table := c.ok("role", "definition", "list", "-o", "table"); !strings.HasPrefix(table, "Name") || !strings.Contains(table, "Key Vault Administrator") {
		t.Fatalf("definition table =\n%s", table)
	}

	// The seed's grant to the server's identity, by object id and principal type: no warning.
	var created map[string]any
	r := c.run("role", "assignment", "create", "--assignee-object-id", principalID, "--assignee-principal-type", "ServicePrincipal",
		"--role", "Key Vault Crypto Service Encryption User", "--scope", vault)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("create: exit %d, stderr %q", r.Code, r.Stderr)
	}
	c.json(&created, "role", "assignment", "create", "--assignee-object-id", principalID, "--assignee-principal-type", "ServicePrincipal",
		"--role", cseu, "--scope", vault) // idempotent, as az: the existing assignment is printed
	if created["principalId"] != principalID || created["scope"] != vault || created["resourceGroup"] != "rg" ||
		created["roleDefinitionId"] != "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+cseu ||
		created["principalType"] != "ServicePrincipal" || !strings.HasSuffix(created["createdOn"].(string), "+00:00") {
		t.Fatalf("created = %v", created)
	}
	// Without a principal type az warns, and still creates; --assignee takes a client id.
	r = c.run("role", "assignment", "create", "--assignee", clientID, "--role", "Key Vault Crypto User", "--scope", key,
		"--query", "principalId", "-o", "tsv")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != principalID || r.Stderr != "" {
		t.Fatalf("create with --assignee client id: exit %d, out %q, err %q", r.Code, r.Stdout, r.Stderr)
	}
	r = c.run("role", "assignment", "create", "--assignee-object-id", principalID, "--role", "Key Vault Reader", "--scope", key, "-o", "none")
	if r.Code != 0 || !strings.Contains(r.Stderr, "WARNING: RBAC service might reject creating role assignment without --assignee-principal-type") {
		t.Fatalf("create without principal type: exit %d, stderr %q", r.Code, r.Stderr)
	}

	// Lists: exactly the scope by default, parents with --include-inherited, everything with --all.
	got := func(args ...string) string {
		t.Helper()
		out := strings.TrimSpace(c.ok(append(append([]string{"role", "assignment", "list"}, args...),
			"--query", "[].roleDefinitionName", "-o", "tsv")...))
		if out == "" {
			return ""
		}
		lines := strings.Split(out, "\n")
		sort.Strings(lines)
		return strings.Join(lines, ", ")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scope", vault}, "Key Vault Crypto Service Encryption User"},
		{[]string{"--scope", key}, "Key Vault Crypto User, Key Vault Reader"},
		{[]string{"--scope", key, "--include-inherited"}, "Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader"},
		{nil, ""}, // az lists the subscription's own scope by default
		{[]string{"--all", "--role", "Key Vault Reader"}, "Key Vault Reader"},
		{[]string{"--all", "--assignee", clientID}, "Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader"},
	} {
		if g := got(tc.args...); g != tc.want {
			t.Errorf("list %v = %q, want %q", tc.args, g, tc.want)
		}
	}
	table := c.ok("role", "assignment", "list", "--scope", vault, "-o", "table")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Principal") || !strings.Contains(lines[0], "Role") ||
		!strings.HasPrefix(lines[2], clientID) || !strings.Contains(lines[2], "Key Vault Crypto Service Encryption User") {
		t.Fatalf("list -o table =\n%s", table)
	}

	// Refusals, in az's words and the service's codes.
	c.fails(1, "Role 'Key Vault Wizard' doesn't exist.", "role", "assignment", "create", "--assignee-object-id", principalID,
		"--assignee-principal-type", "ServicePrincipal", "--role", "Key Vault Wizard", "--scope", vault)
	c.fails(1, "(PrincipalNotFound) Principal 0000000000004000800000000000000a does not exist", "role", "assignment", "create",
		"--assignee-object-id", "00000000-0000-4000-8000-00000000000a", "--assignee-principal-type", "ServicePrincipal", "--role", "Reader", "--scope", vault)
	c.fails(1, "(RoleDefinitionDoesNotExist)", "role", "assignment", "create", "--assignee-object-id", principalID,
		"--assignee-principal-type", "ServicePrincipal", "--role", "00000000-0000-4000-8000-00000000000b", "--scope", vault)
	c.fails(1, "usage error: --assignee STRING | --assignee-object-id GUID", "role", "assignment", "create",
		"--assignee", clientID, "--assignee-object-id", principalID, "--role", "Reader")
	c.fails(1, "Invalid scope. Please use --help to view the valid format.", "role", "assignment", "create",
		"--assignee-object-id", principalID, "--assignee-principal-type", "ServicePrincipal", "--role", "Reader", "--scope", "/subscriptions/"+sub+"/resourceGroups")
	c.fails(1, "(InvalidScope)", "role", "assignment", "list", "--scope", "/providers/Microsoft.KeyVault/vaults/cmk")
	c.fails(2, "argument --assignee-principal-type: invalid choice: 'Robot'", "role", "assignment", "create",
		"--assignee-object-id", principalID, "--assignee-principal-type", "Robot", "--role", "Reader")
	c.fails(1, "(UnmatchedPrincipalType)", "role", "assignment", "create", "--assignee-object-id", principalID,
		"--assignee-principal-type", "User", "--role", "Reader", "--scope", vault)
	c.fails(2, "the following arguments are required: --role", "role", "assignment", "create", "--assignee", clientID)
	if n := got("--all"); strings.Count(n, "Key Vault") != 3 {
		t.Fatalf("assignments after refusals = %q", n)
	}

	// Delete by filter, then by id; then nothing is left to match.
	if out := c.ok("role", "assignment", "delete", "--assignee", clientID, "--scope", key); out != "" {
		t.Fatalf("delete printed %q", out)
	}
	id := strings.TrimSpace(c.ok("role", "assignment", "list", "--all", "--query", "[0].id", "-o", "tsv"))
	c.ok("role", "assignment", "delete", "--ids", id)
	if rest := got("--all"); rest != "" {
		t.Fatalf("assignments after deletes = %q", rest)
	}
	c.fails(1, "No matched assignments were found to delete", "role", "assignment", "delete", "--assignee", clientID, "--scope", vault)
}
