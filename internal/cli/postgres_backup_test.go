package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeBackups adds the server's backups child to a fakeFlex: automatic backups as the service
// lists them, on-demand ones created by PUT (long-running), paged lists.
type fakeBackups struct {
	x *fakeFlex
	// backups by lower-case server name, then backup name
	byServer map[string]map[string]map[string]any
	// raw request bodies of the PUTs, by path
	putBodies map[string]string
}

func newFakeBackups(x *fakeFlex) *fakeBackups {
	b := &fakeBackups{x: x, byServer: map[string]map[string]map[string]any{}, putBodies: map[string]string{}}
	srv := fakeFlexPrefix + "/{name}/backups"
	m := x.f.mux
	m.HandleFunc("GET "+srv, b.list)
	m.HandleFunc("GET "+srv+"/{backup}", b.get)
	m.HandleFunc("PUT "+srv+"/{backup}", b.put)
	m.HandleFunc("DELETE "+srv+"/{backup}", b.delete)
	return b
}

func (b *fakeBackups) body(r *http.Request, name, typ, source, completed string) map[string]any {
	return map[string]any{
		"id": "/subscriptions/" + r.PathValue("sub") + "/resourceGroups/" + r.PathValue("rg") +
			"/providers/Microsoft.DBforPostgreSQL/flexibleServers/" + r.PathValue("name") + "/backups/" + name,
		"name": name, "type": "Microsoft.DBforPostgreSQL/flexibleServers/backups",
		"systemData": map[string]any{"createdAt": completed},
		"properties": map[string]any{"backupType": typ, "completedTime": completed, "source": source},
	}
}

// add stores an automatic backup of server.
func (b *fakeBackups) add(r *http.Request, server string, backup map[string]any) {
	b.x.mu.Lock()
	defer b.x.mu.Unlock()
	k := strings.ToLower(server)
	if b.byServer[k] == nil {
		b.byServer[k] = map[string]map[string]any{}
	}
	b.byServer[k][backup["name"].(string)] = backup
}

func (b *fakeBackups) serverMissing(w http.ResponseWriter, r *http.Request) bool {
	if b.x.server(r.PathValue("name")) == nil {
		b.x.notFound(w, r)
		return true
	}
	return false
}

func (b *fakeBackups) list(w http.ResponseWriter, r *http.Request) {
	b.x.record(r)
	if b.serverMissing(w, r) {
		return
	}
	b.x.mu.Lock()
	var names []string
	for n := range b.byServer[strings.ToLower(r.PathValue("name"))] {
		names = append(names, n)
	}
	sort.Strings(names)
	var items []any
	for _, n := range names {
		items = append(items, b.byServer[strings.ToLower(r.PathValue("name"))][n])
	}
	b.x.mu.Unlock()
	// Two per page, so that the list follows nextLink.
	skip := 0
	fmt.Sscan(r.URL.Query().Get("skip"), &skip)
	page := map[string]any{"value": []any{}}
	if skip < len(items) {
		end := min(skip+2, len(items))
		page["value"] = items[skip:end]
		if end < len(items) {
			page["nextLink"] = fmt.Sprintf("%s%s?api-version=%s&skip=%d", b.x.f.srv.URL, r.URL.Path, r.URL.Query().Get("api-version"), end)
		}
	}
	replyJSON(w, http.StatusOK, page)
}

func (b *fakeBackups) find(r *http.Request) map[string]any {
	b.x.mu.Lock()
	defer b.x.mu.Unlock()
	return b.byServer[strings.ToLower(r.PathValue("name"))][r.PathValue("backup")]
}

func (b *fakeBackups) get(w http.ResponseWriter, r *http.Request) {
	b.x.record(r)
	if b.serverMissing(w, r) {
		return
	}
	if bk := b.find(r); bk != nil {
		replyJSON(w, http.StatusOK, bk)
		return
	}
	replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "The requested resource of type 'Microsoft.DBforPostgreSQL/flexibleServers/backups' with name '"+r.PathValue("backup")+"' was not found."))
}

func (b *fakeBackups) put(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	b.x.mu.Lock()
	b.putBodies[r.URL.Path] = string(raw)
	b.x.calls = append(b.x.calls, fakeCall{Method: r.Method, Path: r.URL.Path})
	b.x.mu.Unlock()
	if b.serverMissing(w, r) {
		return
	}
	b.add(r, r.PathValue("name"), b.body(r, r.PathValue("backup"), "Customer On-Demand", "Customer", "2026-03-02T10:00:00+00:00"))
	b.x.accepted(w, r)
}

func (b *fakeBackups) delete(w http.ResponseWriter, r *http.Request) {
	b.x.record(r)
	if b.serverMissing(w, r) {
		return
	}
	b.x.mu.Lock()
	delete(b.byServer[strings.ToLower(r.PathValue("name"))], r.PathValue("backup"))
	b.x.mu.Unlock()
	b.x.accepted(w, r)
}

// snapshot is a copy of the recorded requests.
func (x *fakeFlex) snapshot() []fakeCall {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]fakeCall(nil), x.calls...)
}

// seedBackups gives server three automatic backups.
func seedBackups(b *fakeBackups, group, server string) {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetPathValue("sub", b.x.f.sub)
	r.SetPathValue("rg", group)
	r.SetPathValue("name", server)
	for i, day := range []string{"2026-02-27", "2026-02-28", "2026-03-01"} {
		b.add(r, server, b.body(r, fmt.Sprintf("backup_2026022%d", 7+i), "Full", "Automatic", day+"T01:02:03.456789+00:00"))
	}
}

func TestPostgresBackupCommands(t *testing.T) {
	f, x := newFakeFlex(t)
	b := newFakeBackups(x)
	x.addServer("rg", "srv1", nil)
	seedBackups(b, "rg", "srv1")
	o := withProfile(t, f)
	bk := func(args ...string) (string, string, int) {
		return runCLI(t, o, append([]string{"postgres", "flexible-server", "backup"}, args...)...)
	}
	backupID := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/srv1/backups/"

	// list: paged, properties lifted, resourceGroup added, systemData dropped (transform_backup).
	out, errOut, code := bk("list", "-g", "rg", "-n", "srv1")
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, errOut)
	}
	var list []any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list printed no JSON list: %v\n%s", err, out)
	}
	if len(list) != 3 {
		t.Fatalf("list returned %d backups (paging not followed?): %s", len(list), out)
	}
	want := `{"backupType":"Full","completedTime":"2026-03-01T01:02:03.456789+00:00","id":"` + backupID + `backup_20260229",` +
		`"name":"backup_20260229","resourceGroup":"rg","source":"Automatic","type":"Microsoft.DBforPostgreSQL/flexibleServers/backups"}`
	if got := canonical(t, list[2]); got != want {
		t.Errorf("list item\n got  %s\n want %s", got, want)
	}
	// az's table for list is knack's automatic one.
	out, _, _ = bk("list", "-g", "rg", "-n", "srv1", "-o", "table")
	wantTable := "BackupType    CompletedTime                     Name             ResourceGroup    Source\n" +
		"------------  --------------------------------  ---------------  ---------------  ---------\n" +
		"Full          2026-02-27T01:02:03.456789+00:00  backup_20260227  rg               Automatic\n" +
		"Full          2026-02-28T01:02:03.456789+00:00  backup_20260228  rg               Automatic\n" +
		"Full          2026-03-01T01:02:03.456789+00:00  backup_20260229  rg               Automatic\n"
	if out != wantTable {
		t.Errorf("list -o table\n got\n%s\n want\n%s", out, wantTable)
	}

	// create: PUT with no body, followed to the end, the backup printed (systemData kept).
	out, errOut, code = bk("create", "-g", "rg", "-n", "srv1", "--backup-name", "before-upgrade")
	if code != 0 {
		t.Fatalf("create: exit %d %s", code, errOut)
	}
	put := x.lastWrite(t)
	if put.Method != "PUT" || put.Path != backupID+"before-upgrade" {
		t.Fatalf("create sent %s %s", put.Method, put.Path)
	}
	x.mu.Lock()
	body := b.putBodies[put.Path]
	x.mu.Unlock()
	if body != "" {
		t.Errorf("create sent a body: %q", body)
	}
	wantCreated := `{"backupType":"Customer On-Demand","completedTime":"2026-03-02T10:00:00+00:00","id":"` + backupID + `before-upgrade",` +
		`"name":"before-upgrade","resourceGroup":"rg","source":"Customer","systemData":{"createdAt":"2026-03-02T10:00:00+00:00"},` +
		`"type":"Microsoft.DBforPostgreSQL/flexibleServers/backups"}`
	if got := canonical(t, decodeObject(t, out)); got != wantCreated {
		t.Errorf("create output\n got  %s\n want %s", got, wantCreated)
	}

	// show: the one backup, without systemData.
	out, errOut, code = bk("show", "-g", "rg", "-n", "srv1", "-b", "before-upgrade")
	shown := decodeObject(t, out)
	if code != 0 || shown["backupType"] != "Customer On-Demand" || shown["source"] != "Customer" || shown["name"] != "before-upgrade" {
		t.Fatalf("show: exit %d %s %s", code, out, errOut)
	}
	if _, ok := shown["systemData"]; ok {
		t.Errorf("show kept systemData: %s", out)
	}
	if _, ok := shown["tags"]; ok {
		t.Errorf("a backup printed tags: %s", out)
	}

	// --no-wait: the PUT only, nothing printed.
	before := len(x.snapshot())
	out, errOut, code = bk("create", "-g", "rg", "-n", "srv1", "-b", "quick", "--no-wait")
	if code != 0 || out != "" {
		t.Fatalf("create --no-wait: exit %d %q %s", code, out, errOut)
	}
	for _, c := range x.snapshot()[before:] {
		if c.Method == "GET" {
			t.Errorf("create --no-wait polled: %s %s", c.Method, c.Path)
		}
	}

	// delete: refused without --yes where nobody can answer, then done with it.
	writes := len(x.writes())
	out, errOut, code = bk("delete", "-g", "rg", "-n", "srv1", "-b", "before-upgrade")
	if code != 1 || !strings.Contains(errOut, "ERROR: Unable to prompt for confirmation as no tty available. Use --yes.") || len(x.writes()) != writes {
		t.Errorf("delete without --yes: exit %d %q %s", code, out, errOut)
	}
	// At a terminal the question is az's.
	to := o
	to.terminal, to.stdin = true, "n\n"
	out, _, code = runCLI(t, to, "postgres", "flexible-server", "backup", "delete", "-g", "rg", "-n", "srv1", "-b", "before-upgrade")
	if code != 1 || out != "Are you sure you want to delete the backup 'before-upgrade' in server 'srv1' (y/n): " || len(x.writes()) != writes {
		t.Errorf("declined delete: exit %d %q", code, out)
	}
	out, errOut, code = bk("delete", "-g", "rg", "-n", "srv1", "-b", "before-upgrade", "--yes")
	if code != 0 || out != "" {
		t.Fatalf("delete: exit %d %q %s", code, out, errOut)
	}
	if d := x.lastWrite(t); d.Method != "DELETE" || d.Path != backupID+"before-upgrade" {
		t.Errorf("delete sent %s %s", d.Method, d.Path)
	}
	_, errOut, code = bk("show", "-g", "rg", "-n", "srv1", "-b", "before-upgrade")
	if code != 3 || !strings.Contains(errOut, "ERROR: (ResourceNotFound) ") {
		t.Errorf("show after delete: exit %d %s", code, errOut)
	}
	// A missing server is the service's 404.
	_, errOut, code = bk("list", "-g", "rg", "-n", "nosuch")
	if code != 3 || !strings.Contains(errOut, "(ResourceNotFound) The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/nosuch' under resource group 'rg' was not found.") {
		t.Errorf("list of a missing server: exit %d %s", code, errOut)
	}
}

func TestPostgresBackupRefusals(t *testing.T) {
	f, x := newFakeFlex(t)
	newFakeBackups(x)
	x.addServer("rg", "srv1", nil)
	o := withProfile(t, f)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"create", "-g", "rg", "-n", "srv1"}, 2, "the following arguments are required: --backup-name/-b"},
		{[]string{"show", "-g", "rg", "-n", "srv1"}, 2, "the following arguments are required: --backup-name/-b"},
		{[]string{"delete", "-g", "rg", "-n", "srv1", "--yes"}, 2, "the following arguments are required: --backup-name/-b"},
		{[]string{"list", "-g", "rg"}, 2, "the following arguments are required: --name/-n"},
		{[]string{"create", "-g", "rg", "-n", "srv1", "-b", `'"'`}, 1, "Backup name cannot be empty or contain only whitespaces."},
		{[]string{"create", "-g", "rg", "-n", "srv1", "-b", "   "}, 1, "Backup name cannot be empty or contain only whitespaces."},
		{[]string{"create", "-g", "rg", "-n", "srv1", "-b", strings.Repeat("b", 129)}, 1, "Backup name cannot exceed 128 characters."},
	} {
		out, errOut, code := runCLI(t, o, append([]string{"postgres", "flexible-server", "backup"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, "ERROR: "+c.msg) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.msg)
		}
	}
	if w := x.writes(); len(w) != 0 {
		t.Errorf("refused backup commands wrote: %+v", w)
	}
	// 128 characters are accepted.
	if _, errOut, code := runCLI(t, o, "postgres", "flexible-server", "backup", "create", "-g", "rg", "-n", "srv1", "-b", strings.Repeat("b", 128)); code != 0 {
		t.Errorf("a 128-character name: exit %d %s", code, errOut)
	}
}

func TestValidateBackupName(t *testing.T) {
	for name, want := range map[string]string{
		"":                       "Backup name cannot be empty.",
		"''":                     "Backup name cannot be empty or contain only whitespaces.",
		" \t":                    "Backup name cannot be empty or contain only whitespaces.",
		strings.Repeat("x", 129): "Backup name cannot exceed 128 characters.",
		// quotes do not count towards the length
		strings.Repeat("x", 128) + `"`: "",
		"nightly-1":                    "",
	} {
		got := ""
		if err := validateBackupName(name); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("validateBackupName(%q) = %q, want %q", name, got, want)
		}
	}
}

// ---- restore and geo-restore ----

func restoreCLI(t *testing.T, o runOpts, cmd string, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, o, append([]string{"postgres", "flexible-server", cmd}, args...)...)
}

// restoreFake has a service-managed source "src1" in rg (location as az may see it, with
// capitals and a space) and a server "taken".
func restoreFake(t *testing.T) (*fakeDaemon, *fakeFlex, runOpts) {
	f, x := newFakeFlex(t)
	x.addServer("rg", "src1", func(s map[string]any) { s["location"] = "East US" })
	x.addServer("rg", "taken", nil)
	x.addServer("other", "cmksrc", func(s map[string]any) {
		s["properties"].(map[string]any)["dataEncryption"] = map[string]any{"type": "AzureKeyVault", "primaryKeyURI": keyA, "primaryUserAssignedIdentityId": idA}
		s["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{idA: map[string]any{}}}
	})
	return f, x, withProfile(t, f)
}

func TestPostgresRestoreRequest(t *testing.T) {
	f, x, o := restoreFake(t)
	srcID := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/src1"

	out, errOut, code := restoreCLI(t, o, "restore", "-g", "rg", "-n", "New1", "--source-server", "src1",
		"--restore-time", "2026-03-01T10:20:30+02:00")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	put := x.lastWrite(t)
	if put.Method != "PUT" || put.Path != "/subscriptions/"+f.sub+"/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/new1" {
		t.Fatalf("sent %s %s", put.Method, put.Path)
	}
	want := `{"location":"eastus","properties":{"backup":{"geoRedundantBackup":"Disabled"},"createMode":"PointInTimeRestore",` +
		`"pointInTimeUTC":"2026-03-01T08:20:30.000Z","sourceServerResourceId":"` + srcID + `"}}`
	if got := canonical(t, put.Body); got != want {
		t.Errorf("PUT body\n got  %s\n want %s", got, want)
	}
	if len(x.writes()) != 1 {
		t.Errorf("more than the PUT was written: %+v", x.writes())
	}
	// The name was checked where the new server goes.
	var checked bool
	for _, c := range x.snapshot() {
		if strings.HasSuffix(c.Path, "/locations/eastus/checkNameAvailability") && c.Body["name"] == "new1" {
			checked = true
		}
	}
	if !checked {
		t.Error("the new name was not checked at the source's location")
	}
	// The output is the new server as show prints it.
	shown, _, _ := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg", "-n", "new1")
	if canonical(t, decodeObject(t, out)) != canonical(t, decodeObject(t, shown)) {
		t.Errorf("restore printed\n%s\nshow prints\n%s", out, shown)
	}
	if decodeObject(t, out)["resourceGroup"] != "rg" {
		t.Errorf("not az's server view: %s", out)
	}

	// Default time: now, in whole seconds, as the SDK writes it.
	before := time.Now().UTC().Truncate(time.Second)
	if out, errOut, code := restoreCLI(t, o, "restore", "-g", "rg", "-n", "new2", "--source-server", srcID, "--no-wait"); code != 0 || out != "" {
		t.Fatalf("--no-wait: exit %d, stdout %q: %s", code, out, errOut)
	}
	after := time.Now().UTC()
	put = x.lastWrite(t)
	props := put.Body["properties"].(map[string]any)
	pit, _ := props["pointInTimeUTC"].(string)
	ts, err := time.Parse(time.RFC3339, pit)
	if err != nil || !strings.HasSuffix(pit, ".000Z") || ts.Before(before) || ts.After(after) {
		t.Errorf("default pointInTimeUTC %q not now (%s..%s)", pit, before, after)
	}
	if props["sourceServerResourceId"] != srcID {
		t.Errorf("a source id was not sent as given: %v", props["sourceServerResourceId"])
	}
}

func TestPostgresRestoreEncryptionChoices(t *testing.T) {
	f, x, o := restoreFake(t)
	cmkID := "/subscriptions/" + f.sub + "/resourceGroups/other/providers/Microsoft.DBforPostgreSQL/flexibleServers/cmksrc"
	identity := func(ids ...string) string {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = `"` + id + `":{}`
		}
		return `{"type":"UserAssigned","userAssignedIdentities":{` + strings.Join(parts, ",") + `}}`
	}
	cases := []struct {
		name      string
		args      []string
		backup    string
		identity  string // "" = no identity block
		dataEnc   string // "" = no dataEncryption block
		location  string
		sourceArg string
	}{
		{name: "CMK source to SMK: nothing sent, the service's default", args: nil, backup: "Disabled", location: "eastus", sourceArg: cmkID},
		{name: "SMK source to CMK", args: []string{"--identity", "id-a", "--key", keyA}, backup: "Disabled", location: "eastus", sourceArg: "src1",
			identity: identity(idA),
			dataEnc:  `{"primaryKeyURI":"` + keyA + `","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{name: "CMK with geo-redundant backup", args: []string{"--geo-redundant-backup", "enabled", "--identity", idA, "--key", keyA,
			"--backup-identity", "id-b", "--backup-key", keyB}, backup: "Enabled", location: "eastus", sourceArg: "src1",
			identity: identity(idA, idB),
			dataEnc: `{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
				`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{name: "SMK with geo-redundant backup", args: []string{"--geo-redundant-backup", "Enabled"}, backup: "Enabled", location: "eastus", sourceArg: cmkID},
	}
	for i, c := range cases {
		name := fmt.Sprintf("restored%d", i)
		args := append([]string{"-g", "rg", "-n", name, "--source-server", c.sourceArg, "--restore-time", "2026-03-01T00:00:00Z"}, c.args...)
		if _, errOut, code := restoreCLI(t, o, "restore", args...); code != 0 {
			t.Errorf("%s: exit %d %s", c.name, code, errOut)
			continue
		}
		put := x.lastWrite(t)
		props := put.Body["properties"].(map[string]any)
		if got := canonical(t, props["backup"]); got != `{"geoRedundantBackup":"`+c.backup+`"}` {
			t.Errorf("%s: backup %s", c.name, got)
		}
		gotID, gotDE := "", ""
		if v, ok := put.Body["identity"]; ok {
			gotID = canonical(t, v)
		}
		if v, ok := props["dataEncryption"]; ok {
			gotDE = canonical(t, v)
		}
		if gotID != c.identity || gotDE != c.dataEnc || put.Body["location"] != c.location {
			t.Errorf("%s:\n identity %s\n want     %s\n dataEncryption %s\n want           %s\n location %v", c.name, gotID, c.identity, gotDE, c.dataEnc, put.Body["location"])
		}
	}
}

func TestPostgresGeoRestoreRequest(t *testing.T) {
	f, x, o := restoreFake(t)
	srcID := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/src1"
	before := time.Now().UTC().Truncate(time.Second)
	out, errOut, code := restoreCLI(t, o, "geo-restore", "-g", "rg", "-n", "geo1", "--source-server", "src1", "-l", "West US",
		"--identity", "id-a", "--key", keyA)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	after := time.Now().UTC()
	put := x.lastWrite(t)
	props := put.Body["properties"].(map[string]any)
	pit, _ := props["pointInTimeUTC"].(string)
	if ts, err := time.Parse(time.RFC3339, pit); err != nil || ts.Before(before) || ts.After(after) {
		t.Errorf("geo-restore pointInTimeUTC %q is not now", pit)
	}
	props["pointInTimeUTC"] = "NOW"
	want := `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{}}},"location":"westus",` +
		`"properties":{"backup":{"geoRedundantBackup":"Disabled"},"createMode":"GeoRestore",` +
		`"dataEncryption":{"primaryKeyURI":"` + keyA + `","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"},` +
		`"pointInTimeUTC":"NOW","sourceServerResourceId":"` + srcID + `"}}`
	if got := canonical(t, put.Body); got != want {
		t.Errorf("PUT body\n got  %s\n want %s", got, want)
	}
	if decodeObject(t, out)["location"] != "westus" {
		t.Errorf("output %s", out)
	}
	var checked bool
	for _, c := range x.snapshot() {
		if strings.HasSuffix(c.Path, "/locations/westus/checkNameAvailability") {
			checked = true
		}
	}
	if !checked {
		t.Error("the new name was not checked at --location")
	}
	// --restore-time (the latest az has it for geo-restore).
	if _, errOut, code := restoreCLI(t, o, "geo-restore", "-g", "rg", "-n", "geo2", "--source-server", "src1", "-l", "westus",
		"--restore-time", "2026-03-01 12:00:00", "--geo-redundant-backup", "Enabled"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	props = x.lastWrite(t).Body["properties"].(map[string]any)
	if props["pointInTimeUTC"] != "2026-03-01T12:00:00.000Z" || canonical(t, props["backup"]) != `{"geoRedundantBackup":"Enabled"}` {
		t.Errorf("geo-restore with --restore-time: %s", canonical(t, props))
	}
}

// Every refusal happens before anything is written; those that need no call send nothing to
// the provider at all.
func TestPostgresRestoreRefusals(t *testing.T) {
	_, x, o := restoreFake(t)
	base := []string{"-g", "rg", "-n", "new1", "--source-server", "src1"}
	cases := []struct {
		cmd    string
		args   []string
		code   int
		msg    string
		noCall bool
	}{
		{"restore", []string{"-g", "rg", "-n", "new1", "--source-server", "rg/src1"}, 1, "The provided source server rg/src1 is invalid.", true},
		{"restore", []string{"-g", "rg", "-n", "new1", "--source-server", "/subscriptions/x/src1"}, 1, "The provided source server /subscriptions/x/src1 is invalid.", true},
		{"geo-restore", []string{"-g", "rg", "-n", "new1", "-l", "westus", "--source-server", "rg/src1"}, 1, "The provided source-server rg/src1 is invalid.", true},
		{"restore", append([]string{"--restore-time", "yesterday"}, base...), 1, msgRestoreTimeFormat, true},
		{"restore", append([]string{"--restore-time", "2026-13-01T00:00:00Z"}, base...), 1, msgRestoreTimeFormat, true},
		{"geo-restore", append([]string{"-l", "westus", "--restore-time", "1 March"}, base...), 1, msgRestoreTimeFormat, true},
		{"restore", append([]string{"--identity", "id-a"}, base...), 1, msgIdentityKeyTogether, true},
		{"restore", append([]string{"--key", keyA}, base...), 1, msgIdentityKeyTogether, true},
		{"restore", append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-key", keyB}, base...), 1, msgBackupKeyTogether, true},
		{"restore", append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-identity", "id-a", "--backup-key", keyB}, base...), 1, msgSameIdentity, true},
		{"restore", append([]string{"--identity", "id-a", "--key", keyA, "--backup-identity", "id-b", "--backup-key", keyB}, base...), 1, msgGeoNotEnabled, true},
		{"restore", append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA}, base...), 1, msgGeoNeedsBothKeys, true},
		{"restore", append([]string{"--geo-redundant-backup", "Enabled", "--backup-identity", "id-b", "--backup-key", keyB}, base...), 1, msgGeoNeedsBothKeys, true},
		{"geo-restore", append([]string{"-l", "westus", "--backup-identity", "id-b", "--backup-key", keyB}, base...), 1, msgGeoNotEnabled, true},
		{"geo-restore", append([]string{"-l", "westus", "--key", keyA}, base...), 1, msgIdentityKeyTogether, true},
		{"restore", append([]string{"--identity", "rg/id-a", "--key", keyA}, base...), 1, msgInvalidIdentity, true},
		{"restore", []string{"-g", "rg", "-n", "ab", "--source-server", "src1"}, 1, "Server name must be at least 3 characters and at most 63 characters.", true},
		{"restore", []string{"-g", "rg", "-n", "new1"}, 2, "the following arguments are required: --source-server", true},
		{"geo-restore", base, 2, "the following arguments are required: --location/-l", true},
		{"restore", append([]string{"--geo-redundant-backup", "maybe"}, base...), 2, "argument --geo-redundant-backup: invalid choice: 'maybe' (choose from 'Enabled', 'Disabled')", true},
		// Checks that read.
		{"restore", []string{"-g", "rg", "-n", "taken", "--source-server", "src1"}, 1, "Specified server name is already used.", false},
		{"geo-restore", []string{"-g", "rg", "-n", "taken", "--source-server", "src1", "-l", "westus"}, 1, "Specified server name is already used.", false},
		{"restore", []string{"-g", "rg", "-n", "new1", "--source-server", "nosuch"}, 3,
			"(ResourceNotFound) The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/nosuch' under resource group 'rg' was not found.", false},
		{"geo-restore", []string{"-g", "rg", "-n", "new1", "--source-server", "nosuch", "-l", "westus"}, 3, "(ResourceNotFound)", false},
	}
	for _, c := range cases {
		calls := len(x.snapshot())
		out, errOut, code := restoreCLI(t, o, c.cmd, c.args...)
		if code != c.code || !strings.Contains(errOut, "ERROR: "+c.msg) || out != "" {
			t.Errorf("%s %v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.cmd, c.args, code, out, errOut, c.code, c.msg)
		}
		if now := x.snapshot(); c.noCall && len(now) != calls {
			t.Errorf("%s %v: refused client-side but called the provider: %+v", c.cmd, c.args, now[calls:])
		}
	}
	if w := x.writes(); len(w) != 0 {
		t.Errorf("refused restores wrote: %+v", w)
	}
	if x.server("new1") != nil {
		t.Error("a refused restore created a server")
	}
}

// The service's refusals, immediate or at the end of the operation, print as ARM errors do.
func TestPostgresRestoreServiceErrors(t *testing.T) {
	f := newFakeDaemon(t)
	src := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}"
	f.mux.HandleFunc("GET "+src, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "src1" {
			replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "not found"))
			return
		}
		replyJSON(w, http.StatusOK, map[string]any{"id": r.URL.Path, "name": "src1", "location": "eastus", "properties": map[string]any{}})
	})
	f.mux.HandleFunc("POST /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/checkNameAvailability",
		func(w http.ResponseWriter, r *http.Request) {
			replyJSON(w, http.StatusOK, map[string]any{"nameAvailable": true, "message": ""})
		})
	f.mux.HandleFunc("PUT "+src, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "early" {
			replyJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "InvalidParameterValue",
				"message": "The restore point in time '2020-01-01T00:00:00.000Z' is before the earliest restore date '2026-03-01T00:00:00Z' of server 'src1'.",
				"target":  "pointInTimeUTC"}})
			return
		}
		w.Header().Set("Azure-AsyncOperation", f.srv.URL+"/subscriptions/"+f.sub+"/providers/Microsoft.DBforPostgreSQL/locations/eastus/azureAsyncOperation/failing?api-version=2025-08-01")
		w.Header().Set("Retry-After", "0")
		replyJSON(w, http.StatusAccepted, map[string]any{"operation": "UpsertServerManagementOperationV2"})
	})
	f.mux.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/azureAsyncOperation/{op}",
		func(w http.ResponseWriter, r *http.Request) {
			replyJSON(w, http.StatusOK, map[string]any{"name": "failing", "status": "Failed", "error": map[string]any{
				"code":    "AzureKeyVaultKeyNameNotFound",
				"message": "The source server's backup key 'https://v.vault.localhost:8443/keys/k' cannot be used to restore."}})
		})
	o := withProfile(t, f)
	_, errOut, code := restoreCLI(t, o, "restore", "-g", "rg", "-n", "early", "--source-server", "src1", "--restore-time", "2020-01-01T00:00:00Z")
	if code != 1 || !strings.Contains(errOut, "ERROR: (InvalidParameterValue) The restore point in time '2020-01-01T00:00:00.000Z' is before") ||
		!strings.Contains(errOut, "\nCode: InvalidParameterValue\n") || !strings.Contains(errOut, "\nTarget: pointInTimeUTC") {
		t.Errorf("immediate refusal: exit %d %s", code, errOut)
	}
	out, errOut, code := restoreCLI(t, o, "restore", "-g", "rg", "-n", "late", "--source-server", "src1")
	if code != 1 || out != "" || !strings.Contains(errOut, "ERROR: (AzureKeyVaultKeyNameNotFound) The source server's backup key 'https://v.vault.localhost:8443/keys/k' cannot be used to restore.") {
		t.Errorf("failed operation: exit %d %q %s", code, out, errOut)
	}
}

func TestParseRestoreTime(t *testing.T) {
	cases := map[string]string{
		"2021-10-22T00:08:23+00:00":        "2021-10-22T00:08:23.000Z",
		"2021-10-22T00:08:23Z":             "2021-10-22T00:08:23.000Z",
		"2021-10-22t00:08:23z":             "2021-10-22T00:08:23.000Z",
		"2021-10-22T02:08:23+02:00":        "2021-10-22T00:08:23.000Z",
		"2021-10-21T19:08:23-0500":         "2021-10-22T00:08:23.000Z",
		"2021-10-22T05:08:23+05":           "2021-10-22T00:08:23.000Z",
		"2021-10-22T00:08:23.5Z":           "2021-10-22T00:08:23.500Z",
		"2021-10-22T00:08:23.123456789Z":   "2021-10-22T00:08:23.123456Z",
		"2021-10-22T00:08:23.12Z":          "2021-10-22T00:08:23.120Z",
		"2021-10-22T00:08:23.1234Z":        "2021-10-22T00:08:23.1234Z",
		"2021-10-22 00:08:23":              "2021-10-22T00:08:23.000Z",
		"2021-10-22 00:08:23 +00:00":       "2021-10-22T00:08:23.000Z",
		"2021-10-22 00:08:23 UTC":          "2021-10-22T00:08:23.000Z",
		"2021-10-22T00:08":                 "2021-10-22T00:08:00.000Z",
		"2021-10-22T00:08+01:00":           "2021-10-21T23:08:00.000Z",
		"2021-10-22":                       "2021-10-22T00:00:00.000Z",
		"  2021-10-22T00:08:23+00:00 \n":   "2021-10-22T00:08:23.000Z",
		"2021-10-22T00:08:23.000000+00:00": "2021-10-22T00:08:23.000Z",
	}
	for in, want := range cases {
		tm, err := parseRestoreTime(in)
		if err != nil {
			t.Errorf("parseRestoreTime(%q): %v", in, err)
			continue
		}
		if got := formatPointInTime(tm); got != want {
			t.Errorf("parseRestoreTime(%q) → %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "now", "yesterday", "2021-10-22T25:00:00Z", "22/10/2021", "2021-10-22T00:08:23+25:00", "1634861303"} {
		if _, err := parseRestoreTime(bad); err == nil || err.Error() != msgRestoreTimeFormat {
			t.Errorf("parseRestoreTime(%q) = %v, want az's format error", bad, err)
		}
	}
}
