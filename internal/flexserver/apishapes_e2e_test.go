package flexserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	armpostgresqlflexibleservers4 "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/postgresql/armpostgresqlflexibleservers/v5"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
)

// sdkAt is the daemon's SDK options with the api-version pinned: how the v4 package (generated
// from 2024-08-01) reads the previews that share its schema, and v5 (2025-08-01) 2025-01-01-preview.
func sdkAt(d *testenv.Daemon, version string) *arm.ClientOptions {
	_, opts := d.SDK()
	o := *opts
	o.APIVersion = version
	return &o
}

// runAz245 runs one of the testdata scripts that run az 2.45's own code on a 2022-12-01 answer,
// and returns the JSON it prints.
func runAz245(t *testing.T, script string, body []byte, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(testkit.AzurePythonExe, append([]string{"testdata/" + script}, args...)...)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("az 2.45's code on the answer: %v\n%s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return res
}

// TestCapabilitiesPerAPIVersion reads a location's capabilities at every api-version pgflex
// accepts, each with the client that speaks it: az 2.45's own Python code (its SDK's models and
// the parser and validators `az postgres flexible-server create/update` run) for 2022-12-01,
// Azure's SDK for Go v4 for 2023-03-01-preview to 2024-11-01-preview, v5 for the 2025 ones.
// The values are pgflex's: geo-redundant backup where the region has a pair, the SKU and disk
// catalog, the PostgreSQL versions installed, no high availability.
func TestCapabilitiesPerAPIVersion(t *testing.T) {
	t.Parallel()
	testkit.Require(t, testkit.PostgreSQL, testkit.AzurePython)
	d := testenv.Start(t, testenv.Options{})
	sub := d.Profile().SubscriptionID
	ctx := context.Background()
	cred, _ := d.SDK()
	raw := func(t *testing.T, location, version string) testenv.ARMResponse {
		t.Helper()
		r := d.ARM(t, http.MethodGet, fmt.Sprintf("/subscriptions/%s/providers/Microsoft.DBforPostgreSQL/locations/%s/capabilities?api-version=%s", sub, location, version), nil)
		if r.Status != 200 {
			t.Fatalf("capabilities of %s at %s = %d %s", location, version, r.Status, r.Raw)
		}
		return r
	}
	tiers := []string{"Burstable", "GeneralPurpose", "MemoryOptimized"}

	// The schema of each version, as a client would decode it: (tier → SKUs, versions, disk
	// sizes in MB, default tier), geo-backup support, and supportedFeatures when the version has it.
	type decoded struct {
		skus, versions map[string][]string
		storageMB      map[string][]int64
		geo            bool
		features       map[string]string
	}
	v4 := func(t *testing.T, location, version string) decoded {
		c, err := armpostgresqlflexibleservers4.NewLocationBasedCapabilitiesClient(sub, cred, sdkAt(d, version))
		if err != nil {
			t.Fatal(err)
		}
		var caps []*armpostgresqlflexibleservers4.FlexibleServerCapability
		for p := c.NewExecutePager(location, nil); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("v4 at %s: %v", version, err)
			}
			caps = append(caps, page.Value...)
		}
		if len(caps) != 1 {
			t.Fatalf("v4 at %s: %d capabilities", version, len(caps))
		}
		out := decoded{skus: map[string][]string{}, versions: map[string][]string{}, storageMB: map[string][]int64{}}
		out.geo = *caps[0].GeoBackupSupported == armpostgresqlflexibleservers4.GeoBackupSupportedEnumEnabled
		for _, e := range caps[0].SupportedServerEditions {
			for _, s := range e.SupportedServerSKUs {
				out.skus[*e.Name] = append(out.skus[*e.Name], *s.Name)
			}
			for _, m := range e.SupportedStorageEditions[0].SupportedStorageMb {
				out.storageMB[*e.Name] = append(out.storageMB[*e.Name], *m.StorageSizeMb)
			}
			for _, v := range caps[0].SupportedServerVersions {
				out.versions[*e.Name] = append(out.versions[*e.Name], *v.Name)
			}
		}
		return out
	}
	v5 := func(t *testing.T, location, version string) decoded {
		c, err := armpostgresqlflexibleservers.NewCapabilitiesByLocationClient(sub, cred, sdkAt(d, version))
		if err != nil {
			t.Fatal(err)
		}
		var caps []*armpostgresqlflexibleservers.Capability
		for p := c.NewListPager(location, nil); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("v5 at %s: %v", version, err)
			}
			caps = append(caps, page.Value...)
		}
		if len(caps) != 1 {
			t.Fatalf("v5 at %s: %d capabilities", version, len(caps))
		}
		out := decoded{skus: map[string][]string{}, versions: map[string][]string{}, storageMB: map[string][]int64{}, features: map[string]string{}}
		out.geo = *caps[0].GeoBackupSupported == armpostgresqlflexibleservers.GeographicallyRedundantBackupSupportEnabled
		for _, e := range caps[0].SupportedServerEditions {
			for _, s := range e.SupportedServerSKUs {
				out.skus[*e.Name] = append(out.skus[*e.Name], *s.Name)
			}
			for _, m := range e.SupportedStorageEditions[0].SupportedStorageMb {
				out.storageMB[*e.Name] = append(out.storageMB[*e.Name], *m.StorageSizeMb)
			}
			for _, v := range caps[0].SupportedServerVersions {
				out.versions[*e.Name] = append(out.versions[*e.Name], *v.Name)
			}
		}
		for _, f := range caps[0].SupportedFeatures {
			out.features[*f.Name] = string(*f.Status)
		}
		return out
	}
	// az245 decodes with az 2.45's own code, and runs the validators of a create with the
	// seed's choices (GeneralPurpose Standard_D2s_v3, 128 GiB, version 15, geo-redundant backup).
	az245 := func(t *testing.T, location, version string) decoded {
		body := raw(t, location, version).Raw
		res := runAz245(t, "az245_capabilities.py", body, "GeneralPurpose", "Standard_D2s_v3", "128", "15", "Enabled", "Disabled")
		out := decoded{skus: map[string][]string{}, versions: map[string][]string{}, storageMB: map[string][]int64{}}
		out.geo = res["geo_backup_supported"] == true
		if res["single_az"] != true {
			t.Errorf("az 2.45 reads single_az = %v: pgflex offers no zone-redundant HA", res["single_az"])
		}
		for tier, v := range res["tiers"].(map[string]any) {
			m := v.(map[string]any)
			for _, s := range m["skus"].([]any) {
				out.skus[tier] = append(out.skus[tier], s.(string))
			}
			for _, s := range m["versions"].([]any) {
				out.versions[tier] = append(out.versions[tier], s.(string))
			}
			for _, s := range m["storage_sizes"].([]any) {
				out.storageMB[tier] = append(out.storageMB[tier], int64(s.(float64))*1024)
			}
		}
		val := res["validators"].(map[string]any)
		for _, name := range []string{"tier", "sku", "storage", "version", "ha"} {
			if val[name] != "ok" {
				t.Errorf("az 2.45's %s validator refuses the seed's create in %s: %v", name, location, val[name])
			}
		}
		wantGeo := "ok"
		if !out.geo {
			wantGeo = "The region of the server does not support geo-restore feature."
		}
		if val["geo"] != wantGeo {
			t.Errorf("az 2.45's geo-redundant backup validator in %s: %v, want %q", location, val["geo"], wantGeo)
		}
		return out
	}

	cases := []struct {
		version string
		decode  func(*testing.T, string, string) decoded
		// schema is the top-level list key that only this schema has; features: supportedFeatures.
		schema   string
		features bool
	}{
		{"2022-12-01", az245, "supportedFlexibleServerEditions", false},
		{"2023-03-01-preview", v4, "supportedServerEditions", false},
		{"2023-06-01-preview", v4, "supportedServerEditions", false},
		{"2023-12-01-preview", v4, "supportedServerEditions", false},
		{"2024-03-01-preview", v4, "supportedServerEditions", false},
		{"2024-08-01", v4, "supportedServerEditions", false},
		{"2024-11-01-preview", v4, "supportedServerEditions", false},
		{"2025-01-01-preview", v5, "supportedServerEditions", true},
		{"2025-08-01", v5, "supportedServerEditions", true},
	}
	for _, c := range cases {
		t.Run(c.version, func(t *testing.T) {
			for _, loc := range []struct {
				name string
				geo  bool
			}{{"eastus", true}, {"israelcentral", false}} {
				got := c.decode(t, loc.name, c.version)
				if got.geo != loc.geo {
					t.Errorf("%s: geo-redundant backup supported = %v, want %v", loc.name, got.geo, loc.geo)
				}
				for _, tier := range tiers {
					if !slices.Contains(got.versions[tier], "15") {
						t.Errorf("%s %s: versions %v lack 15", loc.name, tier, got.versions[tier])
					}
					if !slices.Contains(got.storageMB[tier], 131072) || !slices.Contains(got.storageMB[tier], 32767*1024) {
						t.Errorf("%s %s: disk sizes %v", loc.name, tier, got.storageMB[tier])
					}
				}
				if !slices.Contains(got.skus["Burstable"], "Standard_B1ms") || !slices.Contains(got.skus["GeneralPurpose"], "Standard_D2s_v3") ||
					!slices.Contains(got.skus["MemoryOptimized"], "Standard_E2s_v3") || slices.Contains(got.skus["Burstable"], "Standard_D2s_v3") {
					t.Errorf("%s: SKUs by tier %v", loc.name, got.skus)
				}
				if c.features {
					want := map[bool]string{true: "Enabled", false: "Disabled"}[loc.geo]
					if got.features["GeoBackup"] != want || got.features["ZoneRedundantHa"] != "Disabled" {
						t.Errorf("%s: supportedFeatures %v", loc.name, got.features)
					}
				}
			}
			// Nothing of the other schema leaks into this one.
			r := raw(t, "eastus", c.version)
			value := r.Body["value"].([]any)[0].(map[string]any)
			for _, key := range []string{"supportedFlexibleServerEditions", "supportedServerEditions"} {
				if _, has := value[key]; has != (key == c.schema) {
					t.Errorf("%s present = %v at %s", key, has, c.version)
				}
			}
			if _, has := value["supportedFeatures"]; has != c.features {
				t.Errorf("supportedFeatures present = %v at %s", has, c.version)
			}
			if c.version == "2022-12-01" {
				if _, isBool := value["geoBackupSupported"].(bool); !isBool || value["zone"] != "none" {
					t.Errorf("2022-12-01 capability: geoBackupSupported %#v zone %#v", value["geoBackupSupported"], value["zone"])
				}
			} else if _, isString := value["geoBackupSupported"].(string); !isString {
				t.Errorf("%s: geoBackupSupported %#v is not Enabled/Disabled", c.version, value["geoBackupSupported"])
			}
		})
	}

	// The per-server capabilities exist from 2023-03-01-preview: a missing server is 404 there,
	// and 2022-12-01 has no such operation.
	path := serverPath(d, "rg-none", "nosuch") + "/capabilities?api-version="
	if r := d.ARM(t, http.MethodGet, path+"2022-12-01", nil); r.Status != 400 || !strings.Contains(string(r.Raw), "NoRegisteredProviderFound") {
		t.Errorf("server capabilities at 2022-12-01 = %d %s", r.Status, r.Raw)
	}
	if r := d.ARM(t, http.MethodGet, path+"2024-08-01", nil); r.Status != 404 {
		t.Errorf("server capabilities of a missing server = %d %s", r.Status, r.Raw)
	}
	// On-demand backups exist from 2024-03-01-preview; before, backups are read-only.
	backup := serverPath(d, "rg-none", "nosuch") + "/backups/b1?api-version="
	for _, v := range []string{"2022-12-01", "2023-12-01-preview"} {
		for _, m := range []string{http.MethodPut, http.MethodDelete} {
			if r := d.ARM(t, m, backup+v, nil); r.Status != 400 || r.ErrorCode() != "NoRegisteredProviderFound" {
				t.Errorf("%s backup at %s = %d %s", m, v, r.Status, r.Raw)
			}
		}
	}
	if r := d.ARM(t, http.MethodPut, backup+"2024-03-01-preview", nil); r.Status != 404 {
		t.Errorf("PUT backup of a missing server at 2024-03-01-preview = %d %s", r.Status, r.Raw)
	}
}
