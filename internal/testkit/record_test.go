package testkit

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRecord: a child that lived and ended before its secret was known is found afterwards, in
// its environment and on its command line; what no process held is not.
func TestRecord(t *testing.T) {
	r := Record()
	defer r.Stop()
	secret := "pgflex-record-secret-" + hex.EncodeToString([]byte(time.Now().Format(time.RFC3339Nano)))
	cmd := exec.Command("cat", "-", "/dev/null", "/dev/null#"+base64.RawStdEncoding.EncodeToString([]byte(secret)))
	cmd.Env = []string{"SECRET=" + hex.EncodeToString([]byte(secret))}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child lives until the recording has read it as cat (right after the fork it still
	// shows its parent's command line): evidence, not a guess at a duration.
	Eventually(t, 10*time.Second, "the child is recorded", func() error {
		if !r.SawPID(cmd.Process.Pid) || r.SeenWith("cat", "/dev/null#") == 0 {
			return os.ErrNotExist
		}
		return nil
	})
	stdin.Close()
	cmd.Wait() // cat fails on the last operand: only its command line matters
	r.Stop()
	hits := r.Find(Needles{}.AddSecret("secret", []byte(secret)).Add("absent", []byte(secret+"-nowhere")))
	var env, argv bool
	for _, h := range hits {
		if h.PID != cmd.Process.Pid {
			t.Errorf("hit in another process: %+v", h)
		}
		env = env || h.Where == "environ" && h.Needle == "secret (hex)" && h.Exe == "cat"
		argv = argv || h.Where == "cmdline" && h.Needle == "secret (base64, unpadded)"
		if h.Needle == "absent" {
			t.Errorf("found what no process held: %+v", h)
		}
	}
	reads, n := r.Reads()
	if !env || !argv || r.Seen("cat") == 0 || r.SeenWith("cat", "/dev/null#") != 1 || r.SeenWith("cat", "/nowhere") != 0 || r.Sweeps() < 1 || reads == 0 || n == 0 || r.Distinct() == 0 {
		t.Errorf("hits %v, seen %d, sweeps %d, reads %d (%d bytes), distinct %d", hits, r.Seen("cat"), r.Sweeps(), reads, n, r.Distinct())
	}
	for _, u := range r.Unreadable() {
		if u.PID == cmd.Process.Pid || u.Exe == "cat" {
			t.Errorf("the child could not be read: %+v", u)
		}
	}
	r.Stop() // twice is fine
}

// TestRecordExec: a process that execs another program (as every child does, first showing
// its parent's command line) is counted as running each.
func TestRecordExec(t *testing.T) {
	r := Record()
	defer r.Stop()
	mark := "/dev/null#pgflex-record-exec-" + hex.EncodeToString([]byte(time.Now().Format(time.RFC3339Nano)))
	cmd := exec.Command("sh", "-c", `read line; exec cat - "$0"`, mark)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "the shell is recorded", func() error {
		if r.SeenWith("sh", mark) != 1 {
			return os.ErrNotExist
		}
		return nil
	})
	stdin.Write([]byte("go on\n"))
	Eventually(t, 10*time.Second, "the same process, now cat, is recorded", func() error {
		if r.SeenWith("cat", mark) != 1 {
			return os.ErrNotExist
		}
		return nil
	})
	stdin.Close()
	cmd.Wait()
	if r.SeenWith("sh", mark) != 1 || r.SeenWith("cat", mark) != 1 {
		t.Errorf("sh %d, cat %d", r.SeenWith("sh", mark), r.SeenWith("cat", mark))
	}
}

// TestAddPrivateKey: each kind of key, written in the usual ways (PEM with its line breaks
// removed, JSON bytes, hex, a JWK's base64url), is found; its public part alone is not.
func TestAddPrivateKey(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, _ := x509.MarshalECPrivateKey(ek)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rk)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edk)
	unfold := func(b []byte) []byte { return []byte(strings.ReplaceAll(string(b), "\n", "")) }
	jsonDER, _ := json.Marshal(map[string]any{"k": x509.MarshalPKCS1PrivateKey(rk)})
	ecD, _ := ek.Bytes()
	cases := []struct {
		key     any
		written []byte
	}{
		{rk, unfold(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))},
		{rk, jsonDER},
		{rk, []byte(`{"d":"` + base64.RawURLEncoding.EncodeToString(rk.D.Bytes()) + `"}`)},
		{rk, []byte(rk.Primes[1].String())},
		{ek, unfold(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))},
		{ek, []byte(strings.ToUpper(hex.EncodeToString(ecD)))},
		{edk, unfold(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}))},
	}
	for i, c := range cases {
		n := Needles{}.AddPrivateKey(t, "k", c.key)
		if got := n.Find(append([]byte("prefix "), append(c.written, " suffix"...)...)); len(got) == 0 {
			t.Errorf("case %d: %T written as %.60q... not found", i, c.key, c.written)
		}
	}
	pub, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	public := append(pub, []byte(base64.StdEncoding.EncodeToString(rk.N.Bytes())+hex.EncodeToString(rk.N.Bytes()))...)
	if got := (Needles{}).AddPrivateKey(t, "k", rk).Find(public); len(got) > 0 {
		t.Errorf("the public key alone matched %v", got)
	}
	// A scan of files finds them the same way.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "leak"), jsonDER, 0o600)
	if res := ScanFiles(t, []string{dir}, Needles{}.AddPrivateKey(t, "rsa", rk), ScanOptions{}); res.Files != 1 || len(res.Hits) == 0 {
		t.Errorf("scan: %+v", res)
	}
}
