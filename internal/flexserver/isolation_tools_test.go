package flexserver_test

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/backup"
)

// The isolation suite's attacker tools: the test binary, copied where a server's OS account can
// run it, plays them when PGFLEX_TEST_TOOL names one (see TestMain).
const toolEnv = "PGFLEX_TEST_TOOL"

func TestMain(m *testing.M) {
	switch os.Getenv(toolEnv) {
	case "archive-client":
		os.Exit(archiveClient(os.Args[1:]))
	case "collect":
		os.Exit(collectSecrets(os.Args[1:]))
	case "watch-environ":
		os.Exit(watchEnviron(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// archiveClient speaks to the daemon's archive socket as a server's process might, and prints
// each answer: archive-client SOCKET REQUEST-LINE...
func archiveClient(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: archive-client SOCKET REQUEST...")
		return 2
	}
	for _, req := range args[1:] {
		conn, err := net.DialTimeout("unix", args[0], 5*time.Second)
		if err != nil {
			fmt.Printf("dial: %v\n", err)
			continue
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "%s\n", req)
		answer, _ := io.ReadAll(io.LimitReader(conn, 8<<10))
		conn.Close()
		fmt.Printf("answer: %q\n", answer)
	}
	return 0
}

// collected is what collectSecrets reports.
type collected struct {
	Files    int      `json:"files"`    // regular files read
	Bytes    int64    `json:"bytes"`    // bytes read
	Environs int      `json:"environs"` // process environments and command lines read
	Tokens   []string `json:"tokens"`   // every candidate secret found
}

// tokenRE: anything that could be a passphrase or an encoded key (hex, base64, base64url).
var tokenRE = regexp.MustCompile(`[A-Za-z0-9+/_=-]{32,100}`)

// collectSecrets reads everything the running account can read under the roots given and in
// /proc (environments and command lines), and prints every candidate secret as JSON.
func collectSecrets(roots []string) int {
	var out collected
	seen := map[string]bool{}
	add := func(b []byte) {
		for _, m := range tokenRE.FindAll(b, -1) {
			if s := string(m); !seen[s] {
				seen[s] = true
				out.Tokens = append(out.Tokens, s)
			}
		}
	}
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable: that is the point
			}
			if path == "/proc" || path == "/sys" {
				return filepath.SkipDir
			}
			if !e.Type().IsRegular() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return nil
			}
			defer f.Close()
			b, err := io.ReadAll(io.LimitReader(f, 64<<20))
			if err != nil {
				return nil
			}
			out.Files++
			out.Bytes += int64(len(b))
			add(b)
			return nil
		})
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		for _, f := range []string{"environ", "cmdline"} {
			if b, err := os.ReadFile(filepath.Join(p, f)); err == nil && len(b) > 0 {
				out.Environs++
				add(bytes.ReplaceAll(b, []byte{0}, []byte{'\n'}))
				// A variable's value on its own, too: NAME=VALUE reads as one token.
				for _, kv := range bytes.Split(b, []byte{0}) {
					if _, v, ok := bytes.Cut(kv, []byte{'='}); ok {
						add(v)
					}
				}
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 1
	}
	return 0
}

// watchEnviron reads every process environment it can, until its standard input closes (or
// at most the given number of seconds), and prints each PGBACKREST_ variable it finds:
// watch-environ SECONDS.
func watchEnviron(args []string) int {
	secs, _ := strconv.Atoi(args[0])
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	found := map[string]bool{}
	reads := 0
	for watching := true; watching && time.Now().Before(deadline); {
		select {
		case <-stop:
			watching = false
		default:
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			reads++
			for _, kv := range bytes.Split(b, []byte{0}) {
				if bytes.HasPrefix(kv, []byte("PGBACKREST_")) && !found[string(kv)] {
					found[string(kv)] = true
					fmt.Printf("found: %s\n", kv)
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("reads: %d\n", reads)
	return 0
}

// candidatePassphrases turns collected tokens into every passphrase they could give for a
// stanza: the token itself, and, for a token that decodes to a 32-byte backup DEK (hex,
// base64 or base64url, padded or not), the passphrase derived from it.
func candidatePassphrases(tokens []string, stanza string) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	add := func(p []byte) {
		if !seen[string(p)] {
			seen[string(p)] = true
			out = append(out, p)
		}
	}
	for _, tok := range tokens {
		add([]byte(tok))
		for _, dec := range []func(string) ([]byte, error){hex.DecodeString, base64.StdEncoding.DecodeString,
			base64.RawStdEncoding.DecodeString, base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString} {
			if dek, err := dec(tok); err == nil && len(dek) == backup.DEKSize {
				if p, err := backup.Passphrase(dek, stanza); err == nil {
					add(p)
				}
			}
		}
	}
	return out
}

// opensInfoFile reports whether pass decrypts a pgBackRest info file (backup.info or
// archive.info of a repository encrypted with aes-256-cbc): OpenSSL's "Salted__" format, key
// and IV from EVP_BytesToKey with SHA-1 and one round, as pgBackRest writes it. The suite's
// positive control checks this against a repository pgBackRest itself made.
func opensInfoFile(enc []byte, pass []byte) bool {
	if len(enc) < 32 || string(enc[:8]) != "Salted__" || (len(enc)-16)%aes.BlockSize != 0 {
		return false
	}
	salt, body := enc[8:16], enc[16:]
	var material, prev []byte
	for len(material) < 48 {
		h := sha1.New()
		h.Write(prev)
		h.Write(pass)
		h.Write(salt)
		prev = h.Sum(nil)
		material = append(material, prev...)
	}
	block, err := aes.NewCipher(material[:32])
	if err != nil {
		return false
	}
	plain := make([]byte, len(body))
	cipher.NewCBCDecrypter(block, material[32:48]).CryptBlocks(plain, body)
	return bytes.HasPrefix(plain, []byte("[backrest]"))
}

// readLines splits output into lines.
func readLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
