package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/azcred"
)

// ARMResponse is a raw ARM answer.
type ARMResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// ErrorCode is the ARM error code of the answer, if any.
func (r ARMResponse) ErrorCode() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		c, _ := e["code"].(string)
		return c
	}
	return ""
}

// ErrorMessage is the ARM error message of the answer, if any.
func (r ARMResponse) ErrorMessage() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		m, _ := e["message"].(string)
		return m
	}
	return ""
}

// Token gets a token for scope as the administrator.
func (d *Daemon) Token(t testing.TB, scope string) string {
	t.Helper()
	p := d.Profile()
	hc, err := azcred.HTTPClient([]byte(p.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.PostForm(p.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ClientID},
		"client_secret": {p.ClientSecret}, "scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if body.AccessToken == "" {
		t.Fatalf("no token for %s (status %d)", scope, resp.StatusCode)
	}
	return body.AccessToken
}

// Do sends a raw request to url (absolute, or a path on the daemon) with a bearer token
// (empty: none) and a JSON body (nil: none; []byte: sent as is, for malformed bodies).
func (d *Daemon) Do(t testing.TB, method, target, token string, body any) ARMResponse {
	t.Helper()
	p := d.Profile()
	if strings.HasPrefix(target, "/") {
		target = p.Endpoint + target
	}
	hc, err := azcred.HTTPClient([]byte(p.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if raw, ok := body.([]byte); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	out := ARMResponse{Status: resp.StatusCode, Header: resp.Header}
	out.Raw, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(out.Raw, &out.Body)
	return out
}

// ARM sends a request to the daemon's ARM API as the administrator.
func (d *Daemon) ARM(t testing.TB, method, path string, body any) ARMResponse {
	t.Helper()
	return d.Do(t, method, path, d.Token(t, "https://management.azure.com/.default"), body)
}

// WaitOperation polls an Azure-AsyncOperation URL until the operation ends and returns its
// final status body.
func (d *Daemon) WaitOperation(t testing.TB, asyncURL string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := d.ARM(t, http.MethodGet, asyncURL, nil)
		if s, _ := r.Body["status"].(string); s != "" && s != "InProgress" {
			return r.Body
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still running after %s: %s", asyncURL, timeout, r.Raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
