package resources

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/store"
)

func TestParseGenericFilter(t *testing.T) {
	vault := GenericResource{ID: "/subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/v1", Name: "v1",
		Type: "Microsoft.KeyVault/vaults", Location: "eastus"}
	for _, c := range []struct {
		filter    string
		ok, match bool
	}{
		{"resourceType eq 'Microsoft.KeyVault/vaults'", true, true},
		{"resourceType eq 'microsoft.keyvault/VAULTS'", true, true},
		{"resourceType eq 'Microsoft.KeyVault/managedHSMs'", true, false},
		{"resourceGroup eq 'rg'", true, true},
		{"resourceGroup eq 'other'", true, false},
		{"resourceGroup eq 'rg' and resourceType eq 'Microsoft.KeyVault/vaults'", true, true},
		{"resourceGroup eq 'rg' AND name eq 'v2'", true, false},
		{"location eq 'eastus' and name eq 'V1'", true, true},
		{"tagName eq 'env'", false, false},
		{"substringof('v', name)", false, false},
		{"resourceType eq Microsoft.KeyVault/vaults", false, false},
		{"resourceType eq 'a' or name eq 'v1'", false, false},
	} {
		m, ok := parseGenericFilter(c.filter)
		if ok != c.ok || (ok && m(vault) != c.match) {
			t.Errorf("%q: ok %v (want %v), match %v (want %v)", c.filter, ok, c.ok, ok && m(vault), c.match)
		}
	}
}

// TestEchoFilter: an error repeats at most maxEchoedFilter characters of a $filter, cut on a
// character boundary and marked as cut.
func TestEchoFilter(t *testing.T) {
	a200 := strings.Repeat("a", 200)
	e200 := strings.Repeat("é", 200) // two bytes each: a byte count would cut one in half
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"short", "name eq 'x'", "name eq 'x'"},
		{"exactly the limit", a200, a200},
		{"one over", a200 + "b", a200 + "…"},
		{"far over", a200 + strings.Repeat("b", 10000), a200 + "…"},
		{"multibyte at the limit", e200, e200},
		{"multibyte over", e200 + "é", e200 + "…"},
		{"mixed", strings.Repeat("a", 199) + "日本語", strings.Repeat("a", 199) + "日…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := echoFilter(c.in)
			if got != c.want {
				t.Fatalf("echoFilter = %q, want %q", got, c.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("echoFilter cut a character: %q", got)
			}
		})
	}
}

// TestInvalidFilterEchoIsBounded: the InvalidFilterInQueryString message repeats a long
// $filter only up to the limit.
func TestInvalidFilterEchoIsBounded(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	res := New(st, arm.NewOperations(context.Background(), st, log), log)
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		return PutSubscription(tx, &Subscription{ID: "sub", DisplayName: "s", TenantID: "t", State: "Enabled"})
	}); err != nil {
		t.Fatal(err)
	}
	rt := arm.NewRouter(func(*http.Request) (arm.Principal, error) { return arm.Principal{Admin: true}, nil }, log)
	res.RegisterRoutes(rt)
	for _, c := range []struct {
		name, filter, echoed string
	}{
		{"short", "tagName eq 'env'", "tagName eq 'env'"},
		{"long", "tagName eq '" + strings.Repeat("x", 5000) + "'", "tagName eq '" + strings.Repeat("x", 200-len("tagName eq '")) + "…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet,
				"/subscriptions/sub/resources?api-version=2021-04-01&$filter="+url.QueryEscape(c.filter), nil))
			var body arm.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
				t.Fatalf("%d, no ARM error: %s", w.Code, w.Body)
			}
			want := "Invalid $filter '" + c.echoed + "' specified in the query string."
			if w.Code != http.StatusBadRequest || body.Error.Code != "InvalidFilterInQueryString" || body.Error.Message != want {
				t.Fatalf("%d %s: %q, want %q", w.Code, body.Error.Code, body.Error.Message, want)
			}
		})
	}
}
