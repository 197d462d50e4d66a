package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/testenv"
)

// kvCLI runs the real pgflex binary against a real daemon, with its own config directory.
type kvCLI struct {
	t   *testing.T
	d   *testenv.Daemon
	cfg string
}

func (c *kvCLI) run(args ...string) testenv.CLIResult {
	c.t.Helper()
	return c.d.CLI(context.Background(), c.cfg, "", args...)
}

func (c *kvCLI) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != 0 {
		c.t.Fatalf("pgflex %s: exit %d\nstderr: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

func (c *kvCLI) tsv(args ...string) string {
	c.t.Helper()
	return strings.TrimSpace(c.ok(append(args, "-o", "tsv")...))
}

func (c *kvCLI) json(v any, args ...string) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(c.ok(args...)), v); err != nil {
		c.t.Fatalf("pgflex %s printed no JSON: %v", strings.Join(args, " "), err)
	}
}

func (c *kvCLI) fails(code int, want string, args ...string) {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != code || !strings.Contains(r.Stderr, want) {
		c.t.Fatalf("pgflex %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.Code, r.Stderr, code, want)
	}
}

// TestKeyVaultCLI runs the seed document's preparation steps as written, with pgflex in place
// of az (and a vault name Azure accepts), proves the identity they grant can wrap and unwrap
// with the key through Azure's SDK, then walks the rest of the keyvault command tree.
func TestKeyVaultCLI(t *testing.T) {
	ctx := context.Background()
	c := &kvCLI{t: t, d: testenv.Start(t, testenv.Options{}), cfg: t.TempDir()}
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
	c.ok("keyvault", "create", "-g", "rg", "-n", "pgvault", "-l", "eastus", "--enable-purge-protection", "true", "-o", "none")

	keyIdentifier := c.tsv("keyvault", "key", "create", "--name", "k", "-p", "software", "--vault-name", "pgvault", "--query", "key.kid")
	if !regexp.MustCompile(`^https://pgvault\.vault\.localhost:\d+/keys/k/[0-9a-f]{32}$`).MatchString(keyIdentifier) {
		t.Fatalf("keyIdentifier = %q", keyIdentifier)
	}
	principalID := c.tsv("identity", "create", "-g", "rg", "-n", "id", "-l", "eastus", "--query", "principalId")
	var vault map[string]any
	c.json(&vault, "keyvault", "set-policy", "-g", "rg", "-n", "pgvault", "--object-id", principalID, "--key-permissions", "wrapKey", "unwrapKey", "get", "list")
	policies := vault["properties"].(map[string]any)["accessPolicies"].([]any)
	if len(policies) != 2 || vault["resourceGroup"] != "rg" {
		t.Fatalf("set-policy printed %d policies, group %v", len(policies), vault["resourceGroup"])
	}
	granted := policies[1].(map[string]any)["permissions"].(map[string]any)["keys"]
	if b, _ := json.Marshal(granted); string(b) != `["wrapKey","unwrapKey","get","list"]` {
		t.Fatalf("granted key permissions = %s", b)
	}

	// What those steps are for: the identity wraps and unwraps with the key.
	clientID := c.tsv("identity", "show", "-g", "rg", "-n", "id", "--query", "clientId")
	kid := azkeys.ID(keyIdentifier)
	_, opts, err := azcred.FromProfile(c.d.Profile())
	if err != nil {
		t.Fatal(err)
	}
	vaultURL := keyIdentifier[:strings.Index(keyIdentifier, "/keys/")]
	kc, err := azkeys.NewClient(vaultURL, c.d.IdentityCredential(principalID, clientID), &azkeys.ClientOptions{ClientOptions: opts.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	dek := []byte("0123456789abcdef0123456789abcdef")
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	w, err := kc.WrapKey(ctx, kid.Name(), kid.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
	if err != nil {
		t.Fatalf("wrap as the granted identity: %v", err)
	}
	u, err := kc.UnwrapKey(ctx, kid.Name(), kid.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
	if err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap as the granted identity: %v", err)
	}

	// Keys.
	if got := c.tsv("keyvault", "key", "show", "--id", keyIdentifier, "--query", "key.kid"); got != keyIdentifier {
		t.Fatalf("show --id = %q", got)
	}
	var shown map[string]any
	c.json(&shown, "keyvault", "key", "show", "--vault-name", "pgvault", "-n", "k")
	jwk := shown["key"].(map[string]any)
	if jwk["kty"] != "RSA" || jwk["d"] != nil || jwk["e"] != "AQAB" || shown["attributes"].(map[string]any)["recoveryLevel"] != "Recoverable" {
		t.Fatalf("key show = %v", shown)
	}
	rotated := c.tsv("keyvault", "key", "rotate", "--vault-name", "pgvault", "-n", "k", "--query", "key.kid")
	if rotated == keyIdentifier || !strings.HasPrefix(rotated, vaultURL+"/keys/k/") {
		t.Fatalf("rotate = %q", rotated)
	}
	if n := c.tsv("keyvault", "key", "list-versions", "--vault-name", "pgvault", "-n", "k", "--query", "length(@)"); n != "2" {
		t.Fatalf("%s versions after a rotation", n)
	}
	var attrs []any
	c.json(&attrs, "keyvault", "key", "set-attributes", "--vault-name", "pgvault", "-n", "k", "--enabled", "false",
		"--expires", "2030-01-02T03:04:05Z", "--query", "[attributes.enabled, attributes.expires]")
	if len(attrs) != 2 || attrs[0] != false || attrs[1] != "2030-01-02T03:04:05+00:00" {
		t.Fatalf("set-attributes = %v", attrs)
	}
	c.ok("keyvault", "key", "set-attributes", "--vault-name", "pgvault", "-n", "k", "--enabled", "-o", "none")
	c.ok("keyvault", "key", "create", "--vault-name", "pgvault", "-n", "big", "--kty", "RSA", "--size", "3072", "--ops", "wrapKey", "unwrapKey", "--tags", "env=test", "-o", "none")
	if v := c.tsv("keyvault", "key", "list", "--vault-name", "pgvault", "--query", "[].name"); v != "big\nk" {
		t.Fatalf("key list = %q", v)
	}
	policy := `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D","timeBeforeExpiry":null},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}`
	c.ok("keyvault", "key", "rotation-policy", "update", "--vault-name", "pgvault", "-n", "big", "--value", policy, "-o", "none")
	if v := c.tsv("keyvault", "key", "rotation-policy", "show", "--vault-name", "pgvault", "-n", "big", "--query", "[lifetimeActions[0].trigger.timeAfterCreate, attributes.expiryTime]"); v != "P90D\nP2Y" {
		t.Fatalf("rotation-policy show = %q", v)
	}
	c.fails(1, "BadParameter", "keyvault", "key", "rotation-policy", "update", "--vault-name", "pgvault", "-n", "big", "--value",
		`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P1D"},"action":{"type":"Rotate"}}]}`)
	if v := c.tsv("keyvault", "key", "delete", "--vault-name", "pgvault", "-n", "big", "--query", "recoveryId"); !strings.HasSuffix(v, "/deletedkeys/big") {
		t.Fatalf("key delete = %q", v)
	}
	if v := c.tsv("keyvault", "key", "list-deleted", "--vault-name", "pgvault", "--query", "[].name"); v != "big" {
		t.Fatalf("list-deleted = %q", v)
	}
	c.fails(1, "purge protection is enabled", "keyvault", "key", "purge", "--vault-name", "pgvault", "-n", "big")
	c.ok("keyvault", "key", "recover", "--vault-name", "pgvault", "-n", "big", "-o", "none")
	ops := c.tsv("keyvault", "key", "audit", "--vault-name", "pgvault", "-n", "big", "--query", "[].operationName")
	if ops != "KeyCreate\nKeyRotationPolicySet\nKeyRotationPolicyGet\nKeyRotationPolicySet\nKeyDelete\nKeyPurge\nKeyRecover" {
		t.Fatalf("audit = %q", ops)
	}
	c.fails(3, "KeyNotFound", "keyvault", "key", "show", "--vault-name", "pgvault", "-n", "missing")
	c.fails(1, "RSA-HSM", "keyvault", "key", "create", "--vault-name", "pgvault", "-n", "hsm", "-p", "hsm")
	c.fails(2, "the following arguments are required: --vault-name", "keyvault", "key", "create", "-n", "k")

	// Vaults.
	c.fails(1, "VaultNameNotValid", "keyvault", "create", "-g", "rg", "-n", "v")
	var shownVault []any
	c.json(&shownVault, "keyvault", "show", "-n", "PGVAULT", "--query", "[name, resourceGroup, properties.enablePurgeProtection]")
	if len(shownVault) != 3 || shownVault[0] != "pgvault" || shownVault[1] != "rg" || shownVault[2] != true {
		t.Fatalf("show = %v", shownVault)
	}
	c.ok("keyvault", "create", "-g", "rg", "-n", "rbacvault", "--enable-rbac-authorization", "--retention-days", "7", "-o", "none")
	var rbacVault []any
	c.json(&rbacVault, "keyvault", "show", "-n", "rbacvault", "--query", "[length(properties.accessPolicies), properties.enableRbacAuthorization]")
	if len(rbacVault) != 2 || rbacVault[0] != float64(0) || rbacVault[1] != true {
		t.Fatalf("rbac vault = %v", rbacVault)
	}
	c.fails(1, "ForbiddenByRbac", "keyvault", "key", "create", "--vault-name", "rbacvault", "-n", "k")
	if v := c.tsv("keyvault", "list", "-g", "rg", "--query", "[].name"); v != "pgvault\nrbacvault" {
		t.Fatalf("list = %q", v)
	}
	c.fails(1, "cannot be set to false", "keyvault", "update", "-n", "pgvault", "--enable-purge-protection", "false")
	c.ok("keyvault", "delete-policy", "-n", "pgvault", "--object-id", principalID, "-o", "none")
	if _, err := kc.GetKey(ctx, "k", "", nil); err == nil {
		t.Fatal("the identity still reads the key after delete-policy")
	}
	c.ok("keyvault", "delete", "-n", "pgvault")
	c.ok("keyvault", "delete", "-n", "rbacvault", "-g", "rg")
	if v := c.tsv("keyvault", "list-deleted", "--query", "[].name"); v != "pgvault\nrbacvault" {
		t.Fatalf("list-deleted = %q", v)
	}
	c.fails(1, "DeletedVaultPurge", "keyvault", "purge", "-n", "pgvault")
	c.fails(1, "ConflictError", "keyvault", "create", "-g", "rg", "-n", "pgvault")
	c.ok("keyvault", "purge", "-n", "rbacvault", "-l", "eastus")
	if v := c.tsv("keyvault", "recover", "-n", "pgvault", "--query", "name"); v != "pgvault" {
		t.Fatalf("recover = %q", v)
	}
	if v := c.tsv("keyvault", "key", "show", "--vault-name", "pgvault", "-n", "k", "--query", "key.kid"); v != rotated {
		t.Fatalf("a recovered vault lost its keys: %q", v)
	}
	if v := c.tsv("keyvault", "list-deleted", "--query", "length(@)"); v != "0" {
		t.Fatalf("%s deleted vaults left", v)
	}
}
