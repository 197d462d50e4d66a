// Package tlsca is pgflex's certificate authority: it signs the daemon's HTTPS certificate and the
// certificates PostgreSQL servers present, so that clients trust exactly one CA certificate (the
// one in the CLI profile). The CA's private key is sealed under the root key.
package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pgflex/pgflex/internal/fsutil"
	"github.com/pgflex/pgflex/internal/seal"
)

// CA signs certificates.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 397 * 24 * time.Hour
	renewBeforeEnd = 30 * 24 * time.Hour
)

// LoadOrCreate loads the CA from dir (ca.crt, ca.key.sealed), creating it on first use.
func LoadOrCreate(dir string, box *seal.Box) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key.sealed")
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, os.ErrNotExist) {
		return create(certPath, keyPath, box)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyDER, err := box.ReadFile(keyPath, []byte("tlsca/ca"))
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	defer clear(keyDER)
	key, err := x509.ParseECPrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, fmt.Errorf("CA certificate %s is not PEM", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{cert: cert, certPEM: certPEM, key: key}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return n
}

func create(certPath, keyPath string, box *seal.Box) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pgflex CA", Organization: []string{"pgflex"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(keyDER)
	// Key first: a crash between the two writes leaves no certificate, so the next start creates
	// a fresh CA instead of loading a certificate without its key.
	if err := box.WriteFile(keyPath, keyDER, []byte("tlsca/ca")); err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := fsutil.WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return &CA{cert: cert, certPEM: certPEM, key: key}, nil
}

// CertPEM is the CA certificate clients trust.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool is a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Leaf is a certificate the CA issued, with its private key in PEM.
type Leaf struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Issue signs a server certificate for the DNS names and IP addresses in hosts.
func (ca *CA) Issue(commonName string, hosts []string) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"pgflex"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", commonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(keyDER)
	return &Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ServerCertificate returns the daemon's HTTPS certificate for hosts, stored in dir (server.crt,
// server.key.sealed) and reissued when the host list changed or it nears expiry.
func (ca *CA) ServerCertificate(dir string, hosts []string, box *seal.Box) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key.sealed")
	if certPEM, err := os.ReadFile(certPath); err == nil {
		if keyPEM, err := box.ReadFile(keyPath, []byte("tlsca/server")); err == nil {
			tc, err := tls.X509KeyPair(certPEM, keyPEM)
			clear(keyPEM)
			if err == nil && ca.stillGood(tc, hosts) {
				return tc, nil
			}
		}
	}
	leaf, err := ca.Issue("pgflex", hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	defer clear(leaf.KeyPEM)
	if err := box.WriteFile(keyPath, leaf.KeyPEM, []byte("tlsca/server")); err != nil {
		return tls.Certificate{}, err
	}
	if err := fsutil.WriteFileAtomic(certPath, leaf.CertPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
}

func (ca *CA) stillGood(tc tls.Certificate, hosts []string) bool {
	leaf, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < renewBeforeEnd {
		return false
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err != nil {
		return false
	}
	var have []string
	have = append(have, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	slices.Sort(have)
	want := slices.Clone(hosts)
	slices.Sort(want)
	return slices.Equal(have, want)
}
