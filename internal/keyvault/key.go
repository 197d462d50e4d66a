package keyvault

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
)

// Key is a named key of a vault: its versions, which one is current, its rotation policy and
// its soft-deleted state. The versions are stored apart (KeyVersion), one record each.
type Key struct {
	Name    string          `json:"name"` // casing as created
	Current string          `json:"current"`
	Created time.Time       `json:"created"`
	Deleted *KeyDeletion    `json:"deleted,omitempty"`
	Policy  *RotationPolicy `json:"rotationPolicy,omitempty"`
}

// KeyDeletion is the soft-deleted state of a key.
type KeyDeletion struct {
	DeletedDate        time.Time `json:"deletedDate"`
	ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"`
}

// KeyVersion is one version of a key: public material, attributes, and the private key sealed
// under the root key with the version's store key as additional data.
type KeyVersion struct {
	Version   string            `json:"version"`
	Kty       string            `json:"kty"`
	KeySize   int               `json:"keySize"`
	KeyOps    []string          `json:"keyOps"`
	N         []byte            `json:"n"`
	E         []byte            `json:"e"`
	Enabled   bool              `json:"enabled"`
	NotBefore *time.Time        `json:"nbf,omitempty"`
	Expires   *time.Time        `json:"exp,omitempty"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Tags      map[string]string `json:"tags,omitempty"`
	Sealed    []byte            `json:"sealedKey"`
}

// Key operations a JSON Web Key may allow.
var allKeyOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}

// keyNameRE is Key Vault's object name rule.
var keyNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func keyPrefix(vaultID string) string     { return "kv/key/" + vaultID + "/" }
func keyKey(vaultID, name string) string  { return keyPrefix(vaultID) + strings.ToLower(name) }
func versionPrefix(vaultID string) string { return "kv/ver/" + vaultID + "/" }
func keyVersionsPrefix(vaultID, name string) string {
	return versionPrefix(vaultID) + strings.ToLower(name) + "/"
}
func versionKey(vaultID, name, version string) string {
	return keyVersionsPrefix(vaultID, name) + version
}

// newVersionID returns a Key Vault version id: 32 lowercase hex characters.
func newVersionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

var versionRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func getKey(tx store.Tx, vaultID, name string) (*Key, error) {
	var k Key
	if err := store.GetJSON(tx, keyKey(vaultID, name), &k); err != nil {
		return nil, err
	}
	return &k, nil
}

func putKey(tx store.Tx, vaultID string, k *Key) error {
	return store.PutJSON(tx, keyKey(vaultID, k.Name), k)
}

func getVersion(tx store.Tx, vaultID, name, version string) (*KeyVersion, error) {
	var kv KeyVersion
	if err := store.GetJSON(tx, versionKey(vaultID, name, version), &kv); err != nil {
		return nil, err
	}
	return &kv, nil
}

func putVersion(tx store.Tx, vaultID, name string, kv *KeyVersion) error {
	return store.PutJSON(tx, versionKey(vaultID, name, kv.Version), kv)
}

// listVersions returns a key's versions, oldest first.
func listVersions(tx store.Tx, vaultID, name string) ([]KeyVersion, error) {
	vs, err := store.ListJSON[KeyVersion](tx, keyVersionsPrefix(vaultID, name))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(vs, func(i, j int) bool {
		if !vs[i].Created.Equal(vs[j].Created) {
			return vs[i].Created.Before(vs[j].Created)
		}
		return vs[i].Version < vs[j].Version
	})
	return vs, nil
}

// deleteKeyTx removes a key and all its versions.
func (s *Service) deleteKeyTx(tx store.Tx, vaultID, name string) error {
	kvs, err := tx.List(keyVersionsPrefix(vaultID, name))
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		if err := tx.Delete(kv.Key); err != nil {
			return err
		}
		s.keys.forget(kv.Key)
	}
	return tx.Delete(keyKey(vaultID, name))
}

// generateRSA makes a new RSA key and returns its version record with the private key sealed
// under box for the store key storeKey. Generation happens outside any store transaction: a
// 4096-bit key takes a while.
func generateRSA(box *seal.Box, bits int, storeKey string) (*KeyVersion, *rsa.PrivateKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate RSA-%d key: %w", bits, err)
	}
	der := x509.MarshalPKCS1PrivateKey(priv)
	defer clear(der)
	return &KeyVersion{Kty: "RSA", KeySize: bits, N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(),
		Sealed: box.Seal(der, []byte(storeKey))}, priv, nil
}

// publicKey is the version's RSA public key.
func (kv *KeyVersion) publicKey() *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(kv.N), E: int(new(big.Int).SetBytes(kv.E).Int64())}
}

// privateKey unseals the version's private key (or takes it from the cache).
func (s *Service) privateKey(storeKey string, kv *KeyVersion) (*rsa.PrivateKey, error) {
	if k := s.keys.get(storeKey); k != nil {
		return k, nil
	}
	der, err := s.box.Open(kv.Sealed, []byte(storeKey))
	if err != nil {
		return nil, fmt.Errorf("unseal key %s: %w", storeKey, err)
	}
	defer clear(der)
	k, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", storeKey, err)
	}
	s.keys.put(storeKey, k)
	return k, nil
}

// keyCache holds unsealed private keys in memory so that a wrap or unwrap does not re-open
// and re-parse the sealed key each time. It never leaves the process.
type keyCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*rsa.PrivateKey
}

func newKeyCache(max int) *keyCache { return &keyCache{max: max, m: map[string]*rsa.PrivateKey{}} }

func (c *keyCache) get(k string) *rsa.PrivateKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *keyCache) put(k string, v *rsa.PrivateKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m { // evict an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}

func (c *keyCache) forget(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// b64 is base64url without padding, as JSON Web Keys and Key Vault values use.
var b64 = base64.RawURLEncoding

// decodeB64URL accepts base64url with or without padding.
func decodeB64URL(s string) ([]byte, error) {
	return b64.DecodeString(strings.TrimRight(s, "="))
}

// kid is a key version's identifier; with an empty version, the key's base identifier.
func (s *Service) kid(v *Vault, keyName, version string) string {
	id := "https://" + s.storeHost(v) + "/keys/" + keyName
	if version != "" {
		id += "/" + version
	}
	return id
}

// attributesView is KeyAttributes as the REST API shows them.
func attributesView(api dataPlaneVersion, v *Vault, kv *KeyVersion) map[string]any {
	a := map[string]any{
		"enabled":       kv.Enabled,
		"created":       kv.Created.Unix(),
		"updated":       kv.Updated.Unix(),
		"recoveryLevel": v.RecoveryLevel(),
	}
	if api.recoverableDays {
		a["recoverableDays"] = v.Props.SoftDeleteRetentionInDays
	}
	if api.exportable {
		a["exportable"] = false
	}
	if kv.NotBefore != nil {
		a["nbf"] = kv.NotBefore.Unix()
	}
	if kv.Expires != nil {
		a["exp"] = kv.Expires.Unix()
	}
	return a
}

// jwkView is the public JSON Web Key of a version.
func (s *Service) jwkView(v *Vault, k *Key, kv *KeyVersion) map[string]any {
	ops := kv.KeyOps
	if ops == nil {
		ops = []string{}
	}
	return map[string]any{
		"kid":     s.kid(v, k.Name, kv.Version),
		"kty":     kv.Kty,
		"key_ops": ops,
		"n":       b64.EncodeToString(kv.N),
		"e":       b64.EncodeToString(kv.E),
	}
}

// keyBundle is the KeyBundle of a version.
func (s *Service) keyBundle(api dataPlaneVersion, v *Vault, k *Key, kv *KeyVersion) map[string]any {
	b := map[string]any{"key": s.jwkView(v, k, kv), "attributes": attributesView(api, v, kv)}
	if len(kv.Tags) > 0 {
		b["tags"] = kv.Tags
	}
	return b
}

// deletedKeyBundle is the DeletedKeyBundle of a soft-deleted key (its current version).
func (s *Service) deletedKeyBundle(api dataPlaneVersion, v *Vault, k *Key, kv *KeyVersion) map[string]any {
	b := s.keyBundle(api, v, k, kv)
	s.addDeletion(b, v, k)
	return b
}

func (s *Service) addDeletion(b map[string]any, v *Vault, k *Key) {
	b["recoveryId"] = "https://" + s.storeHost(v) + "/deletedkeys/" + k.Name
	b["deletedDate"] = k.Deleted.DeletedDate.Unix()
	b["scheduledPurgeDate"] = k.Deleted.ScheduledPurgeDate.Unix()
}

// keyItem is a list entry: base or versioned kid, attributes and tags.
func (s *Service) keyItem(api dataPlaneVersion, v *Vault, k *Key, kv *KeyVersion, version string) map[string]any {
	it := map[string]any{"kid": s.kid(v, k.Name, version), "attributes": attributesView(api, v, kv)}
	if len(kv.Tags) > 0 {
		it["tags"] = kv.Tags
	}
	return it
}

// unusable is the reason usableFor gives for refusing an operation.
type unusable struct {
	code, inner, msg string
}

// usableFor reports whether a version may perform a cryptographic operation now. A disabled
// version refuses every operation. Outside its validity window (nbf, exp) it refuses the
// operations that protect new data (encrypt, wrapKey, sign) but still performs decrypt,
// unwrapKey and verify, as Key Vault documents, so that data is never crypto-locked by an
// expiry.
func (kv *KeyVersion) usableFor(op string, now time.Time) *unusable {
	if !kv.Enabled {
		return &unusable{"Forbidden", "KeyDisabled", fmt.Sprintf("Operation %s is not allowed on a disabled key.", op)}
	}
	if !slices.Contains(kv.KeyOps, op) {
		return &unusable{"Forbidden", "OperationNotAllowed", fmt.Sprintf("Operation %s is not allowed by this key's key_ops (%s).", op, strings.Join(kv.KeyOps, ", "))}
	}
	protects := op == "encrypt" || op == "wrapKey" || op == "sign"
	if protects && kv.NotBefore != nil && now.Before(*kv.NotBefore) {
		return &unusable{"Forbidden", "KeyNotYetValid", fmt.Sprintf("Operation %s is not allowed on a key that is not yet valid: its activation date (nbf) is %s.", op, kv.NotBefore.UTC().Format(time.RFC3339))}
	}
	if protects && kv.Expires != nil && !now.Before(*kv.Expires) {
		return &unusable{"Forbidden", "KeyExpired", fmt.Sprintf("Operation %s is not allowed on an expired key: it expired at %s.", op, kv.Expires.UTC().Format(time.RFC3339))}
	}
	return nil
}
