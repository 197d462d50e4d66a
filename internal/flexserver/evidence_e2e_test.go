package flexserver_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// What the end-to-end tests' claims rest on: scans of everything the service writes outside
// the plaintext mounts, each with a positive control, and the mapping of a server to its mount.

// uniqueMarker is prefix and 32 random hex digits: long, and found nowhere unless written.
func uniqueMarker(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// outsideRoots are the places the service (the daemon, its servers, their tools) writes to
// outside the plaintext mounts: the data directory (ciphertext, headers, the state store, the
// backup repositories and their logs), the runtime directory (sockets, mount points), the
// shared temporary directories and the system's log directory.
func outsideRoots(d *testenv.Daemon, runDir string) []string {
	return []string{d.DataDir, runDir, "/tmp", "/var/tmp", "/dev/shm", "/var/log"}
}

// scanOutside reads every regular file under outsideRoots, FUSE mounts (the plaintext views)
// left out, and returns the hits of needles. It fails the test on a read error, on a root where
// it read nothing, and unless a control needle planted in every root is found there and only
// there: each root was really read, and the scan finds what is in it.
func scanOutside(t testing.TB, d *testenv.Daemon, runDir string, needles testkit.Needles) testkit.ScanResult {
	t.Helper()
	control := uniqueMarker(t, "pgflex-scan-control-")
	all := testkit.Needles{}
	for k, v := range needles {
		all[k] = v
	}
	all.Add("scan control", []byte(control))
	roots := outsideRoots(d, runDir)
	var planted []string
	for _, root := range roots {
		f, err := os.CreateTemp(root, ".pgflex-scan-control-*")
		if err != nil {
			t.Fatalf("plant the scan control in %s: %v", root, err)
		}
		planted = append(planted, f.Name())
		defer os.Remove(f.Name())
		_, err = f.WriteString("before " + control + " after\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var res testkit.ScanResult
	for _, root := range roots {
		opts := testkit.ScanOptions{SkipVolumeMounts: true}
		for _, other := range roots {
			if other != root && strings.HasPrefix(other, root+"/") {
				opts.Skip = append(opts.Skip, other) // scanned as a root of its own
			}
		}
		r := testkit.ScanFiles(t, []string{root}, all, opts)
		if r.Files == 0 {
			t.Fatalf("the scan read no file under %s", root)
		}
		res.Files += r.Files
		res.Bytes += r.Bytes
		res.Hits = append(res.Hits, r.Hits...)
	}
	found := res.Paths("scan control")
	slices.Sort(found)
	slices.Sort(planted)
	if !slices.Equal(found, planted) {
		t.Fatalf("positive control: the control planted in %v was found in %v", planted, found)
	}
	out := testkit.ScanResult{Files: res.Files - len(planted), Bytes: res.Bytes}
	for _, h := range res.Hits {
		if h.Needle != "scan control" {
			out.Hits = append(out.Hits, h)
		}
	}
	t.Logf("scanned %d files (%d MiB) under %v, mounts left out", out.Files, out.Bytes>>20, roots)
	return out
}

// daemonLogHits searches the daemon's log (what it printed) for needles; known are strings the
// log must hold (a server's name: positive control that the log searched is the daemon's).
func daemonLogHits(t testing.TB, d *testenv.Daemon, needles testkit.Needles, known ...string) []string {
	t.Helper()
	log := []byte(d.Logs())
	for _, k := range known {
		if len(testkit.Needles{}.Add("known", []byte(k)).Find(log)) == 0 {
			t.Fatalf("positive control: the daemon's log (%d bytes) does not name %q", len(log), k)
		}
	}
	return needles.Find(log)
}

// serverMount finds a running server's volume by its port (each mount's postgresql.conf says
// which server it is): its uid and its plaintext mount.
func serverMount(t testing.TB, d *testenv.Daemon, runDir string, srv map[string]any) (uid, mount string) {
	t.Helper()
	port := ownPort(t, d, srv)
	confs := serverConfs(runDir)
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err == nil && bytes.Contains(b, []byte(fmt.Sprintf("\nport = %d\n", port))) {
			if mount != "" {
				t.Fatalf("two mounts claim port %d", port)
			}
			mount = mountOfConf(runDir, c)
		}
	}
	if mount == "" {
		t.Fatalf("no mount of the server on port %d under %s (%d mounted)", port, runDir, len(confs))
	}
	return filepath.Base(mount), mount
}

// serverConfs are the postgresql.conf files of the servers mounted under runDir: in the mount
// itself (gocryptfs) or in its plaintext directory (fscrypt's data/).
func serverConfs(runDir string) []string {
	var out []string
	for _, l := range []volume.Layer{&volume.Gocryptfs{}, &volume.Fscrypt{}} {
		m, _ := filepath.Glob(filepath.Join(l.DataDir(filepath.Join(runDir, "mnt", "*")), "pgdata", "postgresql.conf"))
		out = append(out, m...)
	}
	return out
}

// mountOfConf is the mount directory, {runDir}/mnt/{uid}, of a server's postgresql.conf.
func mountOfConf(runDir, conf string) string {
	rel, _ := filepath.Rel(filepath.Join(runDir, "mnt"), conf)
	return filepath.Join(runDir, "mnt", strings.Split(rel, "/")[0])
}

// plainDir is where a mounted server volume keeps its plaintext (volume.Layer.DataDir): the
// mount itself under gocryptfs, its data/ under fscrypt.
func plainDir(mount string) string {
	if fscrypt := (&volume.Fscrypt{}).DataDir(mount); fileExists(filepath.Join(fscrypt, "pgdata")) {
		return fscrypt
	}
	return mount
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// hitsWithPrefix reports whether a needle whose name begins with prefix was found under path.
func hitsWithPrefix(r testkit.ScanResult, prefix, path string) bool {
	for _, h := range r.Hits {
		if strings.HasPrefix(h.Needle, prefix) && (h.Path == path || strings.HasPrefix(h.Path, path+"/")) {
			return true
		}
	}
	return false
}
