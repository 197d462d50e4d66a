package cli_test

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// TestManagedHSMCLI prepares a Managed HSM key for a server's identity the way the Managed HSM
// quickstart does with az: create the HSM with its administrators, create an RSA-HSM key, give
// the identity Managed HSM Crypto Service Encryption User on that key; then the identity wraps
// and unwraps, the audit trail shows it, and removing the assignment takes the access away.
func TestManagedHSMCLI(t *testing.T) {
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{})
	c := &kvCLI{t: t, d: d, cfg: t.TempDir()}
	admin := testkit.TokenOID(t, d.Token(t, "https://management.azure.com/.default"))
	c.ok("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")

	c.fails(2, "the following arguments are required: --retention-days", "keyvault", "create", "--hsm-name", "pghsm", "-g", "rg", "--administrators", admin)
	c.fails(2, "the following arguments are required: --administrators", "keyvault", "create", "--hsm-name", "pghsm", "-g", "rg", "--retention-days", "7")
	c.fails(2, "--hsm-name and --name/-n are mutually exclusive", "keyvault", "create", "--hsm-name", "pghsm", "-n", "pgvault", "-g", "rg")
	var hsm map[string]any
	c.json(&hsm, "keyvault", "create", "--hsm-name", "pghsm", "-g", "rg", "-l", "eastus", "--administrators", admin,
		"--retention-days", "7", "--enable-purge-protection", "true")
	p := hsm["properties"].(map[string]any)
	if hsm["type"] != "Microsoft.KeyVault/managedHSMs" || p["enablePurgeProtection"] != true || p["softDeleteRetentionInDays"] != 7.0 ||
		!regexp.MustCompile(`^https://pghsm\.managedhsm\.localhost:\d+/$`).MatchString(p["hsmUri"].(string)) {
		t.Fatalf("keyvault create --hsm-name printed %v", hsm)
	}
	if v := c.tsv("keyvault", "show", "--hsm-name", "pghsm", "--query", "[resourceGroup, properties.initialAdminObjectIds[0]]"); v != "rg\n"+admin {
		t.Fatalf("show --hsm-name = %q", v)
	}

	kid := c.tsv("keyvault", "key", "create", "--hsm-name", "pghsm", "-n", "cmk", "--kty", "RSA-HSM", "--size", "3072", "--query", "key.kid")
	if !regexp.MustCompile(`^https://pghsm\.managedhsm\.localhost:\d+/keys/cmk/[0-9a-f]{32}$`).MatchString(kid) {
		t.Fatalf("HSM key id = %q", kid)
	}
	if v := c.tsv("keyvault", "key", "show", "--hsm-name", "pghsm", "-n", "cmk", "--query", "key.kty"); v != "RSA-HSM" {
		t.Fatalf("HSM key type = %q", v)
	}
	c.fails(2, "--hsm-name and --vault-name are mutually exclusive", "keyvault", "key", "show", "--hsm-name", "pghsm", "--vault-name", "v", "-n", "cmk")

	principalID := c.tsv("identity", "create", "-g", "rg", "-n", "id", "-l", "eastus", "--query", "principalId")
	clientID := c.tsv("identity", "show", "-g", "rg", "-n", "id", "--query", "clientId")
	c.fails(1, "Role 'Managed HSM Wizard' doesn't exist", "keyvault", "role", "assignment", "create", "--hsm-name", "pghsm",
		"--role", "Managed HSM Wizard", "--assignee", principalID, "--scope", "/keys/cmk")
	var asg map[string]any
	c.json(&asg, "keyvault", "role", "assignment", "create", "--hsm-name", "pghsm", "--role", "Managed HSM Crypto Service Encryption User",
		"--assignee", principalID, "--scope", "/keys/cmk")
	if asg["roleName"] != "Managed HSM Crypto Service Encryption User" || asg["scope"] != "/keys/cmk" || asg["principalId"] != principalID ||
		!strings.HasSuffix(asg["roleDefinitionId"].(string), "/33413926-3206-4cdd-b39a-83574fe37a17") {
		t.Fatalf("role assignment create printed %v", asg)
	}
	if v := c.tsv("keyvault", "role", "assignment", "list", "--hsm-name", "pghsm", "--assignee", principalID, "--query", "[].roleName"); v != "Managed HSM Crypto Service Encryption User" {
		t.Fatalf("assignments of the identity = %q", v)
	}
	if v := c.tsv("keyvault", "role", "assignment", "list", "--hsm-name", "pghsm", "--assignee", admin, "--query", "sort([].roleName)"); v != "Managed HSM Administrator\nManaged HSM Crypto User" {
		t.Fatalf("assignments of the initial administrator = %q", v)
	}

	// What the assignment is for: the identity wraps and unwraps with the key, and the HSM's
	// audit trail names it.
	_, opts, err := azcred.FromProfile(d.Profile())
	if err != nil {
		t.Fatal(err)
	}
	hsmURL := kid[:strings.Index(kid, "/keys/")]
	kc, err := azkeys.NewClient(hsmURL, d.IdentityCredential(principalID, clientID), &azkeys.ClientOptions{ClientOptions: opts.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	id := azkeys.ID(kid)
	dek := []byte("0123456789abcdef0123456789abcdef")
	alg := to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	w, err := kc.WrapKey(ctx, id.Name(), id.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: dek}, nil)
	if err != nil {
		t.Fatalf("wrap as the assigned identity: %v", err)
	}
	u, err := kc.UnwrapKey(ctx, id.Name(), id.Version(), azkeys.KeyOperationParameters{Algorithm: alg, Value: w.Result}, nil)
	if err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap as the assigned identity: %v", err)
	}
	var audit []map[string]any
	c.json(&audit, "keyvault", "key", "audit", "--hsm-name", "pghsm", "-n", "cmk", "--query", "[?operationName=='KeyWrap' || operationName=='KeyUnwrap']")
	if len(audit) != 2 || audit[0]["callerObjectId"] != principalID || audit[1]["callerObjectId"] != principalID {
		t.Fatalf("HSM audit = %v", audit)
	}

	c.ok("keyvault", "role", "assignment", "delete", "--hsm-name", "pghsm", "--assignee", principalID, "--scope", "/keys/cmk")
	_, err = kc.GetKey(ctx, "cmk", "", nil)
	if err == nil || !strings.Contains(err.Error(), "ForbiddenByRbac") {
		t.Fatalf("get after the assignment was deleted: %v", err)
	}
	c.fails(1, "No matched assignments", "keyvault", "role", "assignment", "delete", "--hsm-name", "pghsm", "--assignee", principalID)
	if n := c.tsv("keyvault", "role", "definition", "list", "--hsm-name", "pghsm", "--query", "length(@)"); n != "8" {
		t.Fatalf("%s role definitions", n)
	}

	c.ok("keyvault", "delete", "--hsm-name", "pghsm")
	c.fails(3, "ResourceNotFound", "keyvault", "show", "--hsm-name", "pghsm", "-g", "rg")
	r := d.ARM(t, http.MethodGet, "/subscriptions/"+d.Profile().SubscriptionID+"/providers/Microsoft.KeyVault/locations/eastus/deletedManagedHSMs/pghsm?api-version=2023-07-01", nil)
	if r.Status != 200 {
		t.Fatalf("deleted HSM: %d %s", r.Status, r.Raw)
	}
}
