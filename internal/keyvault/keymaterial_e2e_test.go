package keyvault_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
)

// secretPatterns are the encodings of a private key that must never be found at rest: the
// PKCS#1 and PKCS#8 DER, the big-endian bytes of D, P and Q, their hex and decimal forms, and
// their base64 (standard and URL alphabets) at each of the three byte alignments a longer
// encoded blob could put them in.
func secretPatterns(t *testing.T, k *rsa.PrivateKey) map[string][]byte {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{"pkcs1 DER": x509.MarshalPKCS1PrivateKey(k), "pkcs8 DER": pkcs8}
	for name, v := range map[string][]byte{"D": k.D.Bytes(), "P": k.Primes[0].Bytes(), "Q": k.Primes[1].Bytes()} {
		out[name] = v
		out[name+" hex"] = []byte(hex.EncodeToString(v))
		out[name+" decimal"] = []byte(bigDecimal(v))
		for shift := 0; shift < 3; shift++ {
			part := v[shift:]
			part = part[:len(part)-len(part)%3]
			out[name+" base64 std "+string(rune('0'+shift))] = []byte(base64.StdEncoding.EncodeToString(part))
			out[name+" base64 url "+string(rune('0'+shift))] = []byte(base64.URLEncoding.EncodeToString(part))
		}
	}
	return out
}

func bigDecimal(b []byte) string { return new(big.Int).SetBytes(b).String() }

// findSecrets walks dir and returns "file: pattern" for every pattern found in a file, as is
// or with its line breaks removed.
func findSecrets(t *testing.T, dir string, patterns map[string][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// PEM and other wrapped encodings break lines: search the file without them too.
		joined := bytes.NewBuffer(nil)
		for _, line := range bytes.Split(b, []byte("\n")) {
			joined.Write(bytes.TrimSuffix(line, []byte("\r")))
		}
		for name, p := range patterns {
			if bytes.Contains(b, p) || bytes.Contains(joined.Bytes(), p) {
				found = append(found, path+": "+name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestPrivateKeysAreSealedAtRest creates, rotates and uses keys, stops the daemon, unseals each
// stored private key with the root key (as only the daemon can) to learn its bytes, and then
// searches every file of the data directory for them: none may be found.
func TestPrivateKeysAreSealedAtRest(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	e.createVault("rg", "sealed-vault", nil)
	c := e.keys("sealed-vault", nil)
	public := map[string][]byte{} // kid version -> modulus, from the API
	for _, size := range []int32{2048, 3072} {
		name := "k" + string(rune('0'+size/1024))
		k, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(size)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		public[k.Key.KID.Version()] = k.Key.N
		r, err := c.RotateKey(ctx, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		public[r.Key.KID.Version()] = r.Key.N
		w, err := c.WrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("0123456789abcdef0123456789abcdef")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.d.Stop()

	dataDir := e.d.DataDir
	box, err := seal.LoadOrCreateRootKey(filepath.Join(dataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	var records []store.KV
	err = st.View(ctx, func(tx store.Tx) error {
		var err error
		records, err = tx.List("kv/ver/")
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(public) {
		t.Fatalf("%d stored key versions, %d created", len(records), len(public))
	}
	patterns := map[string][]byte{}
	for _, rec := range records {
		var v struct {
			Version string `json:"version"`
			N       []byte `json:"n"`
			Sealed  []byte `json:"sealedKey"`
		}
		if err := json.Unmarshal(rec.Value, &v); err != nil {
			t.Fatal(err)
		}
		der, err := box.Open(v.Sealed, []byte(rec.Key))
		if err != nil {
			t.Fatalf("%s does not open with its own store key as additional data: %v", rec.Key, err)
		}
		priv, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(priv.N.Bytes(), public[v.Version]) || !bytes.Equal(v.N, public[v.Version]) {
			t.Fatalf("the sealed key of version %s is not the key the API returned", v.Version)
		}
		// The additional data binds the blob to its version: it does not open as another.
		for _, other := range records {
			if other.Key != rec.Key {
				if _, err := box.Open(v.Sealed, []byte(other.Key)); err == nil {
					t.Fatalf("the sealed key of %s opens as %s", rec.Key, other.Key)
				}
			}
		}
		for name, p := range secretPatterns(t, priv) {
			patterns[v.Version+" "+name] = p
		}
	}
	if found := findSecrets(t, dataDir, patterns); len(found) > 0 {
		t.Fatalf("private key material found at rest:\n%s", strings.Join(found, "\n"))
	}

	// The search itself finds what it looks for: a plaintext PEM and a JSON-embedded DER.
	var planted *rsa.PrivateKey
	for _, rec := range records {
		var v struct {
			Sealed []byte `json:"sealedKey"`
		}
		json.Unmarshal(rec.Value, &v)
		der, _ := box.Open(v.Sealed, []byte(rec.Key))
		planted, _ = x509.ParsePKCS1PrivateKey(der)
		break
	}
	control := t.TempDir()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(planted)
	os.WriteFile(filepath.Join(control, "leak.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600)
	embedded, _ := json.Marshal(map[string]any{"x": "y", "key": x509.MarshalPKCS1PrivateKey(planted)})
	os.WriteFile(filepath.Join(control, "leak.json"), embedded, 0o600)
	cp := secretPatterns(t, planted)
	found := strings.Join(findSecrets(t, control, cp), "\n")
	if !strings.Contains(found, "leak.pem") || !strings.Contains(found, "leak.json") {
		t.Fatalf("the search misses planted key material: %q", found)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "state.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.db mode: %v %v", fi.Mode(), err)
	}
}
