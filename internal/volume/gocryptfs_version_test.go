package volume

import "testing"

func TestGocryptfsVersionOK(t *testing.T) {
	for _, tc := range []struct {
		out     string
		version string
		ok      bool
	}{
		{"gocryptfs v2.4.0 without_openssl; go-fuse v2.3.0; 0000-00-00 go1.26.8 linux/amd64\n", "2.4", true},
		{"gocryptfs v2.5.1; go-fuse v2.5.0; 2025-01-01 go1.23 linux/amd64", "2.5", true},
		{"gocryptfs v3.0.0; go-fuse v2.6.0", "3.0", true},
		{"gocryptfs 2.3; go-fuse 2.1.0+git20220822.58a7e14; 2023-04-09 go1.19.8 linux/amd64\n", "2.3", false},
		{"gocryptfs v1.8.0; go-fuse v2.0.3", "1.8", false},
		{"something else", "something else", false},
	} {
		v, ok := gocryptfsVersionOK(tc.out)
		if v != tc.version || ok != tc.ok {
			t.Errorf("gocryptfsVersionOK(%q) = %q, %v; want %q, %v", tc.out, v, ok, tc.version, tc.ok)
		}
	}
}
