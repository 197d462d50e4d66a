package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const (
	testSub = "22222222-2222-2222-2222-222222222222"
	idA     = "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-a"
	idB     = "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-b"
	keyA    = "https://vault-a.vault.localhost:8443/keys/k1"
	keyB    = "https://vault-b.vault.localhost:8443/keys/k2/0123456789abcdef0123456789abcdef"
)

func TestResolveIdentity(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{in: "my-id", want: "/subscriptions/" + testSub + "/resourceGroups/grp/providers/Microsoft.ManagedIdentity/userAssignedIdentities/my-id"},
		{in: idA, want: idA},
		// An id is taken verbatim, whatever its casing or subscription.
		{in: "/subscriptions/other/resourcegroups/X/providers/microsoft.managedidentity/userAssignedIdentities/Y",
			want: "/subscriptions/other/resourcegroups/X/providers/microsoft.managedidentity/userAssignedIdentities/Y"},
		{in: "rg/my-id", err: msgInvalidIdentity},
		{in: "/subscriptions/x/resourceGroups/rg", err: msgInvalidIdentity},
		{in: "/subscriptions//resourceGroups/rg/providers/a/b/c", err: msgInvalidIdentity},
	}
	for _, c := range cases {
		got, err := resolveIdentity(c.in, testSub, "grp")
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("resolveIdentity(%q) = %q, %v; want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("resolveIdentity(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// cmkServer is a server created with a customer-managed key (geo as given).
func cmkServer(geo, primary, geoIdentity string) *pgServer {
	s := &pgServer{}
	s.Properties.Backup.GeoRedundantBackup = geo
	s.Properties.DataEncryption = &pgDataEncryption{Type: "AzureKeyVault", PrimaryUserAssignedIdentityID: primary,
		PrimaryKeyURI: keyA, GeoBackupUserAssignedIdentityID: geoIdentity, GeoBackupKeyURI: keyB}
	return s
}

func smkServer(geo string) *pgServer {
	s := &pgServer{}
	s.Properties.Backup.GeoRedundantBackup = geo
	s.Properties.DataEncryption = &pgDataEncryption{Type: "SystemManaged"}
	return s
}

func TestValidateBYOK(t *testing.T) {
	cases := []struct {
		name    string
		b       byokArgs
		geo     string
		current *pgServer
		want    string // "" = accepted
	}{
		{"nothing", byokArgs{}, "Disabled", nil, ""},
		{"create primary", byokArgs{Identity: idA, Key: keyA}, "Disabled", nil, ""},
		{"identity without key", byokArgs{Identity: idA}, "Disabled", nil, msgIdentityKeyTogether},
		{"key without identity", byokArgs{Key: keyA}, "Enabled", nil, msgIdentityKeyTogether},
		{"backup identity without key", byokArgs{Identity: idA, Key: keyA, BackupIdentity: idB}, "Enabled", nil, msgBackupKeyTogether},
		{"backup key without identity", byokArgs{BackupKey: keyB}, "Enabled", nil, msgBackupKeyTogether},
		{"same identity", byokArgs{Identity: idA, Key: keyA, BackupIdentity: idA, BackupKey: keyB}, "Enabled", nil, msgSameIdentity},
		{"same identity, other casing", byokArgs{Identity: idA, Key: keyA, BackupIdentity: "/SUBSCRIPTIONS/" + idA[len("/subscriptions/"):], BackupKey: keyB}, "Enabled", nil, msgSameIdentity},
		{"backup flags, geo disabled", byokArgs{Identity: idA, Key: keyA, BackupIdentity: idB, BackupKey: keyB}, "Disabled", nil, msgGeoNotEnabled},
		{"backup flags, geo absent", byokArgs{BackupIdentity: idB, BackupKey: keyB}, "", nil, msgGeoNotEnabled},
		{"geo, primary only", byokArgs{Identity: idA, Key: keyA}, "Enabled", nil, msgGeoNeedsBothKeys},
		{"geo, backup only", byokArgs{BackupIdentity: idB, BackupKey: keyB}, "Enabled", nil, msgGeoNeedsBothKeys},
		{"geo, both", byokArgs{Identity: idA, Key: keyA, BackupIdentity: idB, BackupKey: keyB}, "Enabled", nil, ""},
		{"geo, none (service-managed)", byokArgs{}, "enabled", nil, ""},
		{"update key on SMK server", byokArgs{Identity: idA, Key: keyA}, "Disabled", smkServer("Disabled"), msgNotCreatedWithCMK},
		{"update backup key on SMK server", byokArgs{BackupIdentity: idB, BackupKey: keyB}, "Enabled", smkServer("Enabled"), msgNotCreatedWithCMK},
		{"update CMK server", byokArgs{Identity: idB, Key: keyB}, "Disabled", cmkServer("Disabled", idA, ""), ""},
		{"update backup on CMK server without geo", byokArgs{BackupIdentity: idB, BackupKey: keyB}, "Disabled", cmkServer("Disabled", idA, ""), msgGeoNotEnabled},
		{"update backup only, distinct", byokArgs{BackupIdentity: idB, BackupKey: keyB}, "Enabled", cmkServer("Enabled", idA, idB), ""},
		{"update backup only, equals current primary", byokArgs{BackupIdentity: idA, BackupKey: keyB}, "Enabled", cmkServer("Enabled", idA, idB), msgSameIdentity},
		{"update primary only, equals current geo", byokArgs{Identity: idB, Key: keyA}, "Enabled", cmkServer("Enabled", idA, idB), msgSameIdentity},
		{"update primary only on geo server", byokArgs{Identity: idA, Key: keyB}, "Enabled", cmkServer("Enabled", idA, idB), ""},
	}
	for _, c := range cases {
		err := validateBYOK(c.b, c.geo, c.current)
		got := ""
		if err != nil {
			got = err.Error()
			if _, ok := err.(*UserError); !ok {
				t.Errorf("%s: error %T is not a UserError", c.name, err)
			}
		}
		if got != c.want {
			t.Errorf("%s: validateBYOK = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestBuildIdentityAndDataEncryption(t *testing.T) {
	js := func(v any) string {
		if v == nil || reflect.ValueOf(v).IsNil() {
			return "null"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	cases := []struct {
		name         string
		b            byokArgs
		current      *pgServer
		identity, de string
	}{
		{"none", byokArgs{}, nil, "null", "null"},
		{"primary", byokArgs{Identity: idA, Key: keyA}, nil,
			`{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{}}}`,
			`{"primaryKeyURI":"` + keyA + `","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{"primary and geo", byokArgs{Identity: idA, Key: keyA, BackupIdentity: idB, BackupKey: keyB}, nil,
			`{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{},"` + idB + `":{}}}`,
			`{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
				`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{"update, backup only: primary copied from the server", byokArgs{BackupIdentity: idB, BackupKey: keyB},
			cmkServer("Enabled", idA, "/old"),
			`{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":{},"` + idB + `":{}}}`,
			`{"geoBackupKeyURI":"` + keyB + `","geoBackupUserAssignedIdentityId":"` + idB + `","primaryKeyURI":"` + keyA +
				`","primaryUserAssignedIdentityId":"` + idA + `","type":"AzureKeyVault"}`},
		{"create, backup only: nothing", byokArgs{BackupIdentity: idB, BackupKey: keyB}, nil, "null", "null"},
	}
	for _, c := range cases {
		id, de := buildIdentityAndDataEncryption(c.b, c.current)
		if js(id) != c.identity || js(de) != c.de {
			t.Errorf("%s:\n identity %s\n want     %s\n dataEncryption %s\n want           %s", c.name, js(id), c.identity, js(de), c.de)
		}
	}
}

func TestIdentityRemoval(t *testing.T) {
	withIdentities := func(s *pgServer, principal string, ids ...string) *pgServer {
		s.Identity = &pgIdentity{Type: "UserAssigned", PrincipalID: principal, UserAssignedIdentities: map[string]*pgUserIdentity{}}
		for _, id := range ids {
			s.Identity.UserAssignedIdentities[id] = &pgUserIdentity{PrincipalID: "p", ClientID: "c"}
		}
		return s
	}
	cases := []struct {
		name    string
		current *pgServer
		remove  []string
		want    string
		err     string
	}{
		{"primary in use", withIdentities(cmkServer("Disabled", idA, ""), "", idA, idB), []string{idB, idA}, "",
			"Cannot remove identity " + idA + " because it's used for data encryption."},
		{"primary in use, other casing", withIdentities(cmkServer("Disabled", idA, ""), "", idA), []string{"/SUBSCRIPTIONS/" + idA[len("/subscriptions/"):]}, "",
			"Cannot remove identity " + idA + " because it's used for data encryption."},
		{"geo in use", withIdentities(cmkServer("Enabled", idA, idB), "", idA, idB), []string{idB}, "",
			"Cannot remove identity " + idB + " because it's used for geo backup data encryption."},
		{"one of two", withIdentities(smkServer("Disabled"), "", idA, idB), []string{idA},
			`{"type":"UserAssigned","userAssignedIdentities":{"` + idA + `":null}}`, ""},
		{"the last one", withIdentities(smkServer("Disabled"), "", idA), []string{idA}, `{"type":"None"}`, ""},
		{"the last one, system identity kept", withIdentities(smkServer("Disabled"), "sys", idA), []string{idA}, `{"type":"SystemAssigned"}`, ""},
		{"one of two, system identity kept", withIdentities(smkServer("Disabled"), "sys", idA, idB), []string{idB},
			`{"type":"SystemAssigned,UserAssigned","userAssignedIdentities":{"` + idB + `":null}}`, ""},
	}
	for _, c := range cases {
		got, err := identityRemoval(c.current, c.remove)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		b, _ := json.Marshal(got)
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, b, err, c.want)
		}
	}
}

func TestValidateCaps(t *testing.T) {
	body := []byte(`{"value":[{"supportedServerEditions":[
	  {"name":"Burstable","defaultSkuName":"Standard_B1ms","supportedServerSkus":[{"name":"Standard_B2s"},{"name":"Standard_B1ms"}],
	   "supportedStorageEditions":[{"supportedStorageMb":[{"storageSizeMb":32768},{"storageSizeMb":65536}]}]},
	  {"name":"GeneralPurpose","defaultSkuName":"Standard_D2s_v3","supportedServerSkus":[{"name":"Standard_D4s_v3"},{"name":"Standard_D2ds_v5"},{"name":"Standard_D2s_v3"},{"name":"Standard_D2ds_v4"}],
	   "supportedStorageEditions":[{"supportedStorageMb":[{"storageSizeMb":262144},{"storageSizeMb":131072}]}]}],
	  "supportedServerVersions":[{"name":"16"},{"name":"14"},{"name":"15"}],
	  "geoBackupSupported":"Disabled"}]}`)
	caps, err := parseCapabilities(body)
	if err != nil {
		t.Fatal(err)
	}
	if caps.newestVersion() != "16" || caps.geoBackupSupported || caps.tier("burstable").defaultSKU != "Standard_B1ms" {
		t.Fatalf("parsed %+v", caps)
	}
	current := smkServer("Disabled")
	current.SKU.Tier = "GeneralPurpose"
	current.Properties.Storage.StorageSizeGB = 256
	cases := []struct {
		name    string
		args    capsArgs
		current *pgServer
		want    string
	}{
		{"defaults", capsArgs{tier: "GeneralPurpose", storageGB: 128}, nil, ""},
		{"tier", capsArgs{tier: "Premium"}, nil, "Incorrect value for --tier. Allowed values : ['burstable', 'generalpurpose']"},
		{"geo", capsArgs{tier: "GeneralPurpose", geo: "Enabled"}, nil, msgGeoRegionUnsupported},
		{"storage", capsArgs{tier: "Burstable", storageGB: 128}, nil, "Incorrect value for --storage-size : Allowed values (in GiB) : [32, 64]"},
		{"storage decrease", capsArgs{storageGB: 128}, current,
			"Decrease of current storage size isn't supported. Current storage size is 256 GiB                                 and you're trying to set it to 128 GiB."},
		{"sku on create", capsArgs{tier: "GeneralPurpose", sku: "Standard_B1ms"}, nil,
			"Incorrect value for --sku-name. The SKU name does not exist in GeneralPurpose tier. When --tier is not specified, it defaults to GeneralPurpose. " +
				"Provide a valid SKU name for this tier, or specify --tier with the right tier for the SKU name chosen. " +
				"Allowed values : ['standard_d2ds_v5', 'standard_d2ds_v4', 'standard_d2s_v3', 'standard_d4s_v3']"},
		{"sku on update uses the server's tier", capsArgs{sku: "Standard_B1ms"}, current,
			"Incorrect value for --sku-name. The SKU name does not exist in GeneralPurpose tier. " +
				"Provide a valid SKU name for this tier, or specify --tier with the right tier for the SKU name chosen. " +
				"Allowed values : ['standard_d2ds_v5', 'standard_d2ds_v4', 'standard_d2s_v3', 'standard_d4s_v3']"},
		{"sku case-insensitive", capsArgs{tier: "burstable", sku: "STANDARD_B2S"}, nil, ""},
		{"version", capsArgs{tier: "GeneralPurpose", version: "13"}, nil, "Incorrect value for --version. Allowed values : ['14', '15', '16']"},
	}
	for _, c := range cases {
		err := validateCaps(caps, c.args, c.current)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s:\n got  %q\n want %q", c.name, got, c.want)
		}
	}
}

func TestPublicNetworkAccess(t *testing.T) {
	for in, want := range map[string]publicAccess{
		"":                  {network: "Enabled", callerAddress: true},
		"Enabled":           {network: "Enabled"},
		"all":               {network: "Enabled", start: "0.0.0.0", end: "255.255.255.255"},
		"None":              {network: "Enabled"},
		"Disabled":          {network: "Disabled"},
		"0.0.0.0":           {network: "Enabled", start: "0.0.0.0", end: "0.0.0.0"},
		"10.0.0.1":          {network: "Enabled", start: "10.0.0.1", end: "10.0.0.1"},
		"10.0.0.1-10.0.0.9": {network: "Enabled", start: "10.0.0.1", end: "10.0.0.9"},
		// Compared as numbers, not as az 2.45's strings (Azure/azure-cli#26466).
		"10.0.0.96-10.0.0.111": {network: "Enabled", start: "10.0.0.96", end: "10.0.0.111"},
	} {
		if got, err := parsePublicAccess(in); err != nil || got != want {
			t.Errorf("parsePublicAccess(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"bogus": "incorrect usage: --public-access.", "10.0.0.256": "incorrect usage: --public-access.",
		"10.0.0.9-10.0.0.1": "The end IP address is smaller than the start IP address.", "1.1.1.1-2.2.2.2-3.3.3.3": "incorrect usage"} {
		if _, err := parsePublicAccess(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parsePublicAccess(%q) error %v, want %q", in, err, want)
		}
	}
}

func TestGeneratedCredentials(t *testing.T) {
	for range 200 {
		user := generateAdminUser()
		if !validLogin(user) {
			t.Fatalf("generated login %q is not a valid PostgreSQL administrator login", user)
		}
		pw, err := generatePassword(user)
		if err != nil || len(pw) != 22 || !meetsPasswordPolicy(user, pw) {
			t.Fatalf("generatePassword(%q) = %q, %v", user, pw, err)
		}
		for _, c := range pw {
			if c == '-' {
				t.Fatalf("generated password %q contains '-'", pw)
			}
		}
	}
	if n := randomResourceName("server"); len(n) != 15 || n[:6] != "server" {
		t.Errorf("randomResourceName = %q", n)
	}
	for pw, ok := range map[string]bool{"Abcdefg1": true, "abcdefgh": false, "abcdefg1!": true, "Ab1!": false, "xxAdmINyy1!": false} {
		if meetsPasswordPolicy("admin", pw) != ok {
			t.Errorf("meetsPasswordPolicy(admin, %q) != %v", pw, ok)
		}
	}
}

func validLogin(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return len(s) > 0
}
