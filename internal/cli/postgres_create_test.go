package cli

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// canonical re-encodes JSON so that two documents compare by content.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

func decodeObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	return m
}

func groupWrites(f *fakeDaemon) []string {
	var out []string
	for _, r := range f.seen() {
		if strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/resourcegroups/") {
			out = append(out, r)
		}
	}
	return out
}

func TestPostgresCreateDefaults(t *testing.T) {
	f, x := newFakeFlex(t)
	f.addGroup("rg1", "eastus")
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "postgres", "flexible-server", "create", "-g", "rg1", "-n", "SRV1", "-u", "pgadmin", "--tags", "env=dev")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	put := x.lastWrite(t)
	if put.Method != "PUT" || !strings.HasSuffix(put.Path, "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1") {
		t.Fatalf("sent %s %s", put.Method, put.Path)
	}
	props := put.Body["properties"].(map[string]any)
	password, _ := props["administratorLoginPassword"].(string)
	if !meetsPasswordPolicy("pgadmin", password) || len(password) != 22 {
		t.Errorf("generated password %q", password)
	}
	props["administratorLoginPassword"] = "GENERATED"
	want := `{"location":"eastus","properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"GENERATED",` +
		`"authConfig":{"activeDirectoryAuth":"Disabled","passwordAuth":"Enabled"},"backup":{"backupRetentionDays":7,"geoRedundantBackup":"Disabled"},` +
		`"createMode":"Create","highAvailability":{"mode":"Disabled"},"network":{"publicNetworkAccess":"Enabled"},` +
		`"storage":{"autoGrow":"Disabled","storageSizeGB":128},"version":"16"},"sku":{"name":"Standard_D2s_v3","tier":"GeneralPurpose"},"tags":{"env":"dev"}}`
	if got := canonical(t, put.Body); got != want {
		t.Errorf("PUT body\n got  %s\n want %s", got, want)
	}
	// az's create output: the password (printed once), the connection details, the firewall
	// rule made for this machine's address as the endpoint (on 127.0.0.1) sees it, named as az
	// names it.
	res := decodeObject(t, out)
	rule, _ := res["firewallName"].(string)
	rules := x.ruleWrites()
	if !regexp.MustCompile(`^FirewallIPAddress_\d{4}-\d{1,2}-\d{1,2}_\d{1,2}-\d{1,2}-\d{1,2}$`).MatchString(rule) || len(rules) != 1 ||
		!strings.HasSuffix(rules[0].Path, "/flexibleServers/srv1/firewallRules/"+rule) ||
		canonical(t, rules[0].Body) != `{"properties":{"endIpAddress":"127.0.0.1","startIpAddress":"127.0.0.1"}}` {
		t.Errorf("firewall rule %q, writes %+v", rule, rules)
	}
	delete(res, "firewallName")
	// As az prints it: the host name, and no port in the URI (5432).
	wantOut := map[string]any{"host": "srv1.postgres.localhost", "port": float64(5432), "username": "pgadmin", "password": password,
		"skuname": "Standard_D2s_v3", "location": "eastus", "version": "16", "databaseName": "postgres",
		"id":               "/subscriptions/" + f.sub + "/resourceGroups/rg1/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1",
		"connectionString": "postgresql://pgadmin:" + password + "@srv1.postgres.localhost/postgres?sslmode=require"}
	if canonical(t, res) != canonical(t, wantOut) {
		t.Errorf("output\n got  %s\n want %s", canonical(t, res), canonical(t, wantOut))
	}
	for _, w := range []string{
		"WARNING: Checking the existence of the resource group 'rg1'...\n",
		"WARNING: Resource group 'rg1' exists ? : True \n",
		"WARNING: Creating PostgreSQL Server 'srv1' in group 'rg1'...\n",
		"WARNING: Detected current client IP : 127.0.0.1\n",
		"WARNING: Configuring server firewall rule to accept connections from '127.0.0.1'...\n",
		`WARNING: Make a note of your password. If you forget, you would have to reset your password with "pgflex postgres flexible-server update -n srv1 -g rg1 -p <new-password>".` + "\n",
		"WARNING: Try using 'pgflex postgres flexible-server connect' command to test out connection.\n",
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(errOut, password) {
		t.Error("the password appeared on stderr")
	}
	if g := groupWrites(f); len(g) != 0 {
		t.Errorf("an existing group was written: %v", g)
	}
}

func TestPostgresCreateGeneratesGroupNameAndDatabase(t *testing.T) {
	f, x := newFakeFlex(t)
	o := withProfile(t, f)
	out, errOut, code := runCLI(t, o, "postgres", "flexible-server", "create", "-p", "Passw0rd!x", "-d", "appdb", "--tier", "burstable")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	res := decodeObject(t, out)
	name, _ := res["id"].(string)
	if !strings.Contains(name, "/flexibleServers/server") || res["location"] != "canadacentral" || res["databaseName"] != "appdb" ||
		res["password"] != "Passw0rd!x" || !strings.HasSuffix(res["connectionString"].(string), ".postgres.localhost/appdb?sslmode=require") {
		t.Errorf("output %s", out)
	}
	g := groupWrites(f)
	if len(g) != 1 || !strings.Contains(g[0], "/resourcegroups/group") || !strings.Contains(errOut, "Creating Resource Group 'group") {
		t.Errorf("group not created: %v\n%s", g, errOut)
	}
	var sku, dbBody string
	for _, c := range x.writes() {
		if strings.HasSuffix(c.Path, "/databases/appdb") {
			dbBody = canonical(t, c.Body)
		} else if c.Method == "PUT" && !strings.Contains(c.Path, "/firewallRules/") {
			sku = canonical(t, c.Body["sku"])
		}
	}
	if sku != `{"name":"Standard_B1ms","tier":"Burstable"}` {
		t.Errorf("tier's default sku not used: %s", sku)
	}
	if dbBody != `{"properties":{"charset":"utf8","collation":"en_US.utf8"}}` || !strings.Contains(errOut, "Creating PostgreSQL database 'appdb'...") {
		t.Errorf("database body %s\n%s", dbBody, errOut)
	}
}

func TestPostgresCreateCustomerManagedKey(t *testing.T) {
	f, x := newFakeFlex(t)
	f.addGroup("rg", "eastus")
	o := withProfile(t, f)
	_, errOut, code := runCLI(t, o, "postgres", "flexible-server", "create", "-g", "rg", "-n", "cmk1", "-p", "Passw0rd!x",
		"--geo-redundant-backup", "enabled", "--identity", "id-a", "--key", keyA, "--backup-identity", idB, "--backup-key", keyB)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	put := x.lastWrite(t)
	// identity resolved in the server's group; §2.5's shapes.
	wantIdentity := `{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{},"` + idB + `":{}}}`
	wantDE := `{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
		`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`
	props := put.Body["properties"].(map[string]any)
	if canonical(t, put.Body["identity"]) != wantIdentity || canonical(t, props["dataEncryption"]) != wantDE ||
		canonical(t, props["backup"]) != `{"backupRetentionDays":7,"geoRedundantBackup":"Enabled"}` {
		t.Errorf("identity %s\ndataEncryption %s\nbackup %s", canonical(t, put.Body["identity"]), canonical(t, props["dataEncryption"]), canonical(t, props["backup"]))
	}
}

// Every refusal happens before anything is written: no server, no group.
func TestPostgresCreateRefusals(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "taken", nil)
	o := withProfile(t, f)
	base := []string{"postgres", "flexible-server", "create", "-g", "newrg", "-p", "Passw0rd!x"}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-n", "srv-one", "--identity", "id-a"}, 1, msgIdentityKeyTogether},
		{[]string{"-n", "srv-one", "--key", keyA}, 1, msgIdentityKeyTogether},
		{[]string{"-n", "srv-one", "--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-key", keyB}, 1, msgBackupKeyTogether},
		{[]string{"-n", "srv-one", "--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-identity", "id-a", "--backup-key", keyB}, 1, msgSameIdentity},
		{[]string{"-n", "srv-one", "--identity", "id-a", "--key", keyA, "--backup-identity", "id-b", "--backup-key", keyB}, 1, msgGeoNotEnabled},
		{[]string{"-n", "srv-one", "--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA}, 1, msgGeoNeedsBothKeys},
		{[]string{"-n", "srv-one", "--geo-redundant-backup", "Enabled", "-l", "israelcentral"}, 1, msgGeoRegionUnsupported},
		{[]string{"-n", "srv-one", "--identity", "rg/id-a", "--key", keyA}, 1, msgInvalidIdentity},
		{[]string{"-n", "ab"}, 1, "Server name must be at least 3 characters and at most 63 characters."},
		{[]string{"-n", "taken"}, 1, "Specified server name is already used."},
		{[]string{"-n", "srv-one", "--backup-retention", "40"}, 1, "incorrect usage: --backup-retention. Range is 7 to 35 days."},
		{[]string{"-n", "srv-one", "--tier", "Premium"}, 1, "Incorrect value for --tier. Allowed values : ['burstable', 'generalpurpose', 'memoryoptimized']"},
		{[]string{"-n", "srv-one", "--version", "13"}, 1, "Incorrect value for --version. Allowed values : ['14', '15', '16']"},
		{[]string{"-n", "srv-one", "--storage-size", "100"}, 1, "Incorrect value for --storage-size : Allowed values (in GiB) : [32, 64, 128, 256, 512]"},
		{[]string{"-n", "srv-one", "--sku-name", "Standard_B1ms"}, 1, "Incorrect value for --sku-name. The SKU name does not exist in GeneralPurpose tier."},
		{[]string{"-n", "srv-one", "--public-access", "10.0.0.9-10.0.0.1"}, 1, "The end IP address is smaller than the start IP address."},
		{[]string{"-n", "srv-one", "--geo-redundant-backup", "maybe"}, 2, "argument --geo-redundant-backup: invalid choice: 'maybe' (choose from 'Enabled', 'Disabled')"},
		{[]string{"-n", "srv-one", "--storage-size", "big"}, 2, "argument --storage-size: invalid int value: 'big'"},
	}
	for _, c := range cases {
		out, errOut, code := runCLI(t, o, append(append([]string{}, base...), c.args...)...)
		if code != c.code || !strings.Contains(errOut, "ERROR: "+c.msg) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.msg)
		}
	}
	if w := x.writes(); len(w) != 0 {
		t.Errorf("refused creates wrote: %+v", w)
	}
	if g := groupWrites(f); len(g) != 0 {
		t.Errorf("refused creates created groups: %v", g)
	}
}

// A server the service refuses leaves no group behind that the create made for it.
func TestPostgresCreateRefusedByServiceRemovesItsGroup(t *testing.T) {
	f, _ := newFakeFlex(t)
	f.addGroup("kept", "eastus")
	o := withProfile(t, f)
	for _, group := range []string{"fresh", "kept"} {
		_, errOut, code := runCLI(t, o, "postgres", "flexible-server", "create", "-g", group, "-n", "srv-weak", "-p", "weak")
		if code != 1 || !strings.Contains(errOut, "(PasswordNotComplex)") {
			t.Errorf("%s: exit %d %s", group, code, errOut)
		}
	}
	if f.group("fresh") != nil {
		t.Error("the group created for the refused server is still there")
	}
	if f.group("kept") == nil {
		t.Error("an existing group was deleted")
	}
}

func TestPostgresUpdate(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "smk1", nil)
	x.addServer("rg", "cmk1", func(s map[string]any) {
		p := s["properties"].(map[string]any)
		p["backup"].(map[string]any)["geoRedundantBackup"] = "Enabled"
		p["dataEncryption"] = map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyA, "primaryUserAssignedIdentityId": idA,
			"geoBackupKeyURI": "https://old.vault.localhost/keys/g", "geoBackupUserAssignedIdentityId": "/old/identity"}
	})
	o := withProfile(t, f)
	upd := func(args ...string) (string, string, int) {
		return runCLI(t, o, append([]string{"postgres", "flexible-server", "update", "-g", "rg"}, args...)...)
	}

	out, errOut, code := upd("-n", "smk1", "--tags", "env=prod", "--backup-retention", "10", "-p", "N3w-Password!")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	patch := x.lastWrite(t)
	want := `{"properties":{"administratorLoginPassword":"N3w-Password!","authConfig":{"activeDirectoryAuth":"Disabled","passwordAuth":"Enabled"},` +
		`"backup":{"backupRetentionDays":10,"geoRedundantBackup":"Disabled"},"maintenanceWindow":{"customWindow":"Disabled","dayOfWeek":0,"startHour":0,"startMinute":0},` +
		`"network":{"publicNetworkAccess":"Enabled"},"storage":{"autoGrow":"Disabled","storageSizeGB":128}},` +
		`"sku":{"name":"Standard_D2s_v3","tier":"GeneralPurpose"},"tags":{"env":"prod"}}`
	if patch.Method != "PATCH" || canonical(t, patch.Body) != want {
		t.Errorf("PATCH body\n got  %s\n want %s", canonical(t, patch.Body), want)
	}
	res := decodeObject(t, out)
	if res["tags"].(map[string]any)["env"] != "prod" || res["backup"].(map[string]any)["backupRetentionDays"] != float64(10) ||
		strings.Contains(out, "N3w-Password!") {
		t.Errorf("update output %s", out)
	}

	// Refusals: nothing is sent.
	before := len(x.writes())
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-n", "smk1", "--identity", "id-a", "--key", keyA}, msgNotCreatedWithCMK},
		{[]string{"-n", "smk1", "--backup-identity", "id-b", "--backup-key", keyB}, msgNotCreatedWithCMK},
		{[]string{"-n", "smk1", "--key", keyA}, msgIdentityKeyTogether},
		{[]string{"-n", "cmk1", "--backup-identity", "id-b"}, msgBackupKeyTogether},
		{[]string{"-n", "cmk1", "--backup-identity", idA, "--backup-key", keyB}, msgSameIdentity},
		{[]string{"-n", "smk1", "--backup-retention", "5"}, "incorrect usage: --backup-retention. Range is 7 to 35 days."},
		{[]string{"-n", "smk1", "--storage-size", "64"}, "Decrease of current storage size isn't supported. Current storage size is 128 GiB"},
	} {
		if out, errOut, code := upd(c.args...); code != 1 || !strings.Contains(errOut, "ERROR: "+c.msg) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", c.args, code, out, errOut, c.msg)
		}
	}
	if len(x.writes()) != before {
		t.Errorf("refused updates wrote: %+v", x.writes()[before:])
	}

	// Backup flags only: the primary pair is copied from the server.
	if _, errOut, code := upd("-n", "cmk1", "--backup-identity", "id-b", "--backup-key", keyB); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	patch = x.lastWrite(t)
	wantDE := `{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
		`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`
	if got := canonical(t, patch.Body["properties"].(map[string]any)["dataEncryption"]); got != wantDE {
		t.Errorf("dataEncryption\n got  %s\n want %s", got, wantDE)
	}
	if got := canonical(t, patch.Body["identity"]); got != `{"type":"UserAssigned","userAssignedIdentities":{"`+idA+`":{},"`+idB+`":{}}}` {
		t.Errorf("identity %s", got)
	}
}

func TestPostgresShowListDelete(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	x.addServer("other", "srv2", nil)
	o := withProfile(t, f)
	out, _, code := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg", "-n", "srv1")
	res := decodeObject(t, out)
	if code != 0 || res["properties"] != nil || res["administratorLogin"] != "pgadmin" || res["resourceGroup"] != "rg" ||
		res["storage"].(map[string]any)["storageSizeGb"] != float64(128) || res["dataEncryption"].(map[string]any)["type"] != "SystemManaged" {
		t.Errorf("show: exit %d\n%s", code, out)
	}
	if _, ok := res["dataEncryption"].(map[string]any)["primaryKeyUri"]; !ok {
		t.Errorf("dataEncryption keys are not az's: %v", res["dataEncryption"])
	}
	if out, _, _ := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg", "-n", "srv1", "--query", "fullyQualifiedDomainName", "-o", "tsv"); out != "srv1.postgres.localhost\n" {
		t.Errorf("--query fullyQualifiedDomainName = %q", out)
	}
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg", "-n", "nope"); code != 3 || !strings.Contains(errOut, "(ResourceNotFound)") {
		t.Errorf("missing server: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg"); code != 2 ||
		!strings.Contains(errOut, "the following arguments are required: --name/-n") {
		t.Errorf("missing -n: exit %d %s", code, errOut)
	}

	out, _, _ = runCLI(t, o, "postgres", "flexible-server", "list", "-g", "rg", "-o", "table")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Name    Resource Group    Location    Version    Storage Size(GiB)    Tier            SKU              State") ||
		!strings.Contains(lines[2], "srv1") || !strings.Contains(lines[2], "128") || !strings.Contains(lines[2], "Ready") {
		t.Errorf("list -o table:\n%s", out)
	}
	if out, _, _ := runCLI(t, o, "postgres", "flexible-server", "list", "--query", "length(@)"); strings.TrimSpace(out) != "2" {
		t.Errorf("list over the subscription: %s", out)
	}

	// delete asks first; without a terminal it refuses and sends nothing.
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "delete", "-g", "rg", "-n", "srv1"); code != 1 ||
		!strings.Contains(errOut, "Unable to prompt for confirmation as no tty available. Use --yes.") {
		t.Errorf("delete without --yes: exit %d %s", code, errOut)
	}
	if len(x.writes()) != 0 {
		t.Fatalf("delete without confirmation wrote %+v", x.writes())
	}
	term := o
	term.terminal, term.stdin = true, "n\n"
	if _, _, code := runCLI(t, term, "postgres", "flexible-server", "delete", "-g", "rg", "-n", "srv1"); code != 1 || len(x.writes()) != 0 {
		t.Errorf("answered n: exit %d, writes %+v", code, x.writes())
	}
	term.stdin = "y\n"
	out, _, code = runCLI(t, term, "postgres", "flexible-server", "delete", "-g", "rg", "-n", "srv1")
	if code != 0 || !strings.HasSuffix(out, "Are you sure you want to delete the server 'srv1' in resource group 'rg' (y/n): ") ||
		x.lastWrite(t).Method != "DELETE" {
		t.Errorf("delete: exit %d %q", code, out)
	}
	if out, errOut, code := runCLI(t, o, "postgres", "flexible-server", "delete", "-g", "other", "-n", "srv2", "--yes"); code != 0 || out != "" {
		t.Errorf("delete --yes: exit %d %q %s", code, out, errOut)
	}
}

func TestPostgresPowerCommands(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)
	for _, action := range []string{"stop", "start", "restart"} {
		out, errOut, code := runCLI(t, o, "postgres", "flexible-server", action, "-g", "rg", "-n", "srv1")
		c := x.lastWrite(t)
		if code != 0 || out != "" || c.Method != "POST" || !strings.HasSuffix(c.Path, "/flexibleServers/srv1/"+action) {
			t.Errorf("%s: exit %d, stdout %q, stderr %s, sent %s %s", action, code, out, errOut, c.Method, c.Path)
		}
		if action == "restart" && canonical(t, c.Body) != `{"restartWithFailover":false}` {
			t.Errorf("restart body %s", canonical(t, c.Body))
		}
	}
	if _, _, code := runCLI(t, o, "postgres", "flexible-server", "stop", "-g", "rg", "-n", "srv1", "--no-wait"); code != 0 {
		t.Errorf("stop --no-wait: exit %d", code)
	}
}

func TestPostgresDatabaseCommands(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)
	db := func(args ...string) (string, string, int) {
		return runCLI(t, o, append([]string{"postgres", "flexible-server", "db"}, args...)...)
	}
	out, errOut, code := db("create", "-g", "rg", "-s", "srv1", "-d", "app")
	res := decodeObject(t, out)
	if code != 0 || res["name"] != "app" || res["charset"] != "UTF8" || res["resourceGroup"] != "rg" || res["tags"] != nil ||
		!strings.Contains(errOut, "WARNING: Creating database with utf8 charset and en_US.utf8 collation") {
		t.Errorf("db create: exit %d\n%s\n%s", code, out, errOut)
	}
	if c := x.lastWrite(t); canonical(t, c.Body) != `{"properties":{"charset":"utf8","collation":"en_US.utf8"}}` || !strings.HasSuffix(c.Path, "/databases/app") {
		t.Errorf("db create sent %s %s", c.Path, canonical(t, c.Body))
	}
	if out, _, _ := db("list", "-g", "rg", "-s", "srv1", "--query", "[].name", "-o", "tsv"); out != "app\n" {
		t.Errorf("db list = %q", out)
	}
	if out, _, _ := db("show", "-g", "rg", "-s", "srv1", "-d", "app", "--query", "collation", "-o", "tsv"); out != "en_US.utf8\n" {
		t.Errorf("db show = %q", out)
	}
	if _, errOut, code := db("create", "-g", "rg", "-s", "srv1", "-d", "x", "--charset", "utf8"); code != 1 ||
		!strings.Contains(errOut, "ERROR: charset and collation have to be input together.") {
		t.Errorf("charset alone: exit %d %s", code, errOut)
	}
	if _, errOut, code := db("show", "-g", "rg", "-s", "srv1"); code != 2 || !strings.Contains(errOut, "--database-name/-d") {
		t.Errorf("show without -d: exit %d %s", code, errOut)
	}
	if _, _, code := db("delete", "-g", "rg", "-s", "srv1", "-d", "app", "--yes"); code != 0 || x.lastWrite(t).Method != "DELETE" {
		t.Errorf("db delete: exit %d", code)
	}
	if out, _, _ := db("list", "-g", "rg", "-s", "srv1"); strings.TrimSpace(out) != "[]" {
		t.Errorf("db list after delete = %q", out)
	}
}

func TestPostgresIdentityCommands(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	x.addServer("rg", "bare", func(s map[string]any) { delete(s, "identity") })
	x.addServer("rg", "cmk1", func(s map[string]any) {
		s["properties"].(map[string]any)["dataEncryption"] = map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyA, "primaryUserAssignedIdentityId": idA}
		s["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			strings.ToLower(idA): map[string]any{"principalId": "pa", "clientId": "ca"}}}
	})
	o := withProfile(t, f)
	id := func(args ...string) (string, string, int) {
		return runCLI(t, o, append([]string{"postgres", "flexible-server", "identity"}, args...)...)
	}
	out, errOut, code := id("assign", "-g", "rg", "-s", "srv1", "-n", "id-a", idB)
	if code != 0 {
		t.Fatalf("assign: exit %d %s", code, errOut)
	}
	if c := x.lastWrite(t); canonical(t, c.Body) != `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"`+idA+`":{},"`+idB+`":{}}}}` {
		t.Errorf("assign sent %s", canonical(t, c.Body))
	}
	res := decodeObject(t, out)
	if res["type"] != "UserAssigned" || len(res["userAssignedIdentities"].(map[string]any)) != 2 {
		t.Errorf("assign output %s", out)
	}
	if out, _, _ := id("show", "-g", "rg", "-s", "srv1", "-n", "id-a"); canonical(t, decodeObject(t, out)) != `{"clientId":"c-id-a","principalId":"p-id-a"}` {
		t.Errorf("show = %s", out)
	}
	missing := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope"
	if _, errOut, code := id("show", "-g", "rg", "-s", "srv1", "-n", "nope"); code != 1 ||
		!strings.Contains(errOut, "ERROR: Identity '"+missing+"' does not exist in server srv1.") {
		t.Errorf("show missing: exit %d %s", code, errOut)
	}
	if out, _, _ := id("list", "-g", "rg", "-s", "bare"); canonical(t, decodeObject(t, out)) != `{"principalId":null,"tenantId":null,"type":"SystemAssigned","userAssignedIdentities":null}` {
		t.Errorf("list quirk = %s", out)
	}
	// remove: refused for the identity in use, before anything is sent.
	n := len(x.writes())
	if _, errOut, code := id("remove", "-g", "rg", "-s", "cmk1", "-n", "id-a", "--yes"); code != 1 ||
		!strings.Contains(errOut, "ERROR: Cannot remove identity "+idA+" because it's used for data encryption.") || len(x.writes()) != n {
		t.Errorf("remove in use: exit %d %s", code, errOut)
	}
	if _, errOut, code := id("remove", "-g", "rg", "-s", "srv1", "-n", "id-a"); code != 1 || !strings.Contains(errOut, "Use --yes") || len(x.writes()) != n {
		t.Errorf("remove without --yes: exit %d %s", code, errOut)
	}
	out, errOut, code = id("remove", "-g", "rg", "-s", "srv1", "-n", "id-a", "--yes")
	if c := x.lastWrite(t); code != 0 || canonical(t, c.Body) != `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"`+idA+`":null}}}` {
		t.Errorf("remove: exit %d %s sent %s", code, errOut, canonical(t, c.Body))
	}
	if res := decodeObject(t, out); len(res["userAssignedIdentities"].(map[string]any)) != 1 {
		t.Errorf("remove output %s", out)
	}
	if _, errOut, code := id("assign", "-g", "rg", "-s", "srv1"); code != 2 || !strings.Contains(errOut, "--identity/-n") {
		t.Errorf("assign without identities: exit %d %s", code, errOut)
	}
}

func TestPostgresShowConnectionString(t *testing.T) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "srv1", nil)
	h := "srv1.postgres.localhost"
	for _, tc := range []struct {
		name          string
		profilePort   int    // the daemon's PostgreSQL endpoint port, as the profile names it
		port, uriHost string // what the strings carry
	}{
		// Azure's shape: port 5432, left out of the URI as az leaves it out.
		{"endpoint on 5432", 0, "5432", h},
		{"endpoint on another port", 15433, "15433", h + ":15433"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.postgresPort = tc.profilePort
			o := withProfile(t, f)
			out, errOut, code := runCLI(t, o, "postgres", "flexible-server", "show-connection-string", "-s", "srv1", "-u", "pgadmin", "-p", "p@ss:w/rd", "-d", "app")
			if code != 0 {
				t.Fatalf("exit %d %s", code, errOut)
			}
			p := tc.port
			want := map[string]any{"connectionStrings": map[string]any{
				"psql_cmd":    "postgresql://pgadmin:p%40ss%3Aw%2Frd@" + tc.uriHost + "/app?sslmode=require",
				"ado.net":     "Server=" + h + ";Database=app;Port=" + p + ";User Id=pgadmin;Password=p@ss:w/rd;Ssl Mode=Require;",
				"jdbc":        "jdbc:postgresql://" + h + ":" + p + "/app?user=pgadmin&password=p@ss:w/rd&sslmode=require",
				"node.js":     `var conn= new Client({host:'` + h + `', user:'pgadmin', password:'p@ss:w/rd', database:'app', port:` + p + `, ssl:{ca:fs.readFileSync("{ca-cert filename}")}});`,
				"php":         `pg_connect("host=` + h + ` port=` + p + ` dbname=app user=pgadmin password=p@ss:w/rd sslmode=require");`,
				"python":      "cnx = psycopg2.connect(user='pgadmin', password='p@ss:w/rd', host='" + h + "', port=" + p + ", database='app', sslmode='require')",
				"ruby":        `connection = PG::Connection.new(user => "pgadmin", password => "p@ss:w/rd", database => "app", host => "` + h + `", port => '` + p + `', sslmode => 'require')`,
				"C++ (libpq)": "host=" + h + " port=" + p + " dbname=app user=pgadmin password=p@ss:w/rd sslmode=require",
			}}
			if got := decodeObject(t, out); canonical(t, got) != canonical(t, want) {
				t.Errorf("got  %s\nwant %s", canonical(t, got), canonical(t, want))
			}
			// The URI form parses back to what was given.
			u, err := url.Parse(want["connectionStrings"].(map[string]any)["psql_cmd"].(string))
			if pw, _ := u.User.Password(); err != nil || pw != "p@ss:w/rd" || u.Hostname() != h {
				t.Errorf("psql_cmd does not parse back: %v %v", u, err)
			}
		})
	}
	f.postgresPort = 0
	o := withProfile(t, f)
	// Without a server: az's placeholders, and no call at all.
	out, _, code := runCLI(t, o, "postgres", "flexible-server", "show-connection-string", "--query", "connectionStrings.jdbc", "-o", "tsv")
	if code != 0 || out != "jdbc:postgresql://{host}:{port}/{database}?user={login}&password={password}&sslmode=require\n" {
		t.Errorf("placeholders: %q", out)
	}
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "show-connection-string", "-s", "nope"); code != 3 || !strings.Contains(errOut, "ResourceNotFound") {
		t.Errorf("unknown server: exit %d %s", code, errOut)
	}
}
