package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestReadRequest(t *testing.T) {
	tests := []struct {
		in      string
		want    Request
		wantErr string
	}{
		{"pgflex-backup/1 archive-push s1\n", Request{Op: opArchivePush, Stanza: "s1"}, ""},
		{"pgflex-backup/1 archive-get 0e8c2d1a-7c55\n", Request{Op: opArchiveGet, Stanza: "0e8c2d1a-7c55"}, ""},
		{"pgflex-backup/2 archive-push s1\n", Request{}, "malformed"},
		{"pgflex-backup/1 backup s1\n", Request{}, "unknown operation"},
		{"pgflex-backup/1 archive-push ../s1\n", Request{}, "stanza name"},
		{"pgflex-backup/1 archive-push s1 extra\n", Request{}, "malformed"},
		{"pgflex-backup/1 archive-push s1", Request{}, "read"},
		{"pgflex-backup/1 archive-push " + strings.Repeat("s", 600) + "\n", Request{}, "read"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			got, err := readRequest(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("readRequest = %+v, %v", got, err)
			}
		})
	}
}

func TestReadAnswer(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[int]string
		wantErr string
	}{
		{"two repos", "ok 2\nrepo 1 p1\nrepo 2 p2\n", map[int]string{1: "p1", 2: "p2"}, ""},
		{"none", "ok 0\n", map[int]string{}, ""},
		{"refused", "refused peer uid 5 is not the PostgreSQL user of stanza s\n", nil, "refused: peer uid 5"},
		{"error", "error passphrases of stanza s are unavailable: key disabled\n", nil, "unavailable: key disabled"},
		{"garbage", "hello\n", nil, "malformed"},
		{"too many", "ok 3\n", nil, "malformed"},
		{"truncated", "ok 2\nrepo 1 p1\n", nil, "truncated"},
		{"repo 3", "ok 1\nrepo 3 p3\n", nil, "malformed"},
		{"no answer", "", nil, "no answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp, err := readAnswer(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(pp) != len(tt.want) {
				t.Fatalf("got %d passphrases", len(pp))
			}
			for k, v := range tt.want {
				if string(pp[k]) != v {
					t.Errorf("repo %d = %q, want %q", k, pp[k], v)
				}
			}
		})
	}
}

// TestPassphraseServerRefuses runs the server in-process and asks it as
// this test process, which is no PostgreSQL: every request is refused
// before any passphrase is looked up.
func TestPassphraseServerRefuses(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("the-passphrase-of-s1")
	var mu sync.Mutex
	var handed [][]byte
	hand := func() []byte {
		p := bytes.Clone(secret)
		mu.Lock()
		defer mu.Unlock()
		handed = append(handed, p)
		return p
	}
	owner := func(_ context.Context, stanza string) (Owner, error) {
		switch stanza {
		case "otheruid":
			return Owner{UID: uint32(os.Getuid() + 1), DataDir: dir}, nil
		case "sameuid":
			return Owner{UID: uint32(os.Getuid()), DataDir: dir}, nil
		case "storefails":
			return Owner{}, errors.New("state store: timeout")
		}
		return Owner{}, fmt.Errorf("%w: %s", ErrUnknownStanza, stanza)
	}
	asked := 0
	passphrases := func(_ context.Context, req Request) (Passphrases, error) {
		mu.Lock()
		asked++
		mu.Unlock()
		return Passphrases{1: hand()}, nil
	}
	var logs syncBuffer
	srv := &PassphraseServer{Path: filepath.Join(dir, "p.sock"), Owner: owner, Passphrases: passphrases, Logger: newTestLogger(&logs)}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	fi, err := os.Stat(srv.Path)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}

	tests := []struct{ stanza, want string }{
		{"otheruid", fmt.Sprintf("refused: peer uid %d is not the PostgreSQL user of stanza otheruid", os.Getuid())},
		{"sameuid", "is not run by the PostgreSQL of stanza sameuid: no postgres ancestor works in its data directory"},
		{"nosuch", "refused: unknown stanza nosuch"},
		{"storefails", "passphrase service: stanza storefails: state store: timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.stanza, func(t *testing.T) {
			pp, err := askPassphrases(ctx, srv.Path, opArchivePush, tt.stanza)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("askPassphrases = %v, %v; want %q", pp, err, tt.want)
			}
		})
	}
	// Serve returns once every request in flight is answered.
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(srv.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Keys are never touched for a peer that is not the owner.
	if asked != 0 || len(handed) != 0 {
		t.Errorf("passphrases looked up %d times for refused peers", asked)
	}
	if bytes.Contains(logs.Bytes(), secret) {
		t.Error("the passphrase reached the log")
	}
	if !strings.Contains(string(logs.Bytes()), "backup passphrase request refused") {
		t.Errorf("refusals not logged: %s", logs.Bytes())
	}
}

func TestDescendsFromPostgres(t *testing.T) {
	if err := descendsFromPostgres(os.Getpid(), t.TempDir()); err == nil {
		t.Error("the test process passed for a postgres")
	}
	if err := descendsFromPostgres(os.Getpid(), ""); err == nil {
		t.Error("an empty data directory was accepted")
	}
	if got, err := parentPID(os.Getpid()); err != nil || got != os.Getppid() {
		t.Errorf("parentPID = %d, %v; want %d", got, err, os.Getppid())
	}
}
