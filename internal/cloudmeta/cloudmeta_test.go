package cloudmeta

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
)

var meta = Metadata{
	ResourceManager: "https://127.0.0.1:8443/",
	LoginEndpoint:   "https://127.0.0.1:8443/adfs",
	Audiences:       []string{"https://management.core.windows.net/", "https://management.azure.com/"},
	MicrosoftGraph:  "https://graph.localhost:8443/",
	KeyVaultDNS:     "vault.localhost:8443",
	ManagedHSMDNS:   "managedhsm.localhost:8443",
	PostgresDNS:     "postgres.localhost",
}

func get(t *testing.T, path string) (int, any) {
	t.Helper()
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) {
		return arm.Principal{}, arm.Errorf(401, "AuthenticationFailed", "no")
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	meta.RegisterRoutes(rt)
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s: %d %q", path, w.Code, w.Body.String())
	}
	return w.Code, v
}

// TestMetadataRoute: the document needs no token and comes in the shape of the api-version asked.
func TestMetadataRoute(t *testing.T) {
	status, v := get(t, "/metadata/endpoints?api-version=2015-01-01")
	stack, _ := v.(map[string]any)
	if status != 200 || stack["graphEndpoint"] != meta.MicrosoftGraph || stack["authentication"].(map[string]any)["loginEndpoint"] != meta.LoginEndpoint {
		t.Fatalf("2015-01-01: %d %v", status, v)
	}
	for _, ver := range []string{"2019-05-01", "2020-06-01", "2022-09-01"} {
		status, v := get(t, "/metadata/endpoints?api-version="+ver)
		list, _ := v.([]any)
		if status != 200 || len(list) != 1 || list[0].(map[string]any)["name"] != Name || list[0].(map[string]any)["resourceManager"] != meta.ResourceManager {
			t.Fatalf("%s: %d %v", ver, status, v)
		}
	}
	status, v = get(t, "/metadata/endpoints?api-version=2014-01-01")
	e, _ := v.(map[string]any)["error"].(map[string]any)
	if status != 400 || e["code"] != "InvalidApiVersionParameter" || !strings.Contains(e["message"].(string), "2022-09-01") {
		t.Fatalf("unknown api-version: %d %v", status, v)
	}
}

// TestCLIConfig: the conversion az cloud register reads, from the document the daemon publishes.
func TestCLIConfig(t *testing.T) {
	_, v := get(t, "/metadata/endpoints?api-version=2022-09-01")
	cloud := v.([]any)[0].(map[string]any)
	got, err := CLIConfig(cloud)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"endpoints": map[string]any{
			"resourceManager":                "https://127.0.0.1:8443/",
			"activeDirectory":                "https://127.0.0.1:8443/adfs",
			"activeDirectoryResourceId":      "https://management.core.windows.net/",
			"management":                     "https://management.core.windows.net/",
			"activeDirectoryGraphResourceId": "https://graph.localhost:8443/",
			"microsoftGraphResourceId":       "https://graph.localhost:8443/",
		},
		"suffixes": map[string]any{"keyvaultDns": ".vault.localhost:8443", "mhsmDns": ".managedhsm.localhost:8443", "postgresqlServerEndpoint": ".postgres.localhost"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CLIConfig = %v\nwant %v", got, want)
	}
	// A document without what az requires is refused, not turned into a half cloud.
	for _, drop := range []string{"resourceManager", "microsoftGraphResourceId", "authentication"} {
		c := map[string]any{}
		for k, v := range cloud {
			if k != drop {
				c[k] = v
			}
		}
		if _, err := CLIConfig(c); err == nil {
			t.Errorf("CLIConfig without %s succeeded", drop)
		}
	}
}
