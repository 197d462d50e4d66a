// Package localnet is how pgflex's own clients reach the daemon: HTTPS that trusts exactly
// pgflex's CA, with *.localhost host names (key-store hosts such as v1.vault.localhost) dialed
// at the loopback address, as browsers and curl do, since this machine's resolver does not
// resolve them. TLS still verifies the real host name.
package localnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// IsLocalhost reports whether host is localhost or a name under .localhost.
func IsLocalhost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// DialContext dials addr, sending *.localhost names to 127.0.0.1 (keeping the port).
func DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && IsLocalhost(host) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
}

// LookupHost resolves host as DialContext dials it: *.localhost to 127.0.0.1, anything else
// through the resolver (a pgx LookupFunc).
func LookupHost(ctx context.Context, host string) ([]string, error) {
	if IsLocalhost(host) {
		return []string{"127.0.0.1"}, nil
	}
	return net.DefaultResolver.LookupHost(ctx, host)
}

// HTTPClient trusts only the CA certificates in caPEM.
func HTTPClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA certificate is not valid PEM")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		DialContext:         DialContext(&net.Dialer{Timeout: 10 * time.Second}),
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}
