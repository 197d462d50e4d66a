package backup

import (
	"bytes"
	"context"
	"os"
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
	conf := filepath.Join(dir, "pgbackrest.conf")
	if err := os.WriteFile(conf, []byte("[global]\nrepo1-path=/r\nrepo1-cipher-type=aes-256-cbc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--socket=" + filepath.Join(dir, "none.sock"), "--stanza=s1", "--config=" + conf}
	tests := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"push", append(append([]string{opArchivePush}, common...), "pg_wal/000000010000000000000001"), exitRetry, "passphrase service unavailable"},
		{"get", append(append([]string{opArchiveGet}, common...), "000000010000000000000001", "pg_wal/RECOVERYXLOG"), exitAbort, "passphrase service unavailable"},
		{"push without WAL", append([]string{opArchivePush}, common...), exitRetry, "want 1 WAL argument"},
		{"get with one argument", append(append([]string{opArchiveGet}, common...), "x"), exitAbort, "want 2 WAL argument"},
		{"bad stanza", []string{opArchivePush, "--socket=/s", "--config=/c", "--stanza=a/b", "p"}, exitRetry, "stanza name"},
		{"no socket", []string{opArchivePush, "--config=/c", "--stanza=s1", "p"}, exitRetry, "--socket and --config are required"},
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

func TestConfiguredRepos(t *testing.T) {
	tests := []struct {
		name    string
		conf    string
		want    map[int]bool
		wantErr bool
	}{
		{"two encrypted", "[global]\nrepo1-path=/a\nrepo1-cipher-type=aes-256-cbc\nrepo2-path=/b\nrepo2-cipher-type=aes-256-cbc\n", map[int]bool{1: true, 2: true}, false},
		{"repo 2 paused", "[global]\nrepo1-path=/a\nrepo1-cipher-type=aes-256-cbc\n", map[int]bool{1: true}, false},
		{"plaintext baseline", "[global]\nrepo1-path=/a\nrepo1-cipher-type=none\n", map[int]bool{1: false}, false},
		{"none", "[global]\nlock-path=/l\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.conf")
			if err := os.WriteFile(p, []byte(tt.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := configuredRepos(p)
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	if _, err := configuredRepos(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing configuration was accepted")
	}
}
