package backup

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

type exitStatus int

func (e exitStatus) ExitCode() int { return int(e) }

func TestParseError(t *testing.T) {
	exitErr := &exec.ExitError{}
	secret := []byte("Zx9-secret-passphrase")
	tests := []struct {
		name     string
		stderr   string
		exit     int
		wantCode int
		wantMsg  string
	}{
		{"coded error with hints", "WARN: something\nERROR: [037]: backup command requires option: repo2-cipher-pass\n       HINT: set it\nafter\n",
			37, 37, "backup command requires option: repo2-cipher-pass HINT: set it"},
		{"assert", "ASSERT: [025]: bad thing\n", 25, 25, "bad thing"},
		{"no code", "something odd happened\n", 3, 3, "something odd happened"},
		{"empty", "", 9, 9, "<exit>"},
		{"secret echoed", "ERROR: [029]: cipher " + string(secret) + " failed\n", 29, 29, "cipher <redacted> failed"},
		{"noise", "ERROR: [095]: line 1: ok\x01\xfe\xffjunk\n", 95, 95, "line 1: ok<unreadable>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parseError("backup", []byte(tt.stderr), exitStatus(tt.exit), exitErr, Passphrases{1: secret})
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("not an *Error: %v", err)
			}
			want := tt.wantMsg
			if want == "<exit>" {
				want = exitErr.Error()
			}
			if pe.Code != tt.wantCode || pe.Message != want || pe.Command != "backup" {
				t.Errorf("got %+v, want code %d message %q", pe, tt.wantCode, want)
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("error holds the secret: %v", err)
			}
		})
	}
	if err := parseError("info", nil, exitStatus(0), errors.New("exec: not found"), nil); err == nil || errors.As(err, new(*Error)) {
		t.Errorf("a command that did not run: %v", err)
	}
}

func TestCipherEnv(t *testing.T) {
	pp := Passphrases{1: []byte("p1"), 2: []byte("p2")}
	tests := []struct {
		name    string
		repos   map[int]bool
		pp      Passphrases
		want    []string
		wantErr bool
	}{
		{"both", map[int]bool{2: true, 1: true}, pp, []string{"PGBACKREST_REPO1_CIPHER_PASS=p1", "PGBACKREST_REPO2_CIPHER_PASS=p2"}, false},
		{"only configured ones", map[int]bool{1: true}, pp, []string{"PGBACKREST_REPO1_CIPHER_PASS=p1"}, false},
		{"plaintext repo needs none", map[int]bool{1: false}, nil, nil, false},
		{"missing passphrase", map[int]bool{1: true, 2: true}, Passphrases{1: []byte("p1")}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cipherEnv(nil, tt.repos, tt.pp)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "no passphrase for repository 2") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("env %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScrub(t *testing.T) {
	long := strings.Repeat("é", 1500) // 3000 bytes
	tests := []struct {
		name, in, want string
	}{
		{"plain", "unable to open file", "unable to open file"},
		{"lines joined", "first\n  HINT: second\n\n", "first HINT: second"},
		{"secret", "pass=s3cr3t here", "pass=<redacted> here"},
		{"control byte cuts the line", "line 1: ab\x07cd\nnext", "line 1: ab<unreadable> next"},
		{"invalid utf-8 cuts the line", "x \xff\xfe y", "x <unreadable>"},
		{"tab kept", "a\tb", "a\tb"},
		{"long, cut on a rune", long, long[:maxMessage] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scrub(tt.in, Passphrases{1: []byte("s3cr3t")})
			if got != tt.want {
				t.Errorf("scrub = %q, want %q", got, tt.want)
			}
		})
	}
}
