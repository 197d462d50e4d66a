package cli

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// revive-dropped against the fake provider: the deleted source is simply absent from it, as it
// is from the real one's GET, so any read of the source would show up as a failing GET.

func TestPostgresReviveDroppedRequest(t *testing.T) {
	f, x, o := restoreFake(t)
	goneID := "/subscriptions/" + f.sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/dropped1"

	before := time.Now().UTC().Truncate(time.Second)
	out, errOut, code := restoreCLI(t, o, "revive-dropped", "-g", "rg", "-n", "Revived1", "--source-server", goneID, "-l", "East US")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	after := time.Now().UTC()
	put := x.lastWrite(t)
	if put.Method != http.MethodPut || put.Path != "/subscriptions/"+f.sub+"/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/revived1" {
		t.Fatalf("sent %s %s", put.Method, put.Path)
	}
	props := put.Body["properties"].(map[string]any)
	pit, _ := props["pointInTimeUTC"].(string)
	ts, err := time.Parse(time.RFC3339, pit)
	if err != nil || !strings.HasSuffix(pit, ".000Z") || ts.Before(before) || ts.After(after) {
		t.Errorf("pointInTimeUTC %q is not now in whole seconds (%s..%s)", pit, before, after)
	}
	props["pointInTimeUTC"] = "NOW"
	want := `{"location":"eastus","properties":{"backup":{"geoRedundantBackup":"Disabled"},"createMode":"ReviveDropped",` +
		`"pointInTimeUTC":"NOW","sourceServerResourceId":"` + goneID + `"}}`
	if got := canonical(t, put.Body); got != want {
		t.Errorf("PUT body\n got  %s\n want %s", got, want)
	}
	if len(x.writes()) != 1 {
		t.Errorf("more than the PUT was written: %+v", x.writes())
	}
	var checked bool
	for _, c := range x.snapshot() {
		if c.Method == http.MethodGet && strings.Contains(strings.ToLower(c.Path), "/flexibleservers/dropped1") {
			t.Errorf("the deleted source was read: %s %s", c.Method, c.Path)
		}
		if strings.HasSuffix(c.Path, "/locations/eastus/checkNameAvailability") && c.Body["name"] == "revived1" {
			checked = true
		}
	}
	if !checked {
		t.Error("the new name was not checked at --location")
	}
	shown, _, _ := runCLI(t, o, "postgres", "flexible-server", "show", "-g", "rg", "-n", "revived1")
	if canonical(t, decodeObject(t, out)) != canonical(t, decodeObject(t, shown)) {
		t.Errorf("revive-dropped printed\n%s\nshow prints\n%s", out, shown)
	}

	// A bare name is the server of that name in the new server's group; --no-wait prints nothing.
	if out, errOut, code := restoreCLI(t, o, "revive-dropped", "-g", "rg", "-n", "revived2", "--source-server", "dropped1",
		"-l", "eastus", "--no-wait"); code != 0 || out != "" {
		t.Fatalf("--no-wait: exit %d, stdout %q: %s", code, out, errOut)
	}
	if got := x.lastWrite(t).Body["properties"].(map[string]any)["sourceServerResourceId"]; got != goneID {
		t.Errorf("bare source name sent as %v, want %s", got, goneID)
	}
}

// The new server's own key choice, as restore sends it: nothing (service-managed), a customer
// key, a customer key with a geo-backup key.
func TestPostgresReviveDroppedEncryption(t *testing.T) {
	_, x, o := restoreFake(t)
	base := []string{"--source-server", "dropped1", "-l", "eastus"}
	cases := []struct {
		name     string
		args     []string
		backup   string
		identity string
		dataEnc  string
	}{
		{name: "service-managed", backup: "Disabled"},
		{name: "customer-managed, identity by name", args: []string{"--identity", "id-a", "--key", keyA}, backup: "Disabled",
			identity: `{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{}}}`,
			dataEnc:  `{"primaryKeyURI":"` + keyA + `","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{name: "customer-managed with geo-redundant backup", args: []string{"--geo-redundant-backup", "Enabled", "--identity", idA, "--key", keyA,
			"--backup-identity", "id-b", "--backup-key", keyB}, backup: "Enabled",
			identity: `{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{},"` + idB + `":{}}}`,
			dataEnc: `{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
				`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{name: "service-managed with geo-redundant backup", args: []string{"--geo-redundant-backup", "Enabled"}, backup: "Enabled"},
	}
	for i, c := range cases {
		args := append(append([]string{"-g", "rg", "-n", "revived" + string(rune('a'+i))}, base...), c.args...)
		if _, errOut, code := restoreCLI(t, o, "revive-dropped", args...); code != 0 {
			t.Errorf("%s: exit %d %s", c.name, code, errOut)
			continue
		}
		put := x.lastWrite(t)
		props := put.Body["properties"].(map[string]any)
		gotID, gotDE := "", ""
		if v, ok := put.Body["identity"]; ok {
			gotID = canonical(t, v)
		}
		if v, ok := props["dataEncryption"]; ok {
			gotDE = canonical(t, v)
		}
		if gotID != c.identity || gotDE != c.dataEnc || canonical(t, props["backup"]) != `{"geoRedundantBackup":"`+c.backup+`"}` ||
			props["createMode"] != "ReviveDropped" {
			t.Errorf("%s:\n identity %s\n want     %s\n dataEncryption %s\n want           %s\n properties %s",
				c.name, gotID, c.identity, gotDE, c.dataEnc, canonical(t, props))
		}
	}
}

// Every refusal happens before anything is written; those that need no call send nothing.
func TestPostgresReviveDroppedRefusals(t *testing.T) {
	_, x, o := restoreFake(t)
	base := []string{"-g", "rg", "-n", "new1", "--source-server", "dropped1", "-l", "eastus"}
	cases := []struct {
		args   []string
		code   int
		msg    string
		noCall bool
	}{
		{[]string{"-g", "rg", "-n", "new1", "--source-server", "dropped1"}, 2, "the following arguments are required: --location/-l", true},
		{[]string{"-g", "rg", "-n", "new1", "-l", "eastus"}, 2, "the following arguments are required: --source-server", true},
		{[]string{"-g", "rg", "--source-server", "dropped1", "-l", "eastus"}, 2, "the following arguments are required: --name/-n", true},
		{append([]string{"--restore-time", "2026-03-01T00:00:00Z"}, base...), 2, "unrecognized arguments: --restore-time", true},
		{[]string{"-g", "rg", "-n", "new1", "-l", "eastus", "--source-server", "rg/dropped1"}, 1, "The provided source-server rg/dropped1 is invalid.", true},
		{[]string{"-g", "rg", "-n", "new1", "-l", "eastus", "--source-server", "/subscriptions/x/dropped1"}, 1,
			"The provided source-server /subscriptions/x/dropped1 is invalid.", true},
		{[]string{"-g", "rg", "-n", "ab", "-l", "eastus", "--source-server", "dropped1"}, 1,
			"Server name must be at least 3 characters and at most 63 characters.", true},
		{append([]string{"--identity", "id-a"}, base...), 1, msgIdentityKeyTogether, true},
		{append([]string{"--key", keyA}, base...), 1, msgIdentityKeyTogether, true},
		{append([]string{"--identity", "rg/id-a", "--key", keyA}, base...), 1, msgInvalidIdentity, true},
		{append([]string{"--identity", "id-a", "--key", keyA, "--backup-identity", "id-b", "--backup-key", keyB}, base...), 1, msgGeoNotEnabled, true},
		{append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA}, base...), 1, msgGeoNeedsBothKeys, true},
		{append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-identity", "id-b"}, base...), 1,
			msgBackupKeyTogether, true},
		{append([]string{"--geo-redundant-backup", "Enabled", "--identity", "id-a", "--key", keyA, "--backup-identity", idA, "--backup-key", keyB}, base...), 1,
			msgSameIdentity, true},
		{append([]string{"--geo-redundant-backup", "sometimes"}, base...), 2,
			"argument --geo-redundant-backup: invalid choice: 'sometimes' (choose from 'Enabled', 'Disabled')", true},
		// The one check that reads: the new name is taken.
		{[]string{"-g", "rg", "-n", "taken", "--source-server", "dropped1", "-l", "eastus"}, 1, "Specified server name is already used.", false},
	}
	for _, c := range cases {
		calls := len(x.snapshot())
		out, errOut, code := restoreCLI(t, o, "revive-dropped", c.args...)
		if code != c.code || !strings.Contains(errOut, "ERROR: "+c.msg) || out != "" {
			t.Errorf("revive-dropped %v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.msg)
		}
		if now := x.snapshot(); c.noCall && len(now) != calls {
			t.Errorf("revive-dropped %v: refused client-side but called the provider: %+v", c.args, now[calls:])
		}
	}
	if w := x.writes(); len(w) != 0 {
		t.Errorf("refused revives wrote: %+v", w)
	}
	if x.server("new1") != nil {
		t.Error("a refused revive created a server")
	}
}

// The service's refusals print as ARM errors with az's exit codes: an unknown (or no longer
// retained) source is ResourceNotFound, exit 3; a source that is not deleted is
// InvalidParameterValue, exit 1.
func TestPostgresReviveDroppedServiceErrors(t *testing.T) {
	f := newFakeDaemon(t)
	src := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}"
	f.mux.HandleFunc("POST /subscriptions/{sub}/providers/Microsoft.DBforPostgreSQL/locations/{loc}/checkNameAvailability",
		func(w http.ResponseWriter, r *http.Request) {
			replyJSON(w, http.StatusOK, map[string]any{"nameAvailable": true, "message": ""})
		})
	var gets atomic.Int32
	f.mux.HandleFunc("GET "+src, func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound", "not found"))
	})
	f.mux.HandleFunc("PUT "+src, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "fromlive" {
			replyJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "InvalidParameterValue",
				"message": "The server '/subscriptions/x/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/live' is not deleted; restore it with createMode PointInTimeRestore.",
				"target":  "properties.createMode"}})
			return
		}
		replyJSON(w, http.StatusNotFound, armErr("ResourceNotFound",
			"The source server 'unknown' was not found: no server of that id exists, nor a deleted one whose backups are still retained."))
	})
	o := withProfile(t, f)
	out, errOut, code := restoreCLI(t, o, "revive-dropped", "-g", "rg", "-n", "fromunknown", "--source-server", "unknown", "-l", "eastus")
	if code != 3 || out != "" || !strings.Contains(errOut, "ERROR: (ResourceNotFound) The source server 'unknown' was not found") {
		t.Errorf("unknown source: exit %d %q %s", code, out, errOut)
	}
	out, errOut, code = restoreCLI(t, o, "revive-dropped", "-g", "rg", "-n", "fromlive", "--source-server", "live", "-l", "eastus")
	if code != 1 || out != "" || !strings.Contains(errOut, "ERROR: (InvalidParameterValue) The server '") ||
		!strings.Contains(errOut, "\nTarget: properties.createMode") {
		t.Errorf("live source: exit %d %q %s", code, out, errOut)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("revive-dropped read a server %d times", n)
	}
}
