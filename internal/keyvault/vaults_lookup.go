package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/pgflex/pgflex/internal/store"
)

// ErrVaultNotFound is returned by LookupVault when no live key store answers to a URL.
var ErrVaultNotFound = errors.New("vault not found")

// LookupVault returns the live (not soft-deleted) key store behind a URL such as
// https://{name}.{suffix}:{port}: a vault, or a Managed HSM for a host under the Managed HSM
// suffix (IsManagedHSM). The data plane checks a customer key's store with it (region,
// subscription, purge protection).
func (s *Service) LookupVault(ctx context.Context, vaultURL string) (*Vault, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not a vault URL", ErrVaultNotFound, vaultURL)
	}
	kind, name := s.storeFromHost(u.Host)
	if name == "" || (kind == "" && name == serviceVaultName) {
		return nil, fmt.Errorf("%w: %s is not a host of this key store", ErrVaultNotFound, u.Host)
	}
	var v *Vault
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		v, err = getRecord(tx, kind, name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted != nil) {
		return nil, fmt.Errorf("%w: %s", ErrVaultNotFound, u.Host)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
