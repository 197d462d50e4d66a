package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// Principal types, as Entra ID names them.
const (
	TypeServicePrincipal = "ServicePrincipal"
	TypeManagedIdentity  = "ManagedIdentity"
)

// Principal is a directory entry: who can hold a token.
type Principal struct {
	ObjectID    string    `json:"objectId"`
	ClientID    string    `json:"clientId"`
	TenantID    string    `json:"tenantId"`
	DisplayName string    `json:"displayName"`
	Type        string    `json:"type"`
	SecretHash  []byte    `json:"secretHash,omitempty"`
	Admin       bool      `json:"admin,omitempty"`
	ResourceID  string    `json:"resourceId,omitempty"` // the managed identity resource, for identities
	Created     time.Time `json:"created"`
}

func principalKey(oid string) string   { return "principal/" + strings.ToLower(oid) }
func clientIndexKey(cid string) string { return "principal-client/" + strings.ToLower(cid) }
func hashSecret(secret string) []byte  { s := sha256.Sum256([]byte(secret)); return s[:] }
func (p *Principal) HasSecret() bool   { return len(p.SecretHash) > 0 }
func (p *Principal) IsIdentity() bool  { return p.Type == TypeManagedIdentity }
func (p *Principal) checkSecret(s string) bool {
	return p.HasSecret() && subtle.ConstantTimeCompare(p.SecretHash, hashSecret(s)) == 1
}

// NewSecret returns a random client secret. Only its hash is stored.
func NewSecret() (plain string, hash []byte) {
	b := make([]byte, 30)
	// Never a leading "-": command lines (az login -p, and az's own "@-" expansion) would read
	// the secret as an option.
	for plain == "" || plain[0] == '-' {
		if _, err := rand.Read(b); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		plain = base64.RawURLEncoding.EncodeToString(b)
	}
	return plain, hashSecret(plain)
}

// PutPrincipal stores a principal and its client-id index inside tx.
func PutPrincipal(tx store.Tx, p *Principal) error {
	if p.ObjectID == "" || p.ClientID == "" {
		return errors.New("principal needs an object id and a client id")
	}
	if err := store.PutJSON(tx, principalKey(p.ObjectID), p); err != nil {
		return err
	}
	return tx.Put(clientIndexKey(p.ClientID), []byte(p.ObjectID))
}

// GetPrincipal reads a principal by object id; store.ErrNotFound if absent.
func GetPrincipal(tx store.Tx, oid string) (*Principal, error) {
	var p Principal
	if err := store.GetJSON(tx, principalKey(oid), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// GetPrincipalByClientID reads a principal by client (application) id.
func GetPrincipalByClientID(tx store.Tx, cid string) (*Principal, error) {
	oid, err := tx.Get(clientIndexKey(cid))
	if err != nil {
		return nil, err
	}
	return GetPrincipal(tx, string(oid))
}

// DeletePrincipal removes a principal: its tokens stop working at once, since every
// verification looks the principal up.
func DeletePrincipal(tx store.Tx, oid string) error {
	p, err := GetPrincipal(tx, oid)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Delete(clientIndexKey(p.ClientID)); err != nil {
		return err
	}
	return tx.Delete(principalKey(oid))
}

// SecretMatches reports whether secret is the principal's client secret.
func SecretMatches(p *Principal, secret string) bool { return p.checkSecret(secret) }

// ListPrincipals returns every principal of the directory, in object-id order.
func ListPrincipals(tx store.Tx) ([]*Principal, error) {
	kvs, err := tx.List("principal/")
	if err != nil {
		return nil, err
	}
	out := make([]*Principal, 0, len(kvs))
	for _, kv := range kvs {
		var p Principal
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("principal %s: %w", kv.Key, err)
		}
		out = append(out, &p)
	}
	return out, nil
}
