package daemon

import (
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/pgrouter"
)

// TestStateRefusal: only a server whose PostgreSQL may be up is connected; every other state
// is refused with cannot_connect_now (57P03, "retry later" to drivers and pools) and words
// that say why, none of which reveals more than the state (not StateReason, which may name
// keys).
func TestStateRefusal(t *testing.T) {
	tests := []struct {
		state string
		want  string // "" = connected
	}{
		{flexserver.StateReady, ""},
		{flexserver.StateStarting, ""},
		{flexserver.StateRestarting, ""},
		{flexserver.StateUpdating, ""},
		{flexserver.StateStopped, `server "s1" is stopped`},
		{flexserver.StateStopping, `server "s1" is stopped`},
		{flexserver.StateProvisioning, `server "s1" is being created`},
		{flexserver.StateDropping, `server "s1" is being deleted`},
		{flexserver.StateInaccessible, `server "s1" is inaccessible`},
		{"SomethingNew", `server "s1" is not accepting connections (state somethingnew)`},
	}
	for _, tt := range tests {
		ref := stateRefusal("s1", tt.state)
		if tt.want == "" {
			if ref != nil {
				t.Errorf("%s: refused (%v), want connected", tt.state, ref)
			}
			continue
		}
		if ref == nil || ref.Message != tt.want || ref.Code != pgrouter.CodeCannotConnect {
			t.Errorf("%s: %+v, want %q with 57P03", tt.state, ref, tt.want)
		}
		if ref != nil && strings.Contains(strings.ToLower(ref.Hint), "key uri") {
			t.Errorf("%s: the hint names a key: %q", tt.state, ref.Hint)
		}
	}
}
