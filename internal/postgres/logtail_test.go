package postgres

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRedactLogLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain line kept", `2026-12-07 18:00:00.000 UTC [42] FATAL:  could not locate required checkpoint record`,
			`2026-12-07 18:00:00.000 UTC [42] FATAL:  could not locate required checkpoint record`},
		{"password literal", `STATEMENT:  ALTER ROLE app PASSWORD 'hunter2-secret'`, `STATEMENT:  ALTER ROLE app PASSWORD '[redacted]'`},
		{"password literal lower case, doubled quote", `create role x login password 'it''s-secret' valid until 'infinity'`,
			`create role x login password '[redacted]' valid until 'infinity'`},
		{"verifier", `DETAIL: verifier SCRAM-SHA-256$4096:c2FsdHNhbHQ=$c3RvcmVka2V5:c2VydmVya2V5 stored`, `DETAIL: verifier [redacted] stored`},
		{"connection string", `could not connect: host=x user=u password=s3cr3t dbname=d`, `could not connect: host=x user=u password=[redacted] dbname=d`},
		{"quoted connection password", `conninfo 'host=x password='a b' port=5432'`, `conninfo 'host=x password=[redacted] port=5432'`},
		{"authentication failure kept", `FATAL:  password authentication failed for user "app"`, `FATAL:  password authentication failed for user "app"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactLogLine(tc.in); got != tc.want {
				t.Fatalf("RedactLogLine(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLogTail(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("OUTSIDE-SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, dir, rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("x", logTailBytes) + "\nfragment-end\nlast whole line\n"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		max   int
		want  []string
	}{
		{"no log directory", func(t *testing.T, dir string) {}, 10, nil},
		{"postmaster output, then the newest collector file", func(t *testing.T, dir string) {
			write(t, dir, "log/postmaster.log", "LOG:  redirecting log output to logging collector process\n")
			write(t, dir, "log/postgresql-2026-12-07_100000.log", "old file line\n")
			write(t, dir, "log/postgresql-2026-12-07_110000.log", "LOG:  starting\nFATAL:  could not locate required checkpoint record\n")
			write(t, dir, "log/other.txt", "not a log\n")
		}, 10, []string{"LOG:  redirecting log output to logging collector process", "LOG:  starting",
			"FATAL:  could not locate required checkpoint record"}},
		{"only the last lines", func(t *testing.T, dir string) {
			write(t, dir, "log/postmaster.log", "a\nb\nc\n")
			write(t, dir, "log/postgresql-2026-12-07_110000.log", "d\ne\n")
		}, 3, []string{"c", "d", "e"}},
		{"redacted", func(t *testing.T, dir string) {
			write(t, dir, "log/postmaster.log", "STATEMENT:  ALTER ROLE a PASSWORD 'p@ss'\n")
		}, 10, []string{"STATEMENT:  ALTER ROLE a PASSWORD '[redacted]'"}},
		{"a long file is read from its end, without the cut line", func(t *testing.T, dir string) {
			write(t, dir, "log/postmaster.log", long)
		}, 10, []string{"fragment-end", "last whole line"}},
		{"links are not followed", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "log"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "log/postmaster.log")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "log/postgresql-2099-01-01_000000.log")); err != nil {
				t.Fatal(err)
			}
		}, 10, nil},
		{"a linked log directory is not followed", func(t *testing.T, dir string) {
			other := t.TempDir()
			write(t, other, "postgresql-2026-12-07_110000.log", "OUTSIDE-SECRET\n")
			if err := os.Symlink(other, filepath.Join(dir, "log")); err != nil {
				t.Fatal(err)
			}
		}, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			got := (&Instance{DataDir: dir}).LogTail(tc.max)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("LogTail(%d) = %q, want %q", tc.max, got, tc.want)
			}
		})
	}
}

func TestFailureLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"none", []string{"LOG:  starting", "LOG:  ready"}, ""},
		{"last fatal, spacing collapsed", []string{"x FATAL:  first", "y FATAL:   second  one", "LOG:  shut down"}, "FATAL: second one"},
		{"fatal over a later error", []string{"a FATAL:  why", "b ERROR:  later"}, "FATAL: why"},
		{"panic", []string{"a PANIC:  could not write to file"}, "PANIC: could not write to file"},
		{"an error when nothing is fatal", []string{"a ERROR:  relation does not exist", "LOG:  x"}, "ERROR: relation does not exist"},
		{"clients turned away are not the cause", []string{"a FATAL:  recovery ended before configured recovery target was reached",
			`b FATAL:  the database system is shutting down`}, "FATAL: recovery ended before configured recovery target was reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FailureLine(tc.lines); got != tc.want {
				t.Fatalf("FailureLine = %q, want %q", got, tc.want)
			}
		})
	}
}
