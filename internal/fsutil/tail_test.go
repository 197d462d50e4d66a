package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte("old line\nnew line one\nnew line two\n"), 0o600)
	tests := []struct {
		start, limit int64
		want         string
	}{
		{9, 100, "new line one\nnew line two"},
		{0, 13, "new line two"},
		{9, 13, "new line two"},
		{100, 10, ""},
	}
	for _, tc := range tests {
		if got := Tail(path, tc.start, tc.limit); got != tc.want {
			t.Errorf("Tail(%d, %d) = %q, want %q", tc.start, tc.limit, got, tc.want)
		}
	}
	if Tail(filepath.Join(t.TempDir(), "missing"), 0, 10) != "" {
		t.Error("a missing file must give the empty string")
	}
}
