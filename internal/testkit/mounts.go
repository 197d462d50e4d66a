package testkit

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Point  string
	FSType string
	Source string
}

// Mounts reads the kernel's mount table.
func Mounts(t testing.TB) []Mount {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		m := Mount{Point: f[4]}
		for i, x := range f {
			if x == "-" && i+2 < len(f) {
				m.FSType, m.Source = f[i+1], f[i+2]
				break
			}
		}
		out = append(out, m)
	}
	return out
}

// MountsUnder lists the mount points below dir.
func MountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range Mounts(t) {
		if strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	return out
}

// Mounted reports whether dir is a mount point.
func Mounted(t testing.TB, dir string) bool {
	t.Helper()
	for _, m := range Mounts(t) {
		if m.Point == dir {
			return true
		}
	}
	return false
}

// TokenOID returns the oid claim of a JWT (its signature unchecked: the test's own token).
func TokenOID(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		OID string `json:"oid"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.OID == "" {
		t.Fatalf("no oid in the token: %v", err)
	}
	return c.OID
}

// Eventually polls cond until it returns nil, failing t with what and cond's last error if
// that does not happen within timeout. It is how a test waits for evidence, never a sleep.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
