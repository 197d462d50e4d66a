package arm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestBodyLimit: content over 4 MB is refused with 413 and ARM's error body, whether the
// client announces its length or streams it chunked; content within the limit reaches the
// handler whole.
func TestRequestBodyLimit(t *testing.T) {
	var got []byte
	h := LimitBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &Request{Request: r}
		var v any
		if err := req.Decode(&v); err != nil {
			ae := AsError(err)
			WriteJSON(w, ae.Status, ErrorBody{Error: ae})
			return
		}
		got, _ = json.Marshal(v)
		w.WriteHeader(http.StatusOK)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	body := func(n int) []byte { return []byte(`"` + strings.Repeat("a", n-2) + `"`) }
	tests := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"at the limit", MaxRequestBody, false, http.StatusOK},
		{"one byte over, announced", MaxRequestBody + 1, false, http.StatusRequestEntityTooLarge},
		{"one byte over, chunked", MaxRequestBody + 1, true, http.StatusRequestEntityTooLarge},
		{"far over, announced", 64 << 20, false, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			var rd io.Reader = bytes.NewReader(body(tt.size))
			if tt.chunked {
				rd = io.MultiReader(rd) // hides the length: sent chunked
			}
			req, err := http.NewRequest(http.MethodPut, srv.URL+"/x", rd)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusOK {
				if len(got) != tt.size {
					t.Errorf("the handler got %d bytes of %d", len(got), tt.size)
				}
				return
			}
			var eb ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
				t.Fatalf("error body: %v", err)
			}
			if eb.Error.Code != "RequestContentTooLarge" || eb.Error.Message != "The request content size exceeds the maximum size of 4 MB." {
				t.Errorf("error %+v", eb.Error)
			}
		})
	}
}
