package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseInfo(t *testing.T) {
	read := func(t *testing.T, name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("good_info_two_repos", func(t *testing.T) {
		in, err := parseInfo(read(t, "good_info_two_repos.json"))
		if err != nil {
			t.Fatal(err)
		}
		if in.Stanza != "s1564ecbb3be7" || len(in.Backups) != 3 || len(in.Archive) != 2 || len(in.Repos) != 2 {
			t.Fatalf("parsed %+v", in)
		}
		// Oldest first, whatever pgBackRest's order.
		want := []string{"20261126-222139F", "20261126-222148F", "20261126-222139F_20261126-222300I"}
		for i, b := range in.Backups {
			if b.Label != want[i] {
				t.Errorf("backup %d = %s, want %s", i, b.Label, want[i])
			}
		}
		b := in.Backups[0]
		if b.Repo != 1 || b.Type != TypeFull || b.Size != 23394375 || b.RepoSize != 4576336 ||
			b.WALStart != "000000010000000000000002" || b.LSNStop != "0/2000100" ||
			!b.Start.Equal(time.Unix(1795731699, 0)) || !b.Stop.Equal(time.Unix(1795731706, 0)) || b.Prior != "" {
			t.Errorf("backup 0 = %+v", b)
		}
		if incr := in.Backups[2]; incr.Type != TypeIncr || incr.Prior != "20261126-222139F" {
			t.Errorf("incr = %+v", incr)
		}
		if e, ok := in.EarliestRestoreDate(1); !ok || !e.Equal(time.Unix(1795731707, 0)) {
			t.Errorf("earliest repo 1 = %v %v", e, ok)
		}
		if e, ok := in.EarliestRestoreDate(2); !ok || !e.Equal(time.Unix(1795731715, 0)) {
			t.Errorf("earliest repo 2 = %v %v", e, ok)
		}
		if l, _ := in.Latest(1); l.Label != want[2] {
			t.Errorf("latest repo 1 = %s", l.Label)
		}
		for _, c := range []struct {
			at   time.Time
			want string
		}{
			{time.Unix(1795731706, 0), ""}, // its stop second: maybe not yet consistent
			{time.Unix(1795731707, 0), "20261126-222139F"},
			{time.Unix(1795731783, 0), "20261126-222139F"},
			{time.Unix(1795731784, 0), "20261126-222139F_20261126-222300I"},
		} {
			b, ok := in.latestBefore(1, c.at)
			if got := map[bool]string{true: b.Label}[ok]; got != c.want {
				t.Errorf("latestBefore(%v) = %q, want %q", c.at, got, c.want)
			}
		}
		if _, ok := in.EarliestRestoreDate(3); ok {
			t.Error("earliest restore date of a repository with no backup")
		}
	})

	t.Run("good_info_no_backups", func(t *testing.T) {
		in, err := parseInfo(read(t, "good_info_no_backups.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Backups) != 0 || in.Repos[0].Code != infoNoValidBackups {
			t.Errorf("parsed %+v", in)
		}
	})

	t.Run("good_info_wrong_passphrase", func(t *testing.T) {
		// Raw control bytes inside a JSON string: pgBackRest quoting the
		// noise of a wrongly decrypted file.
		in, err := parseInfo(read(t, "good_info_wrong_passphrase.json"))
		if err != nil {
			t.Fatal(err)
		}
		msg := scrub(in.Repos[0].Message, nil)
		if in.Repos[0].Code != 99 || !strings.Contains(msg, "unable to load info file") || !strings.Contains(msg, "<unreadable>") ||
			!strings.Contains(msg, "HINT: has a stanza-create been performed?") {
			t.Errorf("message %q", msg)
		}
	})

	for _, name := range []string{"fail_info_two_stanzas.json", "fail_info_unknown_type.json", "fail_info_not_json.json"} {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			if in, err := parseInfo(read(t, name)); err == nil {
				t.Errorf("parsed %+v", in)
			}
		})
	}
}
