package keyvault_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
	"github.com/pgflex/pgflex/internal/testkit"
)

// scanUnfolded reads every regular file under roots, but for those under skip and in FUSE
// mounts, and reports which needles each holds, as it is or unfolded (testkit.ScanFiles; it
// fails on any read error and on a root where it read nothing).
func scanUnfolded(t *testing.T, roots []string, needles testkit.Needles, skip ...string) testkit.ScanResult {
	t.Helper()
	return testkit.ScanFiles(t, roots, needles, testkit.ScanOptions{Skip: skip, SkipVolumeMounts: true, Unfold: true, EveryRoot: true})
}

// sealedKey is one private key pgflex holds, opened as only the daemon can.
type sealedKey struct {
	where string // the store record or the file it is sealed in
	key   crypto.PrivateKey
}

// TestPrivateKeysAreSealedAtRest: every private key pgflex holds — vault keys, Managed HSM keys,
// the service-managed keys, the token-signing key, the HTTPS (TLS) key and the CA's key — is
// sealed under the root key in the data directory. The test creates, rotates and uses such keys,
// stops the daemon, opens every sealed blob there is (store records and *.sealed files; one it
// does not know fails the test) with the root key, proves each opened key is the one in use
// (its public half as the API, the token endpoint, the HTTPS listener and the profile's CA show
// it, or a DEK the service key wrapped), and then searches every file of the data directory —
// as is and with line breaks removed — plus /tmp, /var/log and the daemon's log for any encoding
// of any of them. The root key itself is only in root.key. The search's positive control is every
// key planted in plaintext in the ways it could leak, and found there.
func TestPrivateKeysAreSealedAtRest(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	public := map[string][]byte{} // key version → modulus, as the API returned it

	// Vault keys: created, rotated, used.
	e.createVault("rg", "sealed-vault", nil)
	use := func(c *azkeys.Client, name string, sizes ...int32) {
		for _, size := range sizes {
			k, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(size)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			public[k.Key.KID.Version()] = k.Key.N
		}
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
	vault := e.keys("sealed-vault", nil)
	use(vault, "k2", 2048)
	use(vault, "k3", 3072)
	// Managed HSM keys.
	e.createHSM("rg", "sealed-hsm", e.hsmParams(false))
	hsm, err := azkeys.NewClient(e.hsmURL("sealed-hsm"), e.cred, &azkeys.ClientOptions{ClientOptions: e.opts.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	use(hsm, "hsm-key", 3072)

	// The daemon's own keys as the world sees them: a token it signed, the certificate its
	// HTTPS listener presents, the CA certificate of the profile.
	token := e.kvToken()
	caBlock, _ := pem.Decode([]byte(e.prof.CACertificate))
	if caBlock == nil {
		t.Fatal("the profile's CA certificate is not PEM")
	}
	caCert, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := url.Parse(e.prof.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	conn, err := tls.Dial("tcp", endpoint.Host, &tls.Config{RootCAs: pool, ServerName: endpoint.Hostname()})
	if err != nil {
		t.Fatalf("TLS to the daemon: %v", err)
	}
	httpsCert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	e.d.Stop()

	dataDir := e.d.DataDir
	rootKey, err := os.ReadFile(filepath.Join(dataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := seal.LoadOrCreateRootKey(filepath.Join(dataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}

	// A service-managed key, made the way the daemon makes it (on the first wrap of a DEK, here
	// through the service in process: no server runs in this package), wrapping a known DEK.
	st, err := store.OpenBolt(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	signing, err := daemon.TokenSigningKey(dataDir, box)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := keyvault.New(keyvault.Options{Store: st, Box: box, Tokens: auth.NewIssuer(signing, e.prof.Endpoint, e.tenant, st, auth.Audiences{}),
		Endpoint: e.prof.Endpoint, KeyVaultSuffix: e.prof.KeyVaultDNSSuffix, TenantID: e.tenant, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	serviceWrapped := map[string][]byte{} // region → the DEK wrapped by its service key
	for _, region := range []string{"eastus", "westus"} {
		_, w, err := kv.WrapWithServiceKey(ctx, region, dek)
		if err != nil {
			t.Fatal(err)
		}
		serviceWrapped[region] = w
	}
	var records []store.KV
	err = st.View(ctx, func(tx store.Tx) error {
		var err error
		records, err = tx.List("")
		return err
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	// Open every sealed key in the store; each must be one the test can account for.
	var keys []sealedKey
	var vaultKeys, serviceKeys int
	for _, rec := range records {
		var v struct {
			Version string `json:"version"`
			N       []byte `json:"n"`
			Sealed  []byte `json:"sealedKey"`
		}
		if json.Unmarshal(rec.Value, &v) != nil || v.Sealed == nil {
			continue
		}
		der, err := box.Open(v.Sealed, []byte(rec.Key))
		if err != nil {
			t.Fatalf("%s does not open with its own store key as additional data: %v", rec.Key, err)
		}
		priv, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			t.Fatalf("%s: %v", rec.Key, err)
		}
		// The additional data binds the blob to its record: it does not open as another.
		for _, other := range records {
			if other.Key != rec.Key && strings.HasPrefix(other.Key, "kv/") {
				if _, err := box.Open(v.Sealed, []byte(other.Key)); err == nil {
					t.Fatalf("the sealed key of %s opens as %s", rec.Key, other.Key)
				}
			}
		}
		switch {
		case strings.HasPrefix(rec.Key, "kv/ver/"):
			if want := public[v.Version]; want == nil || !bytes.Equal(priv.N.Bytes(), want) || !bytes.Equal(v.N, want) {
				t.Fatalf("the sealed key of %s is not the key the API returned", rec.Key)
			}
			vaultKeys++
		case strings.HasPrefix(rec.Key, "kv/svcver/"):
			region := strings.Split(rec.Key, "/")[2]
			got, err := rsa.DecryptOAEP(sha256.New(), nil, priv, serviceWrapped[region], nil)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("the sealed key of %s does not unwrap what the %s service key wrapped: %v", rec.Key, region, err)
			}
			serviceKeys++
		default:
			t.Fatalf("a sealed private key in store record %s, which this test does not know: cover it", rec.Key)
		}
		keys = append(keys, sealedKey{rec.Key, priv})
	}
	if vaultKeys != len(public) || serviceKeys != len(serviceWrapped) {
		t.Fatalf("%d vault and HSM key versions and %d service keys sealed in the store; %d and %d made", vaultKeys, serviceKeys, len(public), len(serviceWrapped))
	}

	// Open every sealed file; each must be one the test can account for.
	sealedFiles := map[string]func(pt []byte) crypto.PrivateKey{
		"tls/ca.key.sealed": func(pt []byte) crypto.PrivateKey {
			k, err := x509.ParseECPrivateKey(pt)
			if err != nil || !k.PublicKey.Equal(caCert.PublicKey) {
				t.Fatalf("the sealed CA key is not the profile's CA's: %v", err)
			}
			return k
		},
		"tls/server.key.sealed": func(pt []byte) crypto.PrivateKey {
			b, _ := pem.Decode(pt)
			if b == nil {
				t.Fatal("the sealed HTTPS key is not PEM")
			}
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil || !k.PublicKey.Equal(httpsCert.PublicKey) {
				t.Fatalf("the sealed HTTPS key is not the one the listener presents: %v", err)
			}
			return k
		},
		"keys/token-signing.key.sealed": func(pt []byte) crypto.PrivateKey {
			k, err := x509.ParsePKCS8PrivateKey(pt)
			if err != nil {
				t.Fatal(err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok || verifyRS256(token, &rk.PublicKey) != nil {
				t.Fatalf("the sealed token-signing key did not sign the daemon's tokens: %T %v", k, verifyRS256(token, &rk.PublicKey))
			}
			return k
		},
	}
	aad := map[string]string{"tls/ca.key.sealed": "tlsca/ca", "tls/server.key.sealed": "tlsca/server", "keys/token-signing.key.sealed": "auth/token-signing"}
	var opened []string
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".sealed") {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		parse, ok := sealedFiles[rel]
		if !ok {
			t.Fatalf("a sealed file %s this test does not know: cover it", rel)
		}
		pt, err := box.ReadFile(path, []byte(aad[rel]))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		keys = append(keys, sealedKey{rel, parse(pt)})
		opened = append(opened, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != len(sealedFiles) {
		t.Fatalf("sealed files opened: %v; want %d", opened, len(sealedFiles))
	}

	needles := testkit.Needles{}
	for _, k := range keys {
		needles.AddPrivateKey(t, k.where, k.key)
	}
	rootNeedles := testkit.Needles{}.AddSecret("root key", rootKey)

	// Positive control: every key planted in plaintext as it could leak — a PEM file, DER in
	// JSON, a JWK's base64url — and the root key in hex, in a directory scanned with the rest.
	control := filepath.Join(t.TempDir(), "control")
	if err := os.Mkdir(control, 0o700); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		pkcs8, err := x509.MarshalPKCS8PrivateKey(k.key)
		if err != nil {
			t.Fatal(err)
		}
		var d []byte
		switch p := k.key.(type) {
		case *rsa.PrivateKey:
			d = p.D.Bytes()
		case *ecdsa.PrivateKey:
			d, _ = p.Bytes()
		}
		jsonDER, _ := json.Marshal(map[string]any{"x": "y", "key": pkcs8})
		for name, content := range map[string][]byte{
			"pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
			"json": jsonDER,
			"jwk":  []byte(`{"kty":"x","d":"` + base64.RawURLEncoding.EncodeToString(d) + `"}`),
		} {
			if err := os.WriteFile(filepath.Join(control, fmt.Sprintf("%d.%s", i, name)), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(control, "root.hex"), []byte(fmt.Sprintf("%x\n", rootKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	all := testkit.Needles{}
	for _, n := range []testkit.Needles{needles, rootNeedles} {
		for k, v := range n {
			all[k] = v
		}
	}
	res := scanUnfolded(t, []string{dataDir, control}, all)
	for i, k := range keys {
		for _, kind := range []string{"pem", "json", "jwk"} {
			if !hasKeyHit(res, k.where, filepath.Join(control, fmt.Sprintf("%d.%s", i, kind))) {
				t.Errorf("positive control: the %s of %s planted in plaintext was not found", kind, k.where)
			}
		}
	}
	if !res.Has("root key (hex)", filepath.Join(control, "root.hex")) || !res.Has("root key", filepath.Join(dataDir, "root.key")) {
		t.Errorf("positive control: the root key not found in root.key or planted in hex: %v", res.Paths("root key"))
	}
	var leaks []string
	for _, h := range res.Hits {
		if strings.HasPrefix(h.Path, control+"/") || h.Path == filepath.Join(dataDir, "root.key") && strings.HasPrefix(h.Needle, "root key") {
			continue
		}
		leaks = append(leaks, h.Path+": "+h.Needle)
	}
	sort.Strings(leaks)
	if len(leaks) > 0 {
		t.Fatalf("private key material found at rest:\n%s", strings.Join(leaks, "\n"))
	}
	// Where the daemon could spill a temporary file or a log: nothing there either (with a
	// control planted there: the root is read).
	for _, root := range []string{"/tmp", "/var/log"} {
		f, err := os.CreateTemp(root, ".pgflex-key-control-*")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		f.WriteString(fmt.Sprintf("%x\n", rootKey))
		f.Close()
		r := scanUnfolded(t, []string{root}, all, control, dataDir)
		if !r.Has("root key (hex)", f.Name()) {
			t.Fatalf("positive control: the root key planted in %s not found", f.Name())
		}
		for _, h := range r.Hits {
			if h.Path != f.Name() {
				t.Errorf("private key material in %s: %s", h.Path, h.Needle)
			}
		}
		t.Logf("%s: %d files (%d MiB) read", root, r.Files, r.Bytes>>20)
	}
	log := []byte(e.d.Logs())
	if !bytes.Contains(log, []byte("pgflex is serving")) {
		t.Fatalf("positive control: the daemon's log (%d bytes) is not the daemon's", len(log))
	}
	if hits := all.Find(log); len(hits) > 0 {
		t.Fatalf("private key material in the daemon's log: %v", hits)
	}
	t.Logf("%d private keys (%d vault and HSM versions, %d service keys, %d sealed files) absent from %d files (%d KiB) but where planted",
		len(keys), vaultKeys, serviceKeys, len(opened), res.Files, res.Bytes>>10)
	if fi, err := os.Stat(filepath.Join(dataDir, "state.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.db mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "root.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root.key mode: %v %v", fi.Mode(), err)
	}
}

// hasKeyHit reports whether any needle of the key named where was found in path.
func hasKeyHit(r testkit.ScanResult, where, path string) bool {
	for _, h := range r.Hits {
		if h.Path == path && strings.HasPrefix(h.Needle, where+" ") {
			return true
		}
	}
	return false
}

// verifyRS256 checks a JWT's RS256 signature.
func verifyRS256(token string, pub *rsa.PublicKey) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig)
}
