// Package azcred lets Azure's own SDK for Go talk to pgflex: an azcore.TokenCredential that
// gets tokens from pgflex's token endpoint with client credentials, and an HTTP transport that
// trusts pgflex's CA and dials *.localhost host names (key-store hosts) at the loopback address.
package azcred

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/pgflex/pgflex/internal/localnet"
	"github.com/pgflex/pgflex/internal/profile"
)

// ClientSecretCredential is an azcore.TokenCredential for a pgflex service principal.
type ClientSecretCredential struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client

	mu    sync.Mutex
	cache map[string]azcore.AccessToken
}

var _ azcore.TokenCredential = (*ClientSecretCredential)(nil)

// GetToken returns a cached token for the requested scope or fetches a new one.
func (c *ClientSecretCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 {
		return azcore.AccessToken{}, fmt.Errorf("pgflex tokens are for exactly one scope, got %v", opts.Scopes)
	}
	scope := opts.Scopes[0]
	c.mu.Lock()
	if t, ok := c.cache[scope]; ok && time.Until(t.ExpiresOn) > 2*time.Minute {
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID},
		"client_secret": {c.ClientSecret}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("request token: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return azcore.AccessToken{}, fmt.Errorf("decode token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return azcore.AccessToken{}, fmt.Errorf("token request refused (%s): %s", body.Error, body.Description)
	}
	t := azcore.AccessToken{Token: body.AccessToken, ExpiresOn: time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[string]azcore.AccessToken{}
	}
	c.cache[scope] = t
	c.mu.Unlock()
	return t, nil
}

// HTTPClient trusts only caPEM and dials *.localhost names at 127.0.0.1 (see localnet).
func HTTPClient(caPEM []byte) (*http.Client, error) { return localnet.HTTPClient(caPEM) }

// FromProfile returns the credential and the SDK client options (cloud configuration pointing
// at the daemon, transport trusting its CA) for a pgflex profile.
func FromProfile(p *profile.Profile) (*ClientSecretCredential, *arm.ClientOptions, error) {
	hc, err := HTTPClient([]byte(p.CACertificate))
	if err != nil {
		return nil, nil, err
	}
	cred := &ClientSecretCredential{TokenURL: p.TokenEndpoint, ClientID: p.ClientID, ClientSecret: p.ClientSecret, HTTPClient: hc}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: p.Endpoint + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: p.Endpoint, Audience: p.ARMAudience},
			},
		},
		Transport: hc,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	return cred, opts, nil
}
