// Package profile is the CLI profile file that `pgflex serve` writes into its data directory
// (mode 0600): where the daemon listens, the CA certificate to trust, and the administrator's
// client credentials. The daemon writes it; the CLI and tests read it.
package profile

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// User names who the profile signs in as, as `az account show` reports it.
type User struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Profile is the file's content.
type Profile struct {
	Endpoint            string `json:"endpoint"`
	CACertificate       string `json:"caCertificate"`
	TenantID            string `json:"tenantId"`
	SubscriptionID      string `json:"subscriptionId"`
	SubscriptionName    string `json:"subscriptionName"`
	ClientID            string `json:"clientId"`
	ClientSecret        string `json:"clientSecret"`
	TokenEndpoint       string `json:"tokenEndpoint"`
	ARMAudience         string `json:"armAudience"`
	KeyVaultDNSSuffix   string `json:"keyVaultDnsSuffix"`
	ManagedHSMDNSSuffix string `json:"managedHsmDnsSuffix"`
	// GraphEndpoint is Microsoft Graph's base URL and token resource (https://graph.localhost:8443/).
	GraphEndpoint string `json:"graphEndpoint,omitempty"`
	// PortalEndpoint is the web console (https://portal.localhost:8443); `pgflex portal` asks
	// it for a one-time sign-in link.
	PortalEndpoint string `json:"portalEndpoint,omitempty"`
	// PostgresPort is the PostgreSQL endpoint's port, where every server is reached by its
	// fullyQualifiedDomainName (5432 unless the daemon was told otherwise; 0 in an older
	// profile means 5432).
	PostgresPort int  `json:"postgresPort,omitempty"`
	User         User `json:"user"`
}

// Load reads a profile file.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("profile %s is not valid JSON: %w", path, err)
	}
	if p.Endpoint == "" || p.TokenEndpoint == "" || p.ClientID == "" {
		return nil, fmt.Errorf("profile %s lacks endpoint, tokenEndpoint or clientId", path)
	}
	return &p, nil
}

// Write stores a profile atomically with mode 0600: it holds a client secret.
func Write(path string, p *Profile) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// Validate checks that the profile names everything a client needs; its errors are sentences
// for the user.
func (p *Profile) Validate() error {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"endpoint", p.Endpoint}, {"caCertificate", p.CACertificate}, {"tenantId", p.TenantID},
		{"subscriptionId", p.SubscriptionID}, {"clientId", p.ClientID}, {"clientSecret", p.ClientSecret},
		{"tokenEndpoint", p.TokenEndpoint}, {"armAudience", p.ARMAudience},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("it lacks %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct{ name, value string }{{"endpoint", p.Endpoint}, {"tokenEndpoint", p.TokenEndpoint}} {
		u, err := url.Parse(f.value)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%s %q is not an https URL", f.name, f.value)
		}
	}
	if _, err := p.CertPool(); err != nil {
		return err
	}
	return nil
}

// CertPool holds exactly the profile's CA certificate(s): a client trusts nothing else.
func (p *Profile) CertPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(p.CACertificate)) {
		return nil, errors.New("caCertificate holds no PEM certificate")
	}
	return pool, nil
}
