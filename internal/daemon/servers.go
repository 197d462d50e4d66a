package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataplane"
	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/identity"
	"github.com/pgflex/pgflex/internal/keyvault"
	"github.com/pgflex/pgflex/internal/localnet"
	"github.com/pgflex/pgflex/internal/volume"
)

// openServers wires the flexible-server provider to the data plane, the identities, the key
// store and the token issuer.
func (d *Daemon) openServers(ctx context.Context) error {
	d.metrics = prometheus.NewRegistry()
	d.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dataDir, err := filepath.Abs(d.cfg.DataDir)
	if err != nil {
		return err
	}
	layer, err := d.chooseVolumeLayer(ctx, dataDir)
	if err != nil {
		return err
	}
	dp, err := dataplane.New(ctx, dataplane.Config{Root: filepath.Join(dataDir, "servers"),
		BackupRoot: filepath.Join(dataDir, "regions"), RuntimeDir: d.cfg.RuntimeDir, CA: d.ca,
		InstallationID: d.cfg.installationID(), Hide: []string{dataDir}, DNSSuffix: d.cfg.PostgresDNSSuffix,
		VolumeLayer: layer, Logger: d.log})
	if err != nil {
		return err
	}
	d.dataPlane = dp
	keyHTTP, err := localnet.HTTPClient(d.ca.CertPEM())
	if err != nil {
		return err
	}
	d.servers = flexserver.New(d.cfg.Servers, flexserver.Deps{
		Store: d.st, Operations: d.ops, Groups: d.resources, DataPlane: dp, ServiceKeys: d.keyVault,
		Identities: identityDirectory{d.identities}, KeyStores: keyStoreDirectory{d.keyVault, d.cfg.KeyVaultSuffix},
		Tokens: d.identityTokens, KeyStoreHTTP: keyHTTP, Events: d.activity, Metrics: d.metrics, Samples: d.insights,
		Monitor: d.cfg.KeyMonitor, Log: d.log,
	})
	d.servers.RegisterRoutes(d.router)
	// PostgreSQL's archive_command asks this socket to archive its WAL; it must answer before
	// any server starts (adopted servers may already be archiving).
	ps := dp.ArchiveServer(d.servers.InstanceByUID, d.servers.ArchivePassphrases)
	if err := ps.Listen(); err != nil {
		return fmt.Errorf("backup archive socket: %w", err)
	}
	d.loops.Go(func() {
		if err := ps.Serve(d.base); err != nil {
			d.log.Error("backup archive socket", "err", err)
		}
	})
	return nil
}

// chooseVolumeLayer picks the layer of new servers' volumes from --volume-layer and what this
// host offers (a throwaway fscrypt volume made under the data directory proves fscrypt), and
// logs why.
func (d *Daemon) chooseVolumeLayer(ctx context.Context, dataDir string) (string, error) {
	facts := volume.ProbeHost(ctx, dataDir, d.cfg.VolumeLayer)
	choice, err := volume.Choose(d.cfg.VolumeLayer, facts)
	if err != nil {
		return "", err
	}
	d.log.InfoContext(ctx, "volume layer for new servers", "layer", choice.Layer, "requested", cmp.Or(d.cfg.VolumeLayer, volume.LayerAuto),
		"reason", choice.Reason)
	return choice.Layer, nil
}

// identityTokens issues a key-store token for a managed identity's principal; the audience
// follows the key store's kind (vault or Managed HSM) from the host name.
func (d *Daemon) identityTokens(ctx context.Context, principalID, vaultURL string) (string, error) {
	u, err := url.Parse(vaultURL)
	if err != nil {
		return "", err
	}
	// Only this daemon's own key store gets an identity's token: same port as the daemon.
	if _, port, err := net.SplitHostPort(strings.TrimPrefix(d.endpoint, "https://")); err != nil || u.Port() != port {
		return "", fmt.Errorf("%s is not a key store of this installation (the key store answers on port %s)", u.Host, port)
	}
	host := strings.ToLower(u.Hostname())
	var aud string
	switch {
	case strings.HasSuffix(host, "."+d.cfg.KeyVaultSuffix):
		aud = d.issuer.Audiences().KeyVault
	case strings.HasSuffix(host, "."+d.cfg.ManagedHSMSuffix):
		aud = d.issuer.Audiences().ManagedHSM
	default:
		return "", fmt.Errorf("%s is not a key store of this installation", u.Host)
	}
	tok, _, err := d.issuer.IssueForIdentity(ctx, principalID, aud)
	return tok, err
}

// identityDirectory adapts Microsoft.ManagedIdentity to the provider.
type identityDirectory struct{ s *identity.Service }

func (i identityDirectory) LookupIdentity(ctx context.Context, id arm.ResourceID) (flexserver.IdentityInfo, error) {
	ident, err := i.s.Get(ctx, id)
	if errors.Is(err, identity.ErrNotFound) {
		return flexserver.IdentityInfo{}, fmt.Errorf("%w: %s", flexserver.ErrIdentityNotFound, id)
	}
	if err != nil {
		return flexserver.IdentityInfo{}, err
	}
	return flexserver.IdentityInfo{ID: ident.ID(), PrincipalID: ident.PrincipalID, ClientID: ident.ClientID, Location: ident.Location}, nil
}

// keyStoreDirectory adapts the embedded key store to the provider.
type keyStoreDirectory struct {
	kv     *keyvault.Service
	suffix string
}

func (k keyStoreDirectory) LookupKeyStore(ctx context.Context, vaultURL string) (flexserver.KeyStoreInfo, error) {
	v, err := k.kv.LookupVault(ctx, vaultURL)
	if errors.Is(err, keyvault.ErrVaultNotFound) {
		return flexserver.KeyStoreInfo{}, fmt.Errorf("%w: %v", flexserver.ErrKeyStoreNotFound, err)
	}
	if err != nil {
		return flexserver.KeyStoreInfo{}, err
	}
	// Kind is "Key Vault" or "Managed HSM": a host under the Managed HSM suffix resolves to an HSM.
	uri := k.kv.VaultURI(v.Name)
	if v.IsManagedHSM() {
		uri = k.kv.HSMURI(v.Name)
	}
	return flexserver.KeyStoreInfo{ID: v.ResourceID(), Kind: v.KindName(), Location: v.Location,
		SoftDelete: true, PurgeProtection: v.PurgeProtected(), URI: strings.TrimSuffix(uri, "/")}, nil
}
