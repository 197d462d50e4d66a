package flexserver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
)

func TestValidateServerName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"my-server-01", true},
		{strings.Repeat("a", 63), true},
		{"ab", false},
		{strings.Repeat("a", 64), false},
		{"-abc", false},
		{"abc-", false},
		{"ABC", false},
		{"a_bc", false},
		{"a.bc", false},
	}
	for _, tc := range tests {
		err := ValidateServerName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateServerName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && arm.AsError(err).Code != "InvalidServerName" {
			t.Errorf("code = %s", arm.AsError(err).Code)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	tests := []struct {
		login, pw string
		ok        bool
	}{
		{"pgadmin", "Str0ng!Pass", true},
		{"pgadmin", "strongpass1!", true},              // lower, digit, other
		{"pgadmin", "ALLUPPER123", false},              // two categories... plus digits = 2
		{"pgadmin", "Short1!", false},                  // 7 characters
		{"pgadmin", "alllowercase", false},             // one category
		{"pgadmin", "My-pgadmin-1", false},             // contains the login
		{"pgadmin", "Xpga1!abcdef", false},             // contains "pga", part of the login
		{"pgadmin", strings.Repeat("Aa1!", 33), false}, // 132 characters
		{"pgadmin", "Pässwörd-123", false},             // not ASCII: the SCRAM verifier would not match
		{"pgadmin", "Str0ng\tPass", false},             // a control character
	}
	for _, tc := range tests {
		err := ValidatePassword(tc.login, tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePassword(%q, %q) = %v, want ok=%v", tc.login, tc.pw, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), tc.pw) {
			t.Errorf("the error echoes the password")
		}
	}
}

func TestValidateAdminLogin(t *testing.T) {
	for login, ok := range map[string]bool{"pgadmin": true, "_x": true, "MyAdmin": true, "admin": false, "Azure_SuperUser": false,
		"pg_owner": false, "1abc": false, "a-b": false, "": false, strings.Repeat("a", 64): false,
		// pgflex's own roles, and PostgreSQL's: once accepted with 202, then failing after initdb.
		"pgflex_superuser": false, "pgflex_backup": false, "postgres": false, "pgflex_x": false, "azure_x": false} {
		if err := ValidateAdminLogin(login); (err == nil) != ok {
			t.Errorf("ValidateAdminLogin(%q) = %v, want ok=%v", login, err, ok)
		}
	}
}

func TestValidateCreate(t *testing.T) {
	base := `{"location":"eastus","properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"Str0ng!Pass"%s}%s}`
	tests := []struct {
		name, props, top string
		code, target     string
		check            func(t *testing.T, s *Server)
	}{
		{name: "defaults", check: func(t *testing.T, s *Server) {
			if s.Version != "15" || s.StorageSizeGB != 128 || s.BackupRetentionDays != 7 || s.SKU.Name != "Standard_D2s_v3" ||
				s.SKU.Tier != "GeneralPurpose" || s.GeoRedundantBackup != "Disabled" || s.Location != "eastus" {
				t.Errorf("defaults = %+v", s)
			}
		}},
		{name: "burstable sku", top: `,"sku":{"name":"Standard_B1ms","tier":"Burstable"}`, check: func(t *testing.T, s *Server) {
			if s.SKU.Tier != "Burstable" {
				t.Errorf("sku = %+v", s.SKU)
			}
		}},
		{name: "geo backup in paired region", props: `,"backup":{"geoRedundantBackup":"Enabled"}`, check: func(t *testing.T, s *Server) {
			if s.GeoRedundantBackup != "Enabled" {
				t.Errorf("geo = %s", s.GeoRedundantBackup)
			}
		}},
		{name: "unsupported version", props: `,"version":"11"`, code: "InvalidParameterValue", target: "properties.version"},
		{name: "storage size not offered", props: `,"storage":{"storageSizeGB":100}`, code: "InvalidParameterValue", target: "properties.storage.storageSizeGB"},
		{name: "retention too short", props: `,"backup":{"backupRetentionDays":6}`, code: "InvalidParameterValue", target: "properties.backup.backupRetentionDays"},
		{name: "retention too long", props: `,"backup":{"backupRetentionDays":36}`, code: "InvalidParameterValue", target: "properties.backup.backupRetentionDays"},
		{name: "sku and tier mismatch", top: `,"sku":{"name":"Standard_B1ms","tier":"GeneralPurpose"}`, code: "InvalidParameterValue", target: "sku.tier"},
		{name: "unknown sku", top: `,"sku":{"name":"Standard_X99","tier":"GeneralPurpose"}`, code: "InvalidParameterValue", target: "sku.name"},
		{name: "high availability", props: `,"highAvailability":{"mode":"ZoneRedundant"}`, code: "InvalidParameterValue", target: "properties.highAvailability.mode"},
		{name: "weak password", props: `,"administratorLoginPassword":"weak"`, code: "PasswordNotComplex"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := strings.Replace(base, "%s", tc.props, 1)
			raw = strings.Replace(raw, "%s", tc.top, 1)
			// A later duplicate key wins in encoding/json, which lets a case override the password.
			var body serverBody
			if err := json.Unmarshal([]byte(raw), &body); err != nil {
				t.Fatal(err)
			}
			s := &Server{}
			err := validateCreate(s, &body, []string{"15"})
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, s)
				return
			}
			ae := arm.AsError(err)
			if ae == nil || ae.Code != tc.code || (tc.target != "" && ae.Target != tc.target) {
				t.Fatalf("err = %v (target %v), want %s at %s", err, ae, tc.code, tc.target)
			}
		})
	}
	// A region without a pair refuses geo-redundant backup.
	var body serverBody
	json.Unmarshal([]byte(`{"location":"italynorth","properties":{"administratorLogin":"pgadmin","administratorLoginPassword":"Str0ng!Pass","backup":{"geoRedundantBackup":"Enabled"}}}`), &body)
	if err := validateCreate(&Server{}, &body, []string{"15"}); arm.AsError(err) == nil {
		t.Fatal("geo-redundant backup accepted in a region without a pair")
	}
}

func TestConflictOnPut(t *testing.T) {
	cur := &Server{Location: "eastus", AdministratorLogin: "pgadmin", Version: "15", GeoRedundantBackup: "Disabled",
		Encryption: Encryption{Type: EncSystemManaged}}
	tests := []struct {
		body, target string
	}{
		{`{"location":"westus"}`, "location"},
		{`{"properties":{"administratorLogin":"other"}}`, "properties.administratorLogin"},
		{`{"properties":{"version":"16"}}`, "properties.version"},
		{`{"properties":{"backup":{"geoRedundantBackup":"Enabled"}}}`, "properties.backup.geoRedundantBackup"},
		{`{"properties":{"dataEncryption":{"type":"AzureKeyVault"}}}`, "properties.dataEncryption.type"},
		{`{"location":"East US","properties":{"administratorLogin":"pgadmin","dataEncryption":{"type":"SystemAssigned"}}}`, ""},
	}
	for _, tc := range tests {
		var body serverBody
		json.Unmarshal([]byte(tc.body), &body)
		err := conflictOnPut(cur, &body)
		if tc.target == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.body, err)
			}
			continue
		}
		ae := arm.AsError(err)
		if ae == nil || ae.Code != "PropertyChangeNotAllowed" || ae.Target != tc.target {
			t.Errorf("%s: err = %v", tc.body, err)
		}
	}
}
