package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pgflex/pgflex/internal/procfs"
)

func TestReadRequest(t *testing.T) {
	const seg = "000000010000000000000001"
	tests := []struct {
		in      string
		want    request
		wantErr string
	}{
		{"pgflex-backup/2 archive-push s1 " + seg + "\n", request{opArchivePush, "s1", seg}, ""},
		{"pgflex-backup/2 archive-get 0e8c2d1a-7c55 00000002.history\n", request{opArchiveGet, "0e8c2d1a-7c55", "00000002.history"}, ""},
		{"pgflex-backup/2 archive-push s1 " + seg + ".partial\n", request{opArchivePush, "s1", seg + ".partial"}, ""},
		{"pgflex-backup/2 archive-push s1 " + seg + ".00000028.backup\n", request{opArchivePush, "s1", seg + ".00000028.backup"}, ""},
		// Version 1 asked for passphrases: refused.
		{"pgflex-backup/1 archive-push s1\n", request{}, "not a pgflex-backup/2 request"},
		{"pgflex-backup/2 archive-push s1\n", request{}, "malformed"},
		{"pgflex-backup/2 backup s1 " + seg + "\n", request{}, "unknown operation"},
		{"pgflex-backup/2 archive-push ../s1 " + seg + "\n", request{}, "stanza name"},
		{"pgflex-backup/2 archive-push s1 ../../etc/passwd\n", request{}, "not a WAL file name"},
		{"pgflex-backup/2 archive-push s1 postgresql.conf\n", request{}, "not a WAL file name"},
		{"pgflex-backup/2 archive-push s1 " + seg + " extra\n", request{}, "malformed"},
		{"pgflex-backup/2 archive-push s1 " + seg, request{}, "read"},
		{"pgflex-backup/2 archive-push " + strings.Repeat("s", 600) + "\n", request{}, "read"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 50)], func(t *testing.T) {
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

func TestAnswerError(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ok", ""},
		{"refused uid 5 is not the PostgreSQL account of a server", "archive service refused: uid 5"},
		{"failed 82 archive-push timed out", "pgbackrest failed (exit 82): archive-push timed out"},
		{"failed x y", "malformed"},
		{"error state store: timeout", "archive service: state store: timeout"},
		{"hello", "malformed"},
	}
	for _, tt := range tests {
		err := answerError(tt.in)
		if tt.want == "" {
			if err != nil {
				t.Errorf("answerError(%q) = %v", tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("answerError(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestArchiveServer runs the server in-process and asks it as this test
// process, which plays the server's PostgreSQL when Target names this
// process as the postmaster, and an impostor otherwise.
func TestArchiveServer(t *testing.T) {
	dir := t.TempDir()
	self, err := procfs.IdentityOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Another live process: a postmaster this test process does not descend from.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	otherID, err := procfs.IdentityOf(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	uid := uint32(os.Getuid())

	var mu sync.Mutex
	var target func() (ArchiveTarget, error)
	var pushed []string
	srv := &ArchiveServer{Path: filepath.Join(dir, "a.sock"), Logger: newTestLogger(io.Discard),
		Target: func(_ context.Context, peerUID uint32) (ArchiveTarget, error) {
			mu.Lock()
			defer mu.Unlock()
			if peerUID != uid {
				return ArchiveTarget{}, ErrUnknownStanza
			}
			return target()
		}}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	if fi, err := os.Stat(srv.Path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}

	const seg = "000000010000000000000007"
	push := func(_ context.Context, name string, peer Peer) error {
		if peer.PID != os.Getpid() || peer.UID != uid {
			return fmt.Errorf("peer %+v", peer)
		}
		mu.Lock()
		pushed = append(pushed, name)
		mu.Unlock()
		return nil
	}
	get := func(_ context.Context, name string, _ Peer) (*os.File, error) {
		if name != seg {
			return nil, ErrNotInArchive
		}
		p := filepath.Join(dir, "fetched")
		if err := os.WriteFile(p, []byte("wal bytes of "+name), 0o600); err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		os.Remove(p)
		return f, err
	}
	ok := ArchiveTarget{Stanza: "s1", UID: uid, Postmaster: self, Push: push, Get: get}
	tests := []struct {
		name   string
		target func() (ArchiveTarget, error)
		op     string
		stanza string
		wal    string
		want   string // "" for success
	}{
		{"no server runs as this uid", func() (ArchiveTarget, error) { return ArchiveTarget{}, fmt.Errorf("%w", ErrUnknownStanza) }, opArchivePush, "s1", seg, "is not the PostgreSQL account of a server"},
		{"another server's stanza", func() (ArchiveTarget, error) { return ok, nil }, opArchivePush, "s2", seg, "which is not its server's"},
		{"not run by the server's postmaster", func() (ArchiveTarget, error) {
			t := ok
			t.Postmaster = otherID
			return t, nil
		}, opArchivePush, "s1", seg, "does not descend from the postmaster"},
		{"the postmaster's PID, another start time", func() (ArchiveTarget, error) {
			t := ok
			t.Postmaster.StartTime++
			return t, nil
		}, opArchivePush, "s1", seg, "does not descend from the postmaster"},
		{"state store fails", func() (ArchiveTarget, error) { return ArchiveTarget{}, errors.New("state store: timeout") }, opArchivePush, "s1", seg, "archive service: state store: timeout"},
		{"push fails in pgBackRest", func() (ArchiveTarget, error) {
			t := ok
			t.Push = func(context.Context, string, Peer) error {
				return &Error{Command: "archive-push", Code: 45, Message: "repo full"}
			}
			return t, nil
		}, opArchivePush, "s1", seg, "pgbackrest failed (exit 45)"},
		{"a socket that does not archive", func() (ArchiveTarget, error) {
			t := ok
			t.Push = nil
			return t, nil
		}, opArchivePush, "s1", seg, "does not archive"},
		{"push", func() (ArchiveTarget, error) { return ok, nil }, opArchivePush, "s1", seg, ""},
		{"get", func() (ArchiveTarget, error) { return ok, nil }, opArchiveGet, "s1", seg, ""},
		{"get of a file not in the archive", func() (ArchiveTarget, error) { return ok, nil }, opArchiveGet, "s1", "000000010000000000000099", "not in the archive"},
		{"get as an impostor", func() (ArchiveTarget, error) {
			t := ok
			t.Postmaster = otherID
			return t, nil
		}, opArchiveGet, "s1", seg, "does not descend from the postmaster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			target, pushed = tt.target, nil
			mu.Unlock()
			var err error
			if tt.op == opArchivePush {
				err = askPush(ctx, srv.Path, tt.stanza, tt.wal)
			} else {
				var f *os.File
				f, err = askGet(ctx, srv.Path, tt.stanza, tt.wal)
				if err == nil {
					b, rerr := io.ReadAll(f)
					f.Close()
					if rerr != nil || string(b) != "wal bytes of "+tt.wal {
						t.Errorf("fetched %q, %v", b, rerr)
					}
				}
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if wantPush := tt.want == "" && tt.op == opArchivePush; wantPush != (len(pushed) == 1) {
				t.Errorf("pushed %v", pushed)
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(srv.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}
