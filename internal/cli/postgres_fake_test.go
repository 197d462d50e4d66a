package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// fakeFlex plays Microsoft.DBforPostgreSQL on a fakeDaemon for the unit tests of the
// flexible-server commands: it records every request with its body, keeps servers in memory and
// answers writes as Azure does (202 with an Azure-AsyncOperation that has already succeeded).
// The real provider is exercised by postgres_e2e_test.go.
type fakeFlex struct {
	f  *fakeDaemon
	mu sync.Mutex
	// servers by lower-case name, in ARM's wire shape
	servers   map[string]map[string]any
	databases map[string][]string // by lower-case server name
	// rules are firewall rules by lower-case server name, then rule name, in ARM's shape
	rules map[string]map[string]map[string]any
	calls []fakeCall
	// noGeo are locations whose capabilities say geoBackupSupported Disabled.
	noGeo map[string]bool
}

type fakeCall struct {
	Method, Path string
	Body         map[string]any
}

const fakeFlexPrefix = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers"

func newFakeFlex(t *testing.T) (*fakeDaemon, *fakeFlex) {
	f := newFakeDaemon(t)
	x := &fakeFlex{f: f, servers: map[string]map[string]any{}, databases: map[string][]string{}, rules: map[string]map[string]map[string]any{}, noGeo: map[string]bool{"israelcentral": true}}
	m := f.mux
	srv := fakeFlexPrefix + "/{name}"
	m.HandleFunc("PUT "+srv, x.put)
	m.HandleFunc("GET "+srv, x.get)
	m.HandleFunc("PATCH "+srv, x.patch)
	m.HandleFunc("DELETE "+srv, x.delete)
	m.HandleFunc("POST "+srv+"/{action}", x.action)
	m.HandleFunc("GET "+fakeFlexPrefix, x.list)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/flexibleServers", x.list)
	m.HandleFunc("POST /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/checkNameAvailability", x.checkName)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/capabilities", x.capabilities)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/azureAsyncOperation/{op}",
		func(w http.ResponseWriter, r *http.Request) {
			replyJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("op"), "status": "Succeeded"})
		})
	m.HandleFunc("PUT "+srv+"/databases/{db}", x.putDatabase)
	m.HandleFunc("GET "+srv+"/databases/{db}", x.getDatabase)
	m.HandleFunc("DELETE "+srv+"/databases/{db}", x.deleteDatabase)
	m.HandleFunc("GET "+srv+"/databases", x.listDatabases)
	m.HandleFunc("PUT "+srv+"/firewallRules/{rule}", x.putRule)
	m.HandleFunc("GET "+srv+"/firewallRules/{rule}", x.getRule)
	m.HandleFunc("DELETE "+srv+"/firewallRules/{rule}", x.deleteRule)
	m.HandleFunc("GET "+srv+"/firewallRules", x.listRules)
	return f, x
}

// record notes a request and returns its decoded body.
func (x *fakeFlex) record(r *http.Request) map[string]any {
	data, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(data, &body)
	x.mu.Lock()
	x.calls = append(x.calls, fakeCall{Method: r.Method, Path: r.URL.Path, Body: body})
	x.mu.Unlock()
	return body
}

// writes are the recorded requests that change something.
func (x *fakeFlex) writes() []fakeCall {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []fakeCall
	for _, c := range x.calls {
		if c.Method != http.MethodGet && !strings.HasSuffix(c.Path, "/checkNameAvailability") {
			out = append(out, c)
		}
	}
	return out
}

// lastWrite is the last write other than a firewall rule's (create adds one after the server:
// ruleWrites has them).
func (x *fakeFlex) lastWrite(t *testing.T) fakeCall {
	t.Helper()
	var w []fakeCall
	for _, c := range x.writes() {
		if !strings.Contains(c.Path, "/firewallRules/") {
			w = append(w, c)
		}
	}
	if len(w) == 0 {
		t.Fatal("no write request was sent")
	}
	return w[len(w)-1]
}

// ruleWrites are the recorded writes of firewall rules.
func (x *fakeFlex) ruleWrites() []fakeCall {
	var out []fakeCall
	for _, c := range x.writes() {
		if strings.Contains(c.Path, "/firewallRules/") {
			out = append(out, c)
		}
	}
	return out
}

func (x *fakeFlex) accepted(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Azure-AsyncOperation", fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.DBforPostgreSQL/locations/eastus/azureAsyncOperation/op1?api-version=%s",
		x.f.srv.URL, r.PathValue("sub"), r.URL.Query().Get("api-version")))
	w.Header().Set("Retry-After", "0")
	replyJSON(w, http.StatusAccepted, map[string]any{"operation": "UpsertServerManagementOperationV2"})
}

func (x *fakeFlex) notFound(w http.ResponseWriter, r *http.Request) {
	replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound",
		fmt.Sprintf("The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/%s' under resource group '%s' was not found.", r.PathValue("name"), r.PathValue("rg"))))
}

// addServer stores a server as the real provider shows it; mutate adjusts it.
func (x *fakeFlex) addServer(group, name string, mutate func(s map[string]any)) {
	s := map[string]any{
		"id":   "/subscriptions/" + x.f.sub + "/resourceGroups/" + group + "/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + name,
		"name": name, "type": "Microsoft.DBforPostgreSQL/flexibleServers", "location": "eastus", "tags": map[string]any{},
		"sku":      map[string]any{"name": "Standard_D2s_v3", "tier": "GeneralPurpose"},
		"identity": map[string]any{"type": "None"},
		"properties": map[string]any{
			"administratorLogin": "pgadmin", "version": "16", "state": "Ready", "fullyQualifiedDomainName": name + ".postgres.localhost",
			"storage":           map[string]any{"storageSizeGB": 128, "autoGrow": "Disabled", "tier": "P10"},
			"backup":            map[string]any{"backupRetentionDays": 7, "geoRedundantBackup": "Disabled", "earliestRestoreDate": "2026-01-01T00:00:00Z"},
			"network":           map[string]any{"publicNetworkAccess": "Enabled"},
			"highAvailability":  map[string]any{"mode": "Disabled", "state": "NotEnabled"},
			"maintenanceWindow": map[string]any{"customWindow": "Disabled", "dayOfWeek": 0, "startHour": 0, "startMinute": 0},
			"authConfig":        map[string]any{"activeDirectoryAuth": "Disabled", "passwordAuth": "Enabled"},
			"dataEncryption":    map[string]any{"type": "SystemManaged", "primaryKeyURI": nil},
			"availabilityZone":  "",
		},
	}
	if mutate != nil {
		mutate(s)
	}
	x.mu.Lock()
	x.servers[strings.ToLower(name)] = s
	x.mu.Unlock()
}

func (x *fakeFlex) server(name string) map[string]any {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.servers[strings.ToLower(name)]
}

func (x *fakeFlex) put(w http.ResponseWriter, r *http.Request) {
	body := x.record(r)
	name := r.PathValue("name")
	props, _ := body["properties"].(map[string]any)
	if props["administratorLoginPassword"] == "weak" {
		replyJSON(w, http.StatusBadRequest, armErr("PasswordNotComplex", "The password does not meet policy requirements because it is not complex enough."))
		return
	}
	x.addServer(r.PathValue("rg"), name, func(s map[string]any) {
		s["location"] = body["location"]
		if body["tags"] != nil {
			s["tags"] = body["tags"]
		}
		s["sku"] = body["sku"]
		p := s["properties"].(map[string]any)
		p["administratorLogin"] = props["administratorLogin"]
		p["version"] = props["version"]
		if de, ok := props["dataEncryption"].(map[string]any); ok {
			p["dataEncryption"] = de
		}
		if id, ok := body["identity"].(map[string]any); ok {
			s["identity"] = withPrincipals(id)
		}
	})
	x.accepted(w, r)
}

// withPrincipals fills principalId/clientId of every identity, as the service does.
func withPrincipals(id map[string]any) map[string]any {
	uai, _ := id["userAssignedIdentities"].(map[string]any)
	out := map[string]any{}
	for k := range uai {
		out[k] = map[string]any{"principalId": "p-" + k[strings.LastIndex(k, "/")+1:], "clientId": "c-" + k[strings.LastIndex(k, "/")+1:]}
	}
	return map[string]any{"type": id["type"], "userAssignedIdentities": out}
}

func (x *fakeFlex) get(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	if s := x.server(r.PathValue("name")); s != nil {
		replyJSON(w, http.StatusOK, s)
		return
	}
	x.notFound(w, r)
}

func (x *fakeFlex) patch(w http.ResponseWriter, r *http.Request) {
	body := x.record(r)
	x.mu.Lock()
	s := x.servers[strings.ToLower(r.PathValue("name"))]
	if s != nil {
		if t, ok := body["tags"].(map[string]any); ok {
			s["tags"] = t
		}
		if props, ok := body["properties"].(map[string]any); ok {
			p := s["properties"].(map[string]any)
			if b, ok := props["backup"].(map[string]any); ok {
				p["backup"].(map[string]any)["backupRetentionDays"] = b["backupRetentionDays"]
			}
		}
		if id, ok := body["identity"].(map[string]any); ok {
			cur, _ := s["identity"].(map[string]any)
			merged := map[string]any{}
			if m, ok := cur["userAssignedIdentities"].(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
			if id["type"] == "None" {
				merged = map[string]any{}
			}
			for k, v := range withPrincipals(id)["userAssignedIdentities"].(map[string]any) {
				merged[k] = v
			}
			if m, ok := id["userAssignedIdentities"].(map[string]any); ok {
				for k, v := range m {
					if v == nil {
						delete(merged, k)
					}
				}
			}
			if len(merged) == 0 {
				s["identity"] = map[string]any{"type": "None"}
			} else {
				s["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": merged}
			}
		}
	}
	x.mu.Unlock()
	if s == nil {
		x.notFound(w, r)
		return
	}
	x.accepted(w, r)
}

func (x *fakeFlex) delete(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	delete(x.servers, strings.ToLower(r.PathValue("name")))
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) action(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	s := x.server(r.PathValue("name"))
	if s == nil {
		x.notFound(w, r)
		return
	}
	state := map[string]string{"start": "Ready", "stop": "Stopped", "restart": "Ready"}[r.PathValue("action")]
	x.mu.Lock()
	s["properties"].(map[string]any)["state"] = state
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) list(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	var out []any
	for _, s := range x.servers {
		if rg := r.PathValue("rg"); rg == "" || strings.Contains(strings.ToLower(s["id"].(string)), "/resourcegroups/"+strings.ToLower(rg)+"/") {
			out = append(out, s)
		}
	}
	x.mu.Unlock()
	replyJSON(w, http.StatusOK, map[string]any{"value": append([]any{}, out...)})
}

func (x *fakeFlex) checkName(w http.ResponseWriter, r *http.Request) {
	body := x.record(r)
	name, _ := body["name"].(string)
	if x.server(name) != nil {
		replyJSON(w, http.StatusOK, map[string]any{"name": name, "type": body["type"], "nameAvailable": false,
			"reason": "AlreadyExists", "message": "Specified server name is already used."})
		return
	}
	replyJSON(w, http.StatusOK, map[string]any{"name": name, "type": body["type"], "nameAvailable": true, "message": ""})
}

func (x *fakeFlex) capabilities(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	geo := "Enabled"
	if x.noGeo[r.PathValue("loc")] {
		geo = "Disabled"
	}
	storage := []any{}
	for _, gb := range []int{32, 64, 128, 256, 512} {
		storage = append(storage, map[string]any{"storageSizeMb": gb * 1024})
	}
	edition := func(name, def string, skus ...string) map[string]any {
		var s []any
		for _, k := range skus {
			s = append(s, map[string]any{"name": k})
		}
		return map[string]any{"name": name, "defaultSkuName": def, "supportedServerSkus": s,
			"supportedStorageEditions": []any{map[string]any{"name": "ManagedDisk", "supportedStorageMb": storage}}}
	}
	replyJSON(w, http.StatusOK, map[string]any{"value": []any{map[string]any{
		"supportedServerEditions": []any{
			edition("Burstable", "Standard_B1ms", "Standard_B1ms", "Standard_B2s"),
			edition("GeneralPurpose", "Standard_D2s_v3", "Standard_D2s_v3", "Standard_D4s_v3", "Standard_D2ds_v5", "Standard_D2ds_v4"),
			edition("MemoryOptimized", "Standard_E2s_v3", "Standard_E2s_v3"),
		},
		"supportedServerVersions": []any{map[string]any{"name": "14"}, map[string]any{"name": "16"}, map[string]any{"name": "15"}},
		"geoBackupSupported":      geo,
	}}})
}

func (x *fakeFlex) databaseBody(r *http.Request, db string) map[string]any {
	return map[string]any{"id": "/subscriptions/" + r.PathValue("sub") + "/resourceGroups/" + r.PathValue("rg") +
		"/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + r.PathValue("name") + "/databases/" + db,
		"name": db, "type": "Microsoft.DBforPostgreSQL/flexibleServers/databases",
		"properties": map[string]any{"charset": "UTF8", "collation": "en_US.utf8"}}
}

func (x *fakeFlex) putDatabase(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	k := strings.ToLower(r.PathValue("name"))
	x.databases[k] = append(x.databases[k], r.PathValue("db"))
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) findDatabase(r *http.Request) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, d := range x.databases[strings.ToLower(r.PathValue("name"))] {
		if d == r.PathValue("db") {
			return true
		}
	}
	return false
}

func (x *fakeFlex) getDatabase(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	if !x.findDatabase(r) {
		replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "The database was not found."))
		return
	}
	replyJSON(w, http.StatusOK, x.databaseBody(r, r.PathValue("db")))
}

func (x *fakeFlex) deleteDatabase(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	k := strings.ToLower(r.PathValue("name"))
	var kept []string
	for _, d := range x.databases[k] {
		if d != r.PathValue("db") {
			kept = append(kept, d)
		}
	}
	x.databases[k] = kept
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) listDatabases(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	dbs := append([]string(nil), x.databases[strings.ToLower(r.PathValue("name"))]...)
	x.mu.Unlock()
	out := []any{}
	for _, d := range dbs {
		out = append(out, x.databaseBody(r, d))
	}
	replyJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (x *fakeFlex) putRule(w http.ResponseWriter, r *http.Request) {
	body := x.record(r)
	x.mu.Lock()
	k := strings.ToLower(r.PathValue("name"))
	if x.rules[k] == nil {
		x.rules[k] = map[string]map[string]any{}
	}
	x.rules[k][r.PathValue("rule")] = map[string]any{"id": "/subscriptions/" + r.PathValue("sub") + "/resourceGroups/" + r.PathValue("rg") +
		"/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + r.PathValue("name") + "/firewallRules/" + r.PathValue("rule"),
		"name": r.PathValue("rule"), "type": "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules", "properties": body["properties"]}
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) getRule(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	rule, ok := x.rules[strings.ToLower(r.PathValue("name"))][r.PathValue("rule")]
	x.mu.Unlock()
	if !ok {
		replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "The firewall rule was not found."))
		return
	}
	replyJSON(w, http.StatusOK, rule)
}

func (x *fakeFlex) deleteRule(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	delete(x.rules[strings.ToLower(r.PathValue("name"))], r.PathValue("rule"))
	x.mu.Unlock()
	x.accepted(w, r)
}

func (x *fakeFlex) listRules(w http.ResponseWriter, r *http.Request) {
	x.record(r)
	x.mu.Lock()
	out := []any{}
	for _, rule := range x.rules[strings.ToLower(r.PathValue("name"))] {
		out = append(out, rule)
	}
	x.mu.Unlock()
	replyJSON(w, http.StatusOK, map[string]any{"value": out})
}
