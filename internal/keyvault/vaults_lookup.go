package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/pgflex/pgflex/internal/store"
)

// ErrVaultNotFound is returned by LookupVault when no live vault answers to a URL.
var ErrVaultNotFound = errors.New("vault not found")

// LookupVault returns the live (not soft-deleted) vault behind a vault URL such as
// https://{name}.{suffix}:{port}, for the data plane's checks of a customer key's vault
// (region, subscription, purge protection).
func (s *Service) LookupVault(ctx context.Context, vaultURL string) (*Vault, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not a vault URL", ErrVaultNotFound, vaultURL)
	}
	name := s.vaultNameFromHost(u.Host)
	if name == "" {
		return nil, fmt.Errorf("%w: %s is not a host of this key store", ErrVaultNotFound, u.Host)
	}
	var v Vault
	err = s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, vaultKey(name), &v) })
	if errors.Is(err, store.ErrNotFound) || (err == nil && v.Deleted != nil) {
		return nil, fmt.Errorf("%w: %s", ErrVaultNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}
