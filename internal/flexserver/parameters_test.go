package flexserver

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/postgres"
)

func TestNormalizeValue(t *testing.T) {
	tests := []struct {
		param, value, want string // want "" means refused
	}{
		{"enable_seqscan", "ON", "on"},
		{"enable_seqscan", "false", "off"},
		{"enable_seqscan", "maybe", ""},
		{"max_connections", "200", "200"},
		{"max_connections", " 200 ", "200"},
		{"max_connections", "24", ""},
		{"max_connections", "5001", ""},
		{"max_connections", "200MB", ""},
		{"work_mem", "65536", "65536"},
		{"work_mem", "63", ""},
		{"shared_buffers", "131072", "131072"}, // 1GB of the B1ms's 2GB
		{"shared_buffers", "131073", ""},
		{"log_min_duration_statement", "-1", "-1"},
		{"log_min_duration_statement", "250\nfsync = off", ""},
		{"random_page_cost", "1.1", "1.1"},
		{"random_page_cost", "NaN", ""},
		{"random_page_cost", "-1", ""},
		{"intervalstyle", "ISO_8601", "iso_8601"},
		{"intervalstyle", "nope", ""},
		{"search_path", `"$user", public`, `"$user", public`},
		{"search_path", "a\x00b", ""},
		{"application_name", strings.Repeat("x", 1025), ""},
		{"azure.extensions", " Citext, pg_trgm,citext ", "citext,pg_trgm"},
		{"azure.extensions", "plpython3u", ""},
	}
	for _, tt := range tests {
		p, ok := catalog()[tt.param]
		if !ok {
			t.Fatalf("%s is not in the catalog", tt.param)
		}
		got, err := normalizeValue(&Server{SKU: SKU{Name: "Standard_B1ms"}}, p, tt.value)
		if tt.want == "" {
			ae := arm.AsError(err)
			if ae == nil || ae.Status != http.StatusBadRequest || ae.Code != "InvalidParameterValue" ||
				!strings.HasPrefix(ae.Message, "Invalid value given for parameter "+tt.param+". Specify a valid parameter value.") {
				t.Errorf("%s=%q: %q, %v; want Azure's InvalidParameterValue", tt.param, tt.value, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s=%q: %q, %v; want %q", tt.param, tt.value, got, err, tt.want)
		}
	}
}

// TestReadOnlyParameters: what pgflex must keep is read-only, with a reason; what Azure lets
// users change is not; and nothing the API accepts is refused by the data plane's last check.
func TestReadOnlyParameters(t *testing.T) {
	for _, name := range []string{"fsync", "full_page_writes", "wal_level", "archive_command", "ssl", "ssl_ciphers",
		"shared_preload_libraries", "listen_addresses", "port", "data_directory", "hba_file", "log_directory",
		"logging_collector", "password_encryption", "dynamic_library_path", "max_wal_senders", "server_version",
		"debug_print_plan", "zero_damaged_pages", "unix_socket_directories", "temp_tablespaces"} {
		p, ok := catalog()[name]
		if !ok {
			t.Errorf("%s is not in the catalog", name)
			continue
		}
		if readOnlyReason(p) == "" {
			t.Errorf("%s is settable", name)
		}
	}
	for _, name := range []string{"synchronous_commit", "max_connections", "work_mem", "log_min_duration_statement",
		"require_secure_transport", "shared_buffers", "timezone", "log_statement"} {
		if why := readOnlyReason(catalog()[name]); why != "" {
			t.Errorf("%s is read-only: %s", name, why)
		}
	}
	for name, p := range catalog() {
		if readOnlyReason(p) != "" || name == requireSecureTransport || name == azureExtensions {
			continue
		}
		if _, err := postgres.RenderUserConfig(map[string]string{name: p.Boot}); err != nil {
			t.Errorf("%s is settable through the API but the data plane refuses it: %v", name, err)
		}
	}
}

func TestAzureExtensions(t *testing.T) {
	p := catalog()[azureExtensions]
	srv := &Server{}
	if v, err := normalizeValue(srv, p, " "); err != nil || v != "" {
		t.Fatalf("empty list: %q %v", v, err)
	}
	if srv.extensions() != nil {
		t.Fatal("no override: not the default")
	}
	srv.Parameters = map[string]string{azureExtensions: ""}
	if got := srv.extensions(); got == nil || len(got) != 0 {
		t.Fatalf("empty override: %v, want an empty list", got)
	}
	srv.Parameters[azureExtensions] = "citext,pg_trgm"
	if got := srv.extensions(); strings.Join(got, " ") != "citext pg_trgm" || srv.effectiveParameters()[azureExtensions] != "" {
		t.Fatalf("override: %v %v", got, srv.effectiveParameters())
	}
}

func TestSKUDefaults(t *testing.T) {
	tests := []struct {
		sku            string
		maxConnections string
		sharedBuffers  string
		effectiveCache string
	}{
		{"Standard_B1ms", "50", "32768", "196608"},      // 2 GiB
		{"Standard_B2ms", "859", "32768", "786432"},     // 8 GiB
		{"Standard_D2s_v3", "859", "32768", "786432"},   // 8 GiB
		{"Standard_D4s_v3", "1718", "32768", "1572864"}, // 16 GiB
		{"Standard_E4s_v3", "3437", "32768", "3145728"}, // 32 GiB
	}
	for _, tt := range tests {
		srv := &Server{SKU: SKU{Name: tt.sku}}
		got := srv.effectiveParameters()
		if got["max_connections"] != tt.maxConnections || got["shared_buffers"] != tt.sharedBuffers || got["effective_cache_size"] != tt.effectiveCache {
			t.Errorf("%s: %v", tt.sku, got)
		}
	}
	srv := &Server{SKU: SKU{Name: "Standard_B1ms"}, Parameters: map[string]string{"max_connections": "80", requireSecureTransport: "off"}}
	if got := srv.effectiveParameters(); got["max_connections"] != "80" || got[requireSecureTransport] != "" || !srv.allowsPlaintext() {
		t.Errorf("overrides: %v", got)
	}
}

// TestSettableParametersAreReviewed: what users may set is an allow-list in effect. Every
// parameter the API lets a user set is in testdata/settable-parameters.txt, which a person
// reviewed (a parameter reaching host paths, such as extension_destdir, was found this way);
// a new PostgreSQL version, a new catalog entry or a changed rule fails here until someone
// decides: add it to the file, or make it read-only with its reason.
func TestSettableParametersAreReviewed(t *testing.T) {
	raw, err := os.ReadFile("testdata/settable-parameters.txt")
	if err != nil {
		t.Fatal(err)
	}
	reviewed := map[string]bool{}
	for _, n := range strings.Fields(string(raw)) {
		reviewed[n] = true
	}
	settable := map[string]bool{}
	for name, p := range catalog() {
		if readOnlyReason(p) == "" {
			settable[name] = true
			if !reviewed[name] {
				t.Errorf("%s (%s, %s) is settable but was never reviewed: add it to testdata/settable-parameters.txt or make it read-only", name, p.Context, p.Category)
			}
		}
	}
	for name := range reviewed {
		if !settable[name] {
			t.Errorf("%s is in testdata/settable-parameters.txt but is read-only or unknown", name)
		}
	}
	// The parameters the review refused stay refused.
	for _, name := range []string{"extension_destdir", "synchronous_standby_names", "recovery_init_sync_method"} {
		if settable[name] {
			t.Errorf("%s is settable", name)
		}
	}
	if len(settable) < 200 {
		t.Errorf("only %d settable parameters: the catalog did not load", len(settable))
	}
}
