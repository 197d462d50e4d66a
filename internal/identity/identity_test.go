package identity

import (
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
)

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"abc", true},
		{"id-1_for-Server", true},
		{"0starts-with-digit", true},
		{strings.Repeat("a", 128), true},
		{"id", true}, // the seed's own name; Azure's guide says 3 at least, its API no minimum
		{"a", true},
		{strings.Repeat("a", 129), false},
		{"-abc", false},
		{"_abc", false},
		{"ab.c", false},
		{"ab c", false},
		{"ab/c", false},
		{"idé-unicode", false},
		{"", false},
	}
	for _, c := range cases {
		err := ValidateName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidateName(%q) = %v, want ok %v", c.name, err, c.ok)
		}
		if ae := arm.AsError(err); err != nil && (ae == nil || ae.Code != "InvalidResourceName" || ae.Status != 400) {
			t.Errorf("ValidateName(%q) error = %v, want 400 InvalidResourceName", c.name, err)
		}
	}
}

func TestView(t *testing.T) {
	i := &Identity{SubscriptionID: "sub", ResourceGroup: "My-RG", Name: "Id1", Location: "eastus",
		PrincipalID: "p", ClientID: "c", TenantID: "t"}
	for _, c := range []struct {
		version   string
		isolation any
	}{
		{"2018-11-30", nil},
		{"2023-01-31", nil},
		{"2023-07-31-preview", nil},
		{"2024-11-30", "None"},
	} {
		v := i.view(c.version)
		props := v["properties"].(map[string]any)
		if v["id"] != "/subscriptions/sub/resourcegroups/My-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Id1" ||
			v["type"] != ResourceType || props["principalId"] != "p" || props["clientId"] != "c" || props["tenantId"] != "t" ||
			props["isolationScope"] != c.isolation {
			t.Errorf("view(%s) = %v", c.version, v)
		}
		if tags, ok := v["tags"].(map[string]string); !ok || tags == nil {
			t.Errorf("view(%s) tags = %v, want {}", c.version, v["tags"])
		}
	}
	if !i.ID().SameAs(arm.NewResourceID("SUB", "my-rg", "microsoft.managedidentity", "userassignedidentities", "ID1")) {
		t.Error("ID does not compare case-insensitively")
	}
}
