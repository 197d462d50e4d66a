package backup

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunHelperIgnoresOtherCommands(t *testing.T) {
	for _, args := range [][]string{nil, {"serve"}, {"postgres", "flexible-server", "list"}} {
		if _, ok := RunHelper(args); ok {
			t.Errorf("RunHelper(%q) claimed the command", args)
		}
	}
}

// TestHelperDaemonDown: with no passphrase service, archive-push fails with
// a status PostgreSQL retries, and archive-get with one that stops
// recovery instead of promoting early.
func TestHelperDaemonDown(t *testing.T) {
	dir := t.TempDir()
	common := []string{"--socket=" + filepath.Join(dir, "none.sock"), "--stanza=s1", "--tool=pgbackrest"}
	tests := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"push", append(append([]string{opArchivePush}, common...), "pg_wal/000000010000000000000001"), exitRetry, "archive service unavailable"},
		{"get", append(append([]string{opArchiveGet}, common...), "000000010000000000000001", "pg_wal/RECOVERYXLOG"), exitAbort, "archive service unavailable"},
		{"push without WAL", append([]string{opArchivePush}, common...), exitRetry, "want 1 WAL argument"},
		{"push outside pg_wal", append(append([]string{opArchivePush}, common...), "../../etc/passwd"), exitRetry, "is not a file of pg_wal"},
		{"push of a non-WAL name", append(append([]string{opArchivePush}, common...), "pg_wal/postgresql.conf"), exitRetry, "is not a WAL file name"},
		{"get with one argument", append(append([]string{opArchiveGet}, common...), "x"), exitAbort, "want 2 WAL argument"},
		{"get of a non-WAL name", append(append([]string{opArchiveGet}, common...), "../x", "pg_wal/RECOVERYXLOG"), exitAbort, "is not a WAL file name"},
		{"bad stanza", []string{opArchivePush, "--socket=/s", "--stanza=a/b", "pg_wal/000000010000000000000001"}, exitRetry, "stanza name"},
		{"no socket", []string{opArchivePush, "--stanza=s1", "pg_wal/000000010000000000000001"}, exitRetry, "--socket is required"},
		{"unknown flag", []string{opArchivePush, "--passphrase=x", "p"}, exitRetry, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := runHelper(context.Background(), tt.args, &stderr); got != tt.want {
				t.Errorf("exit %d, want %d (%s)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.msg)
			}
		})
	}
}
