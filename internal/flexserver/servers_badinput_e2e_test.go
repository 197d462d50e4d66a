package flexserver_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
)

// TestServerBadInputAndRules: each bad request gets its ARM error and leaves nothing behind;
// databases and state rules on a live server.
func TestServerBadInputAndRules(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir}})
	createGroup(t, d, "rg", "eastus")
	createGroup(t, d, "other", "eastus")
	createServer(t, d, "rg", "good", nil)
	const v = "?api-version=2025-08-01"
	good := func() map[string]any {
		return map[string]any{"location": "eastus", "properties": map[string]any{"administratorLogin": "pgadmin",
			"administratorLoginPassword": adminPassword, "storage": map[string]any{"storageSizeGB": 32}}}
	}
	with := func(mut func(b map[string]any)) map[string]any {
		b := good()
		mut(b)
		return b
	}
	setProp := func(k string, val any) func(b map[string]any) {
		return func(b map[string]any) { b["properties"].(map[string]any)[k] = val }
	}
	tests := []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"uppercase name", serverPath(d, "rg", "BadName") + v, good(), 400, "InvalidServerName"},
		{"name too short", serverPath(d, "rg", "ab") + v, good(), 400, "InvalidServerName"},
		{"name ends with hyphen", serverPath(d, "rg", "bad-") + v, good(), 400, "InvalidServerName"},
		{"unknown location", serverPath(d, "rg", "srv1") + v, with(func(b map[string]any) { b["location"] = "mars" }), 400, "NoRegisteredProviderFound"},
		{"unsupported version", serverPath(d, "rg", "srv1") + v, with(setProp("version", "11")), 400, "InvalidParameterValue"},
		{"storage size not offered", serverPath(d, "rg", "srv1") + v, with(setProp("storage", map[string]any{"storageSizeGB": 100})), 400, "InvalidParameterValue"},
		{"retention out of range", serverPath(d, "rg", "srv1") + v, with(setProp("backup", map[string]any{"backupRetentionDays": 40})), 400, "InvalidParameterValue"},
		{"weak password", serverPath(d, "rg", "srv1") + v, with(setProp("administratorLoginPassword", "password")), 400, "PasswordNotComplex"},
		{"password holds the login", serverPath(d, "rg", "srv1") + v, with(setProp("administratorLoginPassword", "Pgadmin!2345")), 400, "PasswordNotComplex"},
		{"reserved login", serverPath(d, "rg", "srv1") + v, with(setProp("administratorLogin", "azure_superuser")), 400, "InvalidAdministratorLogin"},
		{"missing password", serverPath(d, "rg", "srv1") + v, with(func(b map[string]any) { delete(b["properties"].(map[string]any), "administratorLoginPassword") }), 400, "AdministratorPasswordRequired"},
		{"geo backup where there is no pair", serverPath(d, "rg", "srv1") + v, with(func(b map[string]any) {
			b["location"] = "italynorth"
			b["properties"].(map[string]any)["backup"] = map[string]any{"geoRedundantBackup": "Enabled"}
		}), 400, "InvalidParameterValue"},
		{"malformed JSON", serverPath(d, "rg", "srv1") + v, "{", 400, "InvalidRequestContent"},
		{"name used in another group", serverPath(d, "other", "good") + v, good(), 409, "ServerNameAlreadyExists"},
		{"conflicting location on existing", serverPath(d, "rg", "good") + v, with(func(b map[string]any) { b["location"] = "westus" }), 400, "PropertyChangeNotAllowed"},
		{"conflicting login on existing", serverPath(d, "rg", "good") + v, with(setProp("administratorLogin", "someoneelse")), 400, "PropertyChangeNotAllowed"},
		{"switch to CMK by update", serverPath(d, "rg", "good") + v, map[string]any{"properties": map[string]any{"dataEncryption": map[string]any{"type": "AzureKeyVault",
			"primaryKeyURI": "https://v.vault.localhost/keys/k", "primaryUserAssignedIdentityId": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"}}}, 400, "DataEncryptionTypeChangeNotAllowed"},
		{"storage shrink", serverPath(d, "rg", "good") + v, map[string]any{"properties": map[string]any{"storage": map[string]any{"storageSizeGB": 32}}}, 0, ""},
		{"unknown group", serverPath(d, "nogroup", "srv1") + v, good(), 404, "ResourceGroupNotFound"},
		{"unsupported api-version", serverPath(d, "rg", "srv1") + "?api-version=2017-12-01", good(), 400, "NoRegisteredProviderFound"},
		{"start a running server", serverPath(d, "rg", "good") + "/start" + v, nil, 409, "InvalidServerState"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if strings.HasSuffix(strings.Split(tc.path, "?")[0], "/start") {
				method = http.MethodPost
			}
			if tc.code == "DataEncryptionTypeChangeNotAllowed" || tc.name == "storage shrink" {
				method = http.MethodPatch
			}
			var r testenv.ARMResponse
			if s, ok := tc.body.(string); ok {
				r = d.Do(t, method, tc.path, d.Token(t, "https://management.azure.com/.default"), []byte(s))
			} else {
				r = d.ARM(t, method, tc.path, tc.body)
			}
			if tc.status == 0 {
				// A no-op update is accepted.
				if r.Status != 202 {
					t.Fatalf("got %d %s", r.Status, r.Raw)
				}
				d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute)
				return
			}
			if r.Status != tc.status || r.ErrorCode() != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", r.Status, r.ErrorCode(), r.ErrorMessage(), tc.status, tc.code)
			}
		})
	}
	// Nothing was left behind: one server, one directory, the good server untouched.
	list := d.ARM(t, http.MethodGet, "/subscriptions/"+d.Profile().SubscriptionID+"/providers/Microsoft.DBforPostgreSQL/flexibleServers"+v, nil)
	if vals, _ := list.Body["value"].([]any); len(vals) != 1 {
		t.Fatalf("servers after bad input: %s", list.Raw)
	}
	if dirs := serverDirs(t, d); len(dirs) != 1 {
		t.Fatalf("server directories after bad input: %v", dirs)
	}
	srv := serverRaw(t, d, "rg", "good")
	if props(srv)["state"] != "Ready" || srv["location"] != "eastus" || props(srv)["administratorLogin"] != "pgadmin" {
		t.Fatalf("good server changed: %v", srv)
	}
	// The same size is accepted (an update with nothing to do); it is an operation like any
	// other, and the server takes the next one (the database below) only after it: waited for,
	// or a loaded machine answers 409 to the next request.
	if r := d.ARM(t, http.MethodPatch, serverPath(d, "rg", "good")+v, map[string]any{"properties": map[string]any{"storage": map[string]any{"storageSizeGB": 32}}}); r.Status != 202 {
		t.Fatalf("same size: %d", r.Status)
	} else if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute); op["status"] != "Succeeded" {
		t.Fatalf("same size: %v", op)
	}

	// Databases live in the server's PostgreSQL.
	dbPath := serverPath(d, "rg", "good") + "/databases/appdb" + v
	r := d.ARM(t, http.MethodPut, dbPath, map[string]any{"properties": map[string]any{"charset": "UTF8"}})
	if r.Status != 202 {
		t.Fatalf("create database: %d %s", r.Status, r.Raw)
	}
	if op := d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute); op["status"] != "Succeeded" {
		t.Fatalf("create database: %v", op)
	}
	if r := d.ARM(t, http.MethodGet, dbPath, nil); r.Status != 200 || r.Body["name"] != "appdb" {
		t.Fatalf("get database: %d %s", r.Status, r.Raw)
	}
	conn, err := connect(t, d, srv, "appdb")
	if err != nil {
		t.Fatalf("connect to the new database: %v", err)
	}
	conn.Close(t.Context())
	if r := d.ARM(t, http.MethodPut, serverPath(d, "rg", "good")+"/databases/template1"+v, map[string]any{}); r.ErrorCode() != "InvalidParameterValue" {
		t.Fatalf("reserved database name: %d %s", r.Status, r.Raw)
	}
	r = d.ARM(t, http.MethodDelete, dbPath, nil)
	if r.Status != 202 {
		t.Fatalf("delete database: %d %s", r.Status, r.Raw)
	}
	d.WaitOperation(t, r.Header.Get("Azure-AsyncOperation"), time.Minute)
	if r := d.ARM(t, http.MethodGet, dbPath, nil); r.Status != 404 {
		t.Fatalf("database after delete: %d", r.Status)
	}
}
