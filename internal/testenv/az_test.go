package testenv

import (
	"slices"
	"testing"
)

// TestAZEnv: az under test never inherits what would point it at another cloud, CA bundle or
// identity, and gets the settings the harness gives it.
func TestAZEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin", "HOME=/root", "AZURE_CONFIG_DIR=/root/.azure", "AZURE_CLIENT_SECRET=s",
		"MSI_ENDPOINT=http://x", "MSI_SECRET=s", "IDENTITY_HEADER=h", "REQUESTS_CA_BUNDLE=/x.pem", "ARM_CLOUD_METADATA_URL=http://x",
		"PGFLEX_PROFILE=/p.json", "no_proxy=example.com", "APPSETTING_WEBSITE_SITE_NAME=x", "ACC_CLOUD=x"}
	got := azEnv(base, map[string]string{"AZURE_CONFIG_DIR": "/tmp/az", "REQUESTS_CA_BUNDLE": "/tmp/az/ca.pem"})
	slices.Sort(got)
	want := []string{"AZURE_CONFIG_DIR=/tmp/az", "HOME=/root", "PATH=/usr/bin", "REQUESTS_CA_BUNDLE=/tmp/az/ca.pem"}
	if !slices.Equal(got, want) {
		t.Fatalf("azEnv = %v, want %v", got, want)
	}
}
