package testenv

import (
	"context"
	"crypto/rsa"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/daemon"
	"github.com/pgflex/pgflex/internal/seal"
)

// IdentityCredential is an azcore.TokenCredential for a managed identity's principal. Outside
// callers cannot get such tokens over HTTP; the test plays pgflex's data plane, which holds the
// data directory, and signs them with the daemon's own token-signing key, claim for claim as
// auth.Issuer.IssueForIdentity does.
type IdentityCredential struct {
	d        *Daemon
	ObjectID string
	ClientID string

	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

// IdentityCredential returns a credential for the managed identity with the given principal.
func (d *Daemon) IdentityCredential(objectID, clientID string) *IdentityCredential {
	return &IdentityCredential{d: d, ObjectID: objectID, ClientID: clientID}
}

var _ azcore.TokenCredential = (*IdentityCredential)(nil)

// GetToken mints a token for the requested scope's audience.
func (c *IdentityCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.once.Do(func() {
		var box *seal.Box
		box, c.err = seal.LoadOrCreateRootKey(filepath.Join(c.d.DataDir, "root.key"))
		if c.err == nil {
			c.key, c.err = daemon.TokenSigningKey(c.d.DataDir, box)
		}
	})
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	p := c.d.Profile()
	aud := "https://" + p.KeyVaultDNSSuffix
	if len(opts.Scopes) == 1 {
		aud = trimScope(opts.Scopes[0])
	}
	now := time.Now()
	exp := now.Add(auth.TokenLifetime)
	tok, err := auth.SignJWT(c.key, auth.KeyID(&c.key.PublicKey), auth.Claims{
		Issuer: p.Endpoint + "/" + p.TenantID + "/v2.0", Subject: c.ObjectID, Audience: aud,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(), ObjectID: c.ObjectID,
		TenantID: p.TenantID, AppID: c.ClientID, IDType: "app", TokenID: arm.NewGUID(), Version: "2.0"})
	return azcore.AccessToken{Token: tok, ExpiresOn: exp}, err
}

func trimScope(s string) string {
	const suffix = "/.default"
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		s = s[:len(s)-len(suffix)]
	}
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
