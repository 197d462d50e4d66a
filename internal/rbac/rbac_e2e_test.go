package rbac_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/azcred"
	"github.com/pgflex/pgflex/internal/rbac"
	"github.com/pgflex/pgflex/internal/testenv"
)

func TestRoleDefinitionsWithAzureSDK(t *testing.T) {
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{})
	sub := d.Profile().SubscriptionID
	cred, opts := d.SDK()
	defs, err := armauthorization.NewRoleDefinitionsClient(cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	list := func(scope, filter string) []*armauthorization.RoleDefinition {
		t.Helper()
		var o *armauthorization.RoleDefinitionsClientListOptions
		if filter != "" {
			o = &armauthorization.RoleDefinitionsClientListOptions{Filter: to.Ptr(filter)}
		}
		var out []*armauthorization.RoleDefinition
		for p := defs.NewListPager(scope, o); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page.Value...)
		}
		return out
	}
	scope := "/subscriptions/" + sub
	all := list(scope, "")
	if len(all) < 9 {
		t.Fatalf("%d built-in roles listed", len(all))
	}
	cseu := list(scope+"/resourceGroups/any/providers/Microsoft.KeyVault/vaults/v", "roleName eq 'Key Vault Crypto Service Encryption User'")
	if len(cseu) != 1 {
		t.Fatalf("roleName filter found %d roles", len(cseu))
	}
	r := cseu[0]
	var data []string
	for _, a := range r.Properties.Permissions[0].DataActions {
		data = append(data, *a)
	}
	sort.Strings(data)
	wantID := scope + "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.RoleKeyVaultCryptoServiceEncryptionUser
	if *r.ID != wantID || *r.Name != rbac.RoleKeyVaultCryptoServiceEncryptionUser || *r.Properties.RoleType != "BuiltInRole" ||
		strings.Join(data, " ") != "Microsoft.KeyVault/vaults/keys/read Microsoft.KeyVault/vaults/keys/unwrap/action Microsoft.KeyVault/vaults/keys/wrap/action" {
		t.Fatalf("Key Vault Crypto Service Encryption User = id %s, type %s, dataActions %v", *r.ID, *r.Properties.RoleType, data)
	}
	if got := list(scope, "type eq 'CustomRole'"); len(got) != 0 {
		t.Fatalf("%d custom roles", len(got))
	}

	got, err := defs.Get(ctx, scope, rbac.RoleKeyVaultCryptoOfficer, nil)
	if err != nil || *got.Properties.RoleName != "Key Vault Crypto Officer" {
		t.Fatalf("Get Crypto Officer = %v, %v", got.Properties, err)
	}
	byID, err := defs.GetByID(ctx, "/providers/Microsoft.Authorization/roleDefinitions/"+rbac.RoleKeyVaultAdministrator, nil)
	if err != nil || *byID.Properties.RoleName != "Key Vault Administrator" || *byID.ID != "/providers/Microsoft.Authorization/roleDefinitions/"+rbac.RoleKeyVaultAdministrator {
		t.Fatalf("GetByID at the root = %+v, %v", byID, err)
	}
	_, err = defs.Get(ctx, scope, arm.NewGUID(), nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "RoleDefinitionDoesNotExist" {
		t.Fatalf("Get unknown role: %v", err)
	}
	// Managed HSM roles are local to an HSM, not ARM roles.
	_, err = defs.Get(ctx, scope, rbac.RoleManagedHSMCryptoServiceEncryptionUser, nil)
	if !errors.As(err, &re) || re.StatusCode != 404 {
		t.Fatalf("Get Managed HSM role over ARM: %v", err)
	}
}

func TestRoleAssignmentsWithAzureSDK(t *testing.T) {
	ctx := context.Background()
	d := testenv.Start(t, testenv.Options{})
	prof := d.Profile()
	sub := prof.SubscriptionID
	cred, opts := d.SDK()
	groups, _ := armresources.NewResourceGroupsClient(sub, cred, opts)
	ids, _ := armmsi.NewUserAssignedIdentitiesClient(sub, cred, opts)
	ras, err := armauthorization.NewRoleAssignmentsClient(sub, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "rg", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		t.Fatal(err)
	}
	ident, err := ids.CreateOrUpdate(ctx, "rg", "server-id", armmsi.Identity{Location: to.Ptr("eastus")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	oid := *ident.Properties.PrincipalID
	other, err := ids.CreateOrUpdate(ctx, "rg", "other-id", armmsi.Identity{Location: to.Ptr("eastus")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	subScope := "/subscriptions/" + sub
	vault := subScope + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/cmk-vault"
	key := vault + "/keys/k1"
	roleID := func(id string) *string {
		return to.Ptr(subScope + "/providers/Microsoft.Authorization/roleDefinitions/" + id)
	}
	create := func(scope, name, role, principal, ptype string) (armauthorization.RoleAssignment, error) {
		props := &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(principal), RoleDefinitionID: roleID(role)}
		if ptype != "" {
			props.PrincipalType = to.Ptr(armauthorization.PrincipalType(ptype))
		}
		res, err := ras.Create(ctx, scope, name, armauthorization.RoleAssignmentCreateParameters{Properties: props}, nil)
		return res.RoleAssignment, err
	}

	// The seed's grant: the server's identity gets Key Vault Crypto Service Encryption User on
	// the vault.
	onVault, err := create(vault, arm.NewGUID(), rbac.RoleKeyVaultCryptoServiceEncryptionUser, oid, "ServicePrincipal")
	if err != nil {
		t.Fatal(err)
	}
	p := onVault.Properties
	if *onVault.ID != vault+"/providers/Microsoft.Authorization/roleAssignments/"+*onVault.Name || *onVault.Type != "Microsoft.Authorization/roleAssignments" ||
		*p.Scope != vault || *p.PrincipalID != oid || *p.PrincipalType != armauthorization.PrincipalTypeServicePrincipal ||
		*p.RoleDefinitionID != *roleID(rbac.RoleKeyVaultCryptoServiceEncryptionUser) || p.CreatedOn == nil || p.UpdatedOn == nil ||
		*p.CreatedBy == "" {
		t.Fatalf("created assignment = %s %+v", *onVault.ID, *p)
	}
	onKey, err := create(key, arm.NewGUID(), rbac.RoleKeyVaultCryptoUser, oid, "")
	if err != nil {
		t.Fatal(err)
	}
	if *onKey.Properties.PrincipalType != "ServicePrincipal" {
		t.Fatalf("principal type without a hint = %s", *onKey.Properties.PrincipalType)
	}

	got, err := ras.Get(ctx, strings.ToUpper(vault), strings.ToUpper(*onVault.Name), nil)
	if err != nil || *got.Name != *onVault.Name {
		t.Fatalf("Get = %v, %v", got.Name, err)
	}
	if got, err := ras.GetByID(ctx, *onKey.ID, nil); err != nil || *got.Properties.Scope != key {
		t.Fatalf("GetByID = %v, %v", got, err)
	}

	names := func(pager interface {
		More() bool
	}, next func() ([]*armauthorization.RoleAssignment, error)) []string {
		var out []string
		for pager.More() {
			page, err := next()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page {
				switch *a.Name {
				case *onVault.Name:
					out = append(out, "vault")
				case *onKey.Name:
					out = append(out, "key")
				default:
					out = append(out, *a.Properties.Scope)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	forScope := func(scope, filter string) []string {
		var o *armauthorization.RoleAssignmentsClientListForScopeOptions
		if filter != "" {
			o = &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr(filter)}
		}
		p := ras.NewListForScopePager(scope, o)
		return names(p, func() ([]*armauthorization.RoleAssignment, error) {
			page, err := p.NextPage(ctx)
			return page.Value, err
		})
	}
	for _, c := range []struct {
		scope, filter, want string
	}{
		{vault, "atScope()", "vault"},
		{vault, "", "key vault"},
		{key, "atScope()", "key vault"},
		{subScope, "principalId eq '" + oid + "'", "key vault"},
		{subScope, "atScope()", ""},
	} {
		if got := strings.Join(forScope(c.scope, c.filter), " "); got != c.want {
			t.Errorf("list at %s with %q = %q, want %q", c.scope, c.filter, got, c.want)
		}
	}
	rgPager := ras.NewListForResourceGroupPager("rg", nil)
	if got := names(rgPager, func() ([]*armauthorization.RoleAssignment, error) {
		page, err := rgPager.NextPage(ctx)
		return page.Value, err
	}); strings.Join(got, " ") != "key vault" {
		t.Errorf("list for group = %v", got)
	}
	resPager := ras.NewListForResourcePager("rg", "Microsoft.KeyVault", "vaults", "cmk-vault", &armauthorization.RoleAssignmentsClientListForResourceOptions{Filter: to.Ptr("atScope()")})
	if got := names(resPager, func() ([]*armauthorization.RoleAssignment, error) {
		page, err := resPager.NextPage(ctx)
		return page.Value, err
	}); strings.Join(got, " ") != "vault" {
		t.Errorf("list for resource = %v", got)
	}

	// Refusals, in Azure's codes, that change nothing.
	ghost := arm.NewGUID()
	refusals := []struct {
		name                          string
		scope, aname, role, principal string
		ptype                         string
		status                        int
		code                          string
	}{
		{"duplicate under another name", vault, arm.NewGUID(), rbac.RoleKeyVaultCryptoServiceEncryptionUser, oid, "", 409, "RoleAssignmentExists"},
		{"unknown role", vault, arm.NewGUID(), arm.NewGUID(), oid, "", 400, "RoleDefinitionDoesNotExist"},
		{"unknown principal", vault, arm.NewGUID(), rbac.RoleKeyVaultReader, ghost, "ServicePrincipal", 400, "PrincipalNotFound"},
		{"name not a GUID", vault, "cmk-grant", rbac.RoleKeyVaultReader, oid, "", 400, "InvalidRoleAssignmentId"},
		{"malformed scope", subScope + "/resourceGroups", arm.NewGUID(), rbac.RoleKeyVaultReader, oid, "", 400, "InvalidScope"},
		{"malformed resource scope", subScope + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults", arm.NewGUID(), rbac.RoleKeyVaultReader, oid, "", 400, "InvalidScope"},
		{"group does not exist", subScope + "/resourceGroups/nope", arm.NewGUID(), rbac.RoleKeyVaultReader, oid, "", 404, "ResourceGroupNotFound"},
		{"principal type mismatch", vault, arm.NewGUID(), rbac.RoleKeyVaultReader, oid, "User", 400, "UnmatchedPrincipalType"},
		{"name reused for another principal", vault, *onVault.Name, rbac.RoleKeyVaultCryptoServiceEncryptionUser, *other.Properties.PrincipalID, "", 400, "RoleAssignmentUpdateNotPermitted"},
		{"name reused for another role", vault, *onVault.Name, rbac.RoleKeyVaultReader, oid, "", 400, "RoleAssignmentUpdateNotPermitted"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			_, err := create(c.scope, c.aname, c.role, c.principal, c.ptype)
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != c.status || re.ErrorCode != c.code {
				t.Fatalf("create = %v, want %d %s", err, c.status, c.code)
			}
		})
	}
	raw := newRawClient(t, d)
	bodyMismatch := raw.do(http.MethodPut, vault+"/providers/Microsoft.Authorization/roleAssignments/"+arm.NewGUID()+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"`+*roleID(rbac.RoleKeyVaultReader)+`","principalId":"`+oid+`","scope":"`+subScope+`"}}`)
	if bodyMismatch.status != 400 || bodyMismatch.code != "InvalidCreateRoleAssignmentRequest" {
		t.Fatalf("scope mismatch = %d %s", bodyMismatch.status, bodyMismatch.code)
	}
	if a := raw.do(http.MethodPut, vault+"/providers/Microsoft.Authorization/roleAssignments/"+arm.NewGUID()+"?api-version=2022-04-01", `{}`); a.status != 400 || a.code != "InvalidRequestContent" {
		t.Fatalf("no properties = %d %s", a.status, a.code)
	}
	if a := raw.do(http.MethodGet, subScope+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+
		"atScope()%20and%20principalId%20eq%20'"+oid+"'", ""); a.status != 400 || a.code != "UnsupportedQuery" {
		t.Fatalf("unsupported filter = %d %s", a.status, a.code)
	}
	if a := raw.do(http.MethodGet, vault+"/providers/Microsoft.Authorization/roleAssignments?api-version=2015-07-01", ""); a.status != 400 || a.code != "NoRegisteredProviderFound" {
		t.Fatalf("old api-version = %d %s", a.status, a.code)
	}
	if got := strings.Join(forScope(subScope, ""), " "); got != "key vault" {
		t.Fatalf("assignments after refusals = %q", got)
	}

	// Deleting the identity leaves its assignments, as in Azure (they grant nothing now).
	if _, err := ids.Delete(ctx, "rg", "server-id", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ras.Get(ctx, vault, *onVault.Name, nil); err != nil {
		t.Fatalf("assignment after its identity was deleted: %v", err)
	}

	// Delete answers the deleted assignment, then 204 (no error) when it is gone.
	del, err := ras.Delete(ctx, vault, *onVault.Name, nil)
	if err != nil || del.Name == nil || *del.Name != *onVault.Name {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	if _, err := ras.Delete(ctx, vault, *onVault.Name, nil); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	_, err = ras.Get(ctx, vault, *onVault.Name, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "RoleAssignmentNotFound" {
		t.Fatalf("get after delete: %v", err)
	}

	// The group's delete takes the assignments below it.
	poller, err := groups.BeginDelete(ctx, "rg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := forScope(subScope, ""); len(got) != 0 {
		t.Fatalf("assignments after the group's delete = %v", got)
	}
}

type rawClient struct {
	t        *testing.T
	hc       *http.Client
	endpoint string
	token    string
}

func newRawClient(t *testing.T, d *testenv.Daemon) *rawClient {
	prof := d.Profile()
	hc, err := azcred.HTTPClient([]byte(prof.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := d.SDK()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, hc: hc, endpoint: prof.Endpoint, token: tok.Token}
}

type answer struct {
	status int
	code   string
}

func (c *rawClient) do(method, pathAndQuery, body string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.endpoint+pathAndQuery, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&b)
	return answer{status: resp.StatusCode, code: b.Error.Code}
}
