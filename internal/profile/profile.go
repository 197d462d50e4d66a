// Package profile is the CLI profile file that `pgflex serve` writes into its data directory
// (mode 0600): where the daemon listens, the CA certificate to trust, and the administrator's
// client credentials. The daemon writes it; the CLI and tests read it.
package profile

import (
	"encoding/json"
	"fmt"
	"os"

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
	User                User   `json:"user"`
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
