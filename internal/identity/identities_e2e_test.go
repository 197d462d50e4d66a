package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
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
	"github.com/pgflex/pgflex/internal/testenv"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// env is a daemon with Azure SDK clients for identities, groups and role assignments.
type env struct {
	t      *testing.T
	d      *testenv.Daemon
	sub    string
	tenant string
	ids    *armmsi.UserAssignedIdentitiesClient
	groups *armresources.ResourceGroupsClient
	roles  *armauthorization.RoleAssignmentsClient
	raw    *rawClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := testenv.Start(t, testenv.Options{})
	prof := d.Profile()
	cred, opts := d.SDK()
	e := &env{t: t, d: d, sub: prof.SubscriptionID, tenant: prof.TenantID, raw: newRawClient(t, d)}
	var err error
	if e.ids, err = armmsi.NewUserAssignedIdentitiesClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	if e.groups, err = armresources.NewResourceGroupsClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	if e.roles, err = armauthorization.NewRoleAssignmentsClient(e.sub, cred, opts); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) group(name string) {
	e.t.Helper()
	if _, err := e.groups.CreateOrUpdate(context.Background(), name, armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) create(group, name string) armmsi.Identity {
	e.t.Helper()
	res, err := e.ids.CreateOrUpdate(context.Background(), group, name, armmsi.Identity{Location: to.Ptr("eastus")}, nil)
	if err != nil {
		e.t.Fatalf("create identity %s/%s: %v", group, name, err)
	}
	return res.Identity
}

func (e *env) names(group string) []string {
	e.t.Helper()
	var out []string
	if group == "" {
		for p := e.ids.NewListBySubscriptionPager(nil); p.More(); {
			page, err := p.NextPage(context.Background())
			if err != nil {
				e.t.Fatal(err)
			}
			for _, i := range page.Value {
				out = append(out, *i.Name)
			}
		}
		return out
	}
	for p := e.ids.NewListByResourceGroupPager(group, nil); p.More(); {
		page, err := p.NextPage(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, i := range page.Value {
			out = append(out, *i.Name)
		}
	}
	return out
}

// principalExists asks the directory, through the role-assignment API, whether a principal
// exists: assigning it a role fails with PrincipalNotFound when it does not.
func (e *env) principalExists(principalID string) bool {
	e.t.Helper()
	scope := "/subscriptions/" + e.sub
	name := arm.NewGUID()
	_, err := e.roles.Create(context.Background(), scope, name, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(principalID),
			RoleDefinitionID: to.Ptr(scope + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7")}}, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.ErrorCode == "PrincipalNotFound" {
		return false
	}
	if err != nil {
		e.t.Fatalf("assign a role to %s: %v", principalID, err)
	}
	if _, err := e.roles.Delete(context.Background(), scope, name, nil); err != nil {
		e.t.Fatal(err)
	}
	return true
}

// armStatusWithIdentityToken calls ARM with a token minted for the identity's principal, as
// the data plane would mint it: 403 while the principal exists (identities cannot manage
// resources), 401 once it is gone.
func (e *env) armStatusWithIdentityToken(principalID, clientID string) (int, string) {
	e.t.Helper()
	tok, err := e.d.IdentityCredential(principalID, clientID).GetToken(context.Background(),
		policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		e.t.Fatal(err)
	}
	a := e.raw.do(http.MethodGet, "/subscriptions/"+e.sub+"/resourcegroups?api-version=2021-04-01", tok.Token, "")
	return a.status, a.code
}

func TestIdentitiesWithAzureSDK(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.group("RG-Identities")
	e.group("rg-other")

	created, err := e.ids.CreateOrUpdate(ctx, "RG-Identities", "Id-One", armmsi.Identity{
		Location: to.Ptr("East US"), Tags: map[string]*string{"env": to.Ptr("test")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := created.Identity
	wantID := "/subscriptions/" + e.sub + "/resourcegroups/RG-Identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Id-One"
	p := one.Properties
	switch {
	case *one.ID != wantID:
		t.Errorf("id = %s, want %s", *one.ID, wantID)
	case *one.Name != "Id-One" || *one.Type != "Microsoft.ManagedIdentity/userAssignedIdentities" || *one.Location != "eastus":
		t.Errorf("created = name %s type %s location %s", *one.Name, *one.Type, *one.Location)
	case !guidRE.MatchString(*p.PrincipalID) || !guidRE.MatchString(*p.ClientID) || *p.PrincipalID == *p.ClientID:
		t.Errorf("principal %s, client %s: want two distinct GUIDs", *p.PrincipalID, *p.ClientID)
	case *p.TenantID != e.tenant:
		t.Errorf("tenant = %s, want %s", *p.TenantID, e.tenant)
	case p.IsolationScope == nil || *p.IsolationScope != armmsi.IsolationScopeNone:
		t.Errorf("isolationScope = %v, want None (armmsi speaks 2024-11-30)", p.IsolationScope)
	case *one.Tags["env"] != "test":
		t.Errorf("tags = %v", one.Tags)
	}

	// Ids compare case-insensitively; the principal is the same one.
	got, err := e.ids.Get(ctx, "rg-identities", "ID-ONE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Properties.PrincipalID != *p.PrincipalID || *got.Name != "Id-One" {
		t.Fatalf("get = %s %s, want the created identity", *got.Name, *got.Properties.PrincipalID)
	}
	// PATCH changes tags only; PUT of an existing identity keeps its principal.
	upd, err := e.ids.Update(ctx, "RG-Identities", "Id-One", armmsi.IdentityUpdate{Tags: map[string]*string{"tier": to.Ptr("gold")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.Tags) != 1 || *upd.Tags["tier"] != "gold" || *upd.Properties.PrincipalID != *p.PrincipalID {
		t.Fatalf("update = tags %v principal %s", upd.Tags, *upd.Properties.PrincipalID)
	}
	again := e.raw.do(http.MethodPut, "/subscriptions/"+e.sub+"/resourceGroups/RG-Identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Id-One?api-version=2023-01-31",
		e.raw.admin, `{"location":"eastus"}`)
	if again.status != http.StatusOK || again.prop("principalId") != *p.PrincipalID || again.prop("isolationScope") != nil {
		t.Fatalf("PUT existing (2023-01-31) = %d %v, want 200, same principal, no isolationScope", again.status, again.body)
	}

	e.create("RG-Identities", "id-two")
	e.create("rg-other", "id-three")
	if names := e.names("RG-Identities"); strings.Join(names, ",") != "Id-One,id-two" {
		t.Errorf("list by group = %v", names)
	}
	if names := e.names(""); len(names) != 3 {
		t.Errorf("list by subscription = %v, want 3", names)
	}
	// Paging with $top, followed through nextLink.
	page := e.raw.do(http.MethodGet, "/subscriptions/"+e.sub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2023-01-31&$top=2", e.raw.admin, "")
	next, _ := page.body["nextLink"].(string)
	if page.status != 200 || len(page.body["value"].([]any)) != 2 || next == "" {
		t.Fatalf("first page = %d %v", page.status, page.body)
	}
	u, _ := url.Parse(next)
	if rest := e.raw.do(http.MethodGet, u.RequestURI(), e.raw.admin, ""); len(rest.body["value"].([]any)) != 1 {
		t.Fatalf("second page = %v", rest.body)
	}

	// The identity's principal exists and can hold roles; its tokens are refused by ARM (403:
	// identities do not manage resources).
	if !e.principalExists(*p.PrincipalID) {
		t.Fatal("the new identity's principal is not in the directory")
	}
	if status, code := e.armStatusWithIdentityToken(*p.PrincipalID, *p.ClientID); status != 403 || code != "AuthorizationFailed" {
		t.Fatalf("ARM with the identity's token = %d %s, want 403 AuthorizationFailed", status, code)
	}

	// Delete: the identity and its principal go together; its tokens stop working at once.
	if _, err := e.ids.Delete(ctx, "RG-Identities", "Id-One", nil); err != nil {
		t.Fatal(err)
	}
	_, err = e.ids.Get(ctx, "RG-Identities", "Id-One", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	if e.principalExists(*p.PrincipalID) {
		t.Fatal("the deleted identity's principal is still in the directory")
	}
	if status, code := e.armStatusWithIdentityToken(*p.PrincipalID, *p.ClientID); status != 401 || code != "InvalidAuthenticationToken" {
		t.Fatalf("ARM with the deleted identity's token = %d %s, want 401 InvalidAuthenticationToken", status, code)
	}
	if del := e.raw.do(http.MethodDelete, wantID+"?api-version=2023-01-31", e.raw.admin, ""); del.status != http.StatusNoContent {
		t.Fatalf("second delete = %d, want 204", del.status)
	}

	// A re-created identity of the same name is a new principal.
	re1 := e.create("RG-Identities", "Id-One")
	if *re1.Properties.PrincipalID == *p.PrincipalID || *re1.Properties.ClientID == *p.ClientID {
		t.Fatal("a re-created identity kept the old principal or client id")
	}
}

func TestIdentityValidation(t *testing.T) {
	e := newEnv(t)
	e.group("rg")
	base := "/subscriptions/" + e.sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
	e.create("rg", "existing")
	long := strings.Repeat("a", 129)
	tags := map[string]string{}
	for i := range 51 {
		tags[fmt.Sprint("t", i)] = "v"
	}
	tooManyTags, _ := json.Marshal(map[string]any{"location": "eastus", "tags": tags})
	cases := []struct {
		name, path, body, version string
		status                    int
		code                      string
	}{
		{"unknown location", base + "id-a", `{"location":"marsnorth"}`, "", 400, "LocationNotAvailableForResourceType"},
		{"no location", base + "id-a", `{"tags":{}}`, "", 400, "LocationRequired"},
		{"malformed body", base + "id-a", `{"location":`, "", 400, "InvalidRequestContent"},
		{"space", base + "a%20b", `{"location":"eastus"}`, "", 400, "InvalidResourceName"},
		{"leading hyphen", base + "-abc", `{"location":"eastus"}`, "", 400, "InvalidResourceName"},
		{"leading underscore", base + "_abc", `{"location":"eastus"}`, "", 400, "InvalidResourceName"},
		{"dot", base + "abc.def", `{"location":"eastus"}`, "", 400, "InvalidResourceName"},
		{"too long", base + long, `{"location":"eastus"}`, "", 400, "InvalidResourceName"},
		{"no group", "/subscriptions/" + e.sub + "/resourceGroups/nope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a", `{"location":"eastus"}`, "", 404, "ResourceGroupNotFound"},
		{"no subscription", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a", `{"location":"eastus"}`, "", 404, "SubscriptionNotFound"},
		{"moved location", base + "existing", `{"location":"westus"}`, "", 400, "InvalidResourceLocation"},
		{"bad isolation scope", base + "id-a", `{"location":"eastus","properties":{"isolationScope":"Global"}}`, "2024-11-30", 400, "InvalidParameterValue"},
		{"too many tags", base + "id-a", string(tooManyTags), "", 400, "InvalidTag"},
		{"unknown api-version", base + "id-a", `{"location":"eastus"}`, "2099-01-01", 400, "NoRegisteredProviderFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.version
			if v == "" {
				v = "2023-01-31"
			}
			a := e.raw.do(http.MethodPut, c.path+"?api-version="+v, e.raw.admin, c.body)
			if a.status != c.status || a.code != c.code {
				t.Fatalf("PUT = %d %s (%v), want %d %s", a.status, a.code, a.body, c.status, c.code)
			}
		})
	}
	// Nothing was created or changed by the refused requests.
	if names := e.names(""); len(names) != 1 || names[0] != "existing" {
		t.Fatalf("identities after refused requests = %v", names)
	}
	got, err := e.ids.Get(context.Background(), "rg", "existing", nil)
	if err != nil || *got.Location != "eastus" {
		t.Fatalf("existing identity after refused move: %v %v", got.Location, err)
	}
	if g := e.raw.do(http.MethodGet, base+"nope?api-version=2023-01-31", e.raw.admin, ""); g.status != 404 || g.code != "ResourceNotFound" {
		t.Fatalf("GET missing = %d %s", g.status, g.code)
	}
}

func TestGroupDeleteRemovesIdentitiesAndPrincipals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.group("rg-doomed")
	e.group("rg-kept")
	a, b := e.create("rg-doomed", "id-a"), e.create("rg-doomed", "id-b")
	kept := e.create("rg-kept", "id-kept")

	poller, err := e.groups.BeginDelete(ctx, "rg-doomed", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if names := e.names(""); len(names) != 1 || names[0] != "id-kept" {
		t.Fatalf("identities after group delete = %v, want [id-kept]", names)
	}
	for _, gone := range []armmsi.Identity{a, b} {
		if e.principalExists(*gone.Properties.PrincipalID) {
			t.Errorf("principal of %s survived its group", *gone.Name)
		}
	}
	if !e.principalExists(*kept.Properties.PrincipalID) {
		t.Error("principal of an identity in another group was removed")
	}
}

// rawClient sends requests Azure's SDK would not, with the administrator's ARM token.
type rawClient struct {
	t        *testing.T
	hc       *http.Client
	endpoint string
	admin    string
}

func newRawClient(t *testing.T, d *testenv.Daemon) *rawClient {
	t.Helper()
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
	return &rawClient{t: t, hc: hc, endpoint: prof.Endpoint, admin: tok.Token}
}

type answer struct {
	status int
	code   string
	body   map[string]any
	raw    string
}

func (a answer) prop(name string) any {
	props, _ := a.body["properties"].(map[string]any)
	return props[name]
}

func (c *rawClient) do(method, pathAndQuery, token, body string) answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.endpoint+pathAndQuery, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	if e, ok := a.body["error"].(map[string]any); ok {
		a.code, _ = e["code"].(string)
	}
	return a
}
