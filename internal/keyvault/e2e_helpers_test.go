package keyvault_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/profile"
	"github.com/pgflex/pgflex/internal/testenv"
)

// kvEnv is a running daemon with Azure SDK clients for groups, vaults and identities.
type kvEnv struct {
	t        testing.TB
	d        *testenv.Daemon
	prof     *profile.Profile
	cred     *azcred.ClientSecretCredential
	opts     *arm.ClientOptions
	sub      string
	tenant   string
	adminOID string
	vaults   *armkeyvault.VaultsClient
	groups   *armresources.ResourceGroupsClient
	ids      *armmsi.UserAssignedIdentitiesClient
	hc       *http.Client
}

func newKVEnv(t testing.TB) *kvEnv {
	t.Helper()
	d := testenv.Start(t, testenv.Options{})
	prof := d.Profile()
	cred, opts := d.SDK()
	e := &kvEnv{t: t, d: d, prof: prof, cred: cred, opts: opts, sub: prof.SubscriptionID, tenant: prof.TenantID}
	var err error
	if e.vaults, err = armkeyvault.NewVaultsClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	if e.groups, err = armresources.NewResourceGroupsClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	if e.ids, err = armmsi.NewUserAssignedIdentitiesClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	if e.hc, err = azcred.HTTPClient([]byte(prof.CACertificate)); err != nil {
		t.Fatal(err)
	}
	e.adminOID = claim(t, e.token("https://management.azure.com/.default"), "oid")
	return e
}

// token gets the administrator's token for a scope.
func (e *kvEnv) token(scope string) string {
	e.t.Helper()
	tok, err := e.cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Token
}

// kvToken is the administrator's key-store token.
func (e *kvEnv) kvToken() string { return e.token("https://" + e.prof.KeyVaultDNSSuffix + "/.default") }

func claim(t testing.TB, token, name string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	s, _ := c[name].(string)
	return s
}

func (e *kvEnv) group(name string) {
	e.t.Helper()
	if _, err := e.groups.CreateOrUpdate(context.Background(), name, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		e.t.Fatal(err)
	}
}

// policy is an access policy entry for the directory's tenant.
func (e *kvEnv) policy(oid string, perms ...string) *armkeyvault.AccessPolicyEntry {
	var keys []*armkeyvault.KeyPermissions
	for _, p := range perms {
		keys = append(keys, to.Ptr(armkeyvault.KeyPermissions(p)))
	}
	return &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(e.tenant), ObjectID: to.Ptr(oid),
		Permissions: &armkeyvault.Permissions{Keys: keys}}
}

// vaultParams is a create request granting the administrator every key permission.
func (e *kvEnv) vaultParams() armkeyvault.VaultCreateOrUpdateParameters {
	return armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr("eastus"), Properties: &armkeyvault.VaultProperties{
		TenantID: to.Ptr(e.tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{e.policy(e.adminOID, keyvault.AllKeyPermissions...)},
	}}
}

// createVault creates a vault with armkeyvault; edit adjusts the request.
func (e *kvEnv) createVault(rg, name string, edit func(*armkeyvault.VaultCreateOrUpdateParameters)) armkeyvault.Vault {
	e.t.Helper()
	p := e.vaultParams()
	if edit != nil {
		edit(&p)
	}
	poller, err := e.vaults.BeginCreateOrUpdate(context.Background(), rg, name, p, nil)
	if err != nil {
		e.t.Fatalf("create vault %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(context.Background(), nil)
	if err != nil {
		e.t.Fatalf("create vault %s: %v", name, err)
	}
	return res.Vault
}

// keys is an azkeys client for a vault as the given credential (the administrator if nil).
func (e *kvEnv) keys(vault string, cred azcore.TokenCredential) *azkeys.Client {
	e.t.Helper()
	if cred == nil {
		cred = e.cred
	}
	c, err := azkeys.NewClient(e.vaultURL(vault), cred, &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *kvEnv) vaultURL(vault string) string {
	port := e.prof.Endpoint[strings.LastIndex(e.prof.Endpoint, ":")+1:]
	return "https://" + strings.ToLower(vault) + "." + e.prof.KeyVaultDNSSuffix + ":" + port
}

// identity creates a user-assigned managed identity and returns its principal and client ids.
func (e *kvEnv) identity(rg, name string) (principalID, clientID string) {
	e.t.Helper()
	res, err := e.ids.CreateOrUpdate(context.Background(), rg, name, armmsi.Identity{Location: to.Ptr("eastus")}, nil)
	if err != nil {
		e.t.Fatalf("create identity %s: %v", name, err)
	}
	return *res.Properties.PrincipalID, *res.Properties.ClientID
}

// answer is a raw HTTP answer.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// errCode is the error code of a Key Vault or ARM error body.
func (a answer) errCode() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) errMessage() string {
	e, _ := a.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func (a answer) innerCode() string {
	e, _ := a.body["error"].(map[string]any)
	in, _ := e["innererror"].(map[string]any)
	c, _ := in["code"].(string)
	return c
}

// do sends a raw request: for what Azure's SDK would never send.
func (e *kvEnv) do(method, url, token, body string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// respErr asserts err is an Azure response error with the status and code.
func respErr(t *testing.T, what string, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: want HTTP %d %s, got %v", what, status, code, err)
	}
	if re.StatusCode != status || (code != "" && re.ErrorCode != code) {
		t.Fatalf("%s: want HTTP %d %s, got %d %s: %v", what, status, code, re.StatusCode, re.ErrorCode, err)
	}
	return re
}
