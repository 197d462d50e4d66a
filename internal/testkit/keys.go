package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

// AddPrivateKey adds the forms in which a private key's secret could be written: its DER
// encodings (PKCS #1 or SEC 1, and PKCS #8) and each secret number (RSA's D, P and Q; ECDSA's D;
// Ed25519's seed) raw, in hex (lower and upper case), in decimal, and in base64 and base64url at
// each of the three byte alignments a longer encoded blob (a PEM body, a JSON []byte) could put
// it in. Nothing public is added: a modulus or a public point is expected to be found.
func (n Needles) AddPrivateKey(t testing.TB, name string, key crypto.PrivateKey) Needles {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n[name+" PKCS#8 DER"] = pkcs8
	numbers := map[string][]byte{}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		n[name+" PKCS#1 DER"] = x509.MarshalPKCS1PrivateKey(k)
		numbers["D"], numbers["P"], numbers["Q"] = k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes()
	case *ecdsa.PrivateKey:
		sec1, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n[name+" SEC 1 DER"] = sec1
		d, err := k.Bytes() // fixed length, as SEC 1 writes it
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		numbers["D"] = d
	case ed25519.PrivateKey:
		numbers["seed"] = k.Seed()
	default:
		t.Fatalf("%s: unsupported private key type %T", name, key)
	}
	for num, v := range numbers {
		if len(v) < 16 {
			t.Fatalf("%s: %s is only %d bytes: too short to be a needle", name, num, len(v))
		}
		p := name + " " + num
		n[p] = v
		h := hex.EncodeToString(v)
		n[p+" hex"], n[p+" HEX"] = []byte(h), []byte(strings.ToUpper(h))
		n[p+" decimal"] = []byte(new(big.Int).SetBytes(v).String())
		for shift := 0; shift < 3; shift++ {
			part := v[shift:]
			part = part[:len(part)-len(part)%3]
			s := strconv.Itoa(shift)
			n[p+" base64@"+s] = []byte(base64.StdEncoding.EncodeToString(part))
			n[p+" base64url@"+s] = []byte(base64.URLEncoding.EncodeToString(part))
		}
	}
	return n
}
