package postgres

import (
	"strings"
	"testing"
)

func TestRenderUserConfig(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   string // a line of the output; "" when refused
	}{
		{"integer", map[string]string{"max_connections": "200"}, "max_connections = '200'\n"},
		{"quote", map[string]string{"search_path": "a', ssl = 'off"}, "search_path = 'a'', ssl = ''off'\n"},
		{"backslash", map[string]string{"application_name": `x\`}, `application_name = 'x\\'` + "\n"},
		{"newline", map[string]string{"search_path": "a\nssl = off"}, ""},
		{"protected", map[string]string{"fsync": "off"}, ""},
		{"include", map[string]string{"include": "/etc/passwd"}, ""},
		{"bad name", map[string]string{"a = 1\nb": "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := RenderUserConfig(tt.params)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted: %q", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tt.want) {
				t.Fatalf("got %q, want a line %q", b, tt.want)
			}
			if n := strings.Count(string(b), "\n"); n != 2 {
				t.Fatalf("%d lines in %q", n, b)
			}
		})
	}
}
