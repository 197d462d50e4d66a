package backup

import (
	"os"
	"testing"
)

// TestMain doubles as pgflex's archive helper: the end-to-end tests give
// PostgreSQL a copy of this test binary as archive_command and
// restore_command, exactly as cmd/pgflex wires RunHelper.
func TestMain(m *testing.M) {
	if code, ok := RunHelper(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
