package keyvault

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384 and SHA-512 for RS384, RS512, PS384, PS512
	"errors"
	"hash"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/store"
)

// The RSA encryption algorithms: RSA-OAEP is OAEP with SHA-1 (and MGF1-SHA-1), RSA-OAEP-256
// with SHA-256, RSA1_5 is PKCS#1 v1.5.
const (
	AlgRSAOAEP    = "RSA-OAEP"
	AlgRSAOAEP256 = "RSA-OAEP-256"
	AlgRSA15      = "RSA1_5"
)

// cryptoOp maps the last path segment of a cryptographic operation to its key operation.
func cryptoOp(seg string) *keyOp {
	switch strings.ToLower(seg) {
	case "wrapkey":
		return &opWrap
	case "unwrapkey":
		return &opUnwrap
	case "encrypt":
		return &opEncrypt
	case "decrypt":
		return &opDecrypt
	case "sign":
		return &opSign
	case "verify":
		return &opVerify
	}
	return nil
}

type keyOperationBody struct {
	Alg    string  `json:"alg"`
	Value  *string `json:"value"`
	Digest *string `json:"digest"`
	IV     *string `json:"iv"`
	AAD    *string `json:"aad"`
	Tag    *string `json:"tag"`
}

// cryptoHandler runs a cryptographic operation named by its path segment.
func (s *Service) cryptoHandler(seg string) handler {
	jwkOp := map[string]string{"wrapkey": "wrapKey", "unwrapkey": "unwrapKey", "encrypt": "encrypt",
		"decrypt": "decrypt", "sign": "sign", "verify": "verify"}[strings.ToLower(seg)]
	return func(r *kvRequest) (result, error) {
		var b keyOperationBody
		if err := decodeBody(r, &b); err != nil {
			return result{}, err
		}
		if b.Alg == "" {
			return result{}, badParameter("The algorithm (alg) is required.")
		}
		if b.Value == nil {
			return result{}, badParameter("The value is required.")
		}
		value, err := decodeB64URL(*b.Value)
		if err != nil {
			return result{}, badParameter("The value is not valid base64url: %v.", err)
		}
		// value (wrapKey's input) and out (unwrapKey's result) are plaintext DEKs: zero them
		// once answered. The base64 strings of the wire format cannot be zeroed in Go; they live
		// only until the request's memory is collected.
		defer clear(value)
		var digest []byte
		if jwkOp == "verify" {
			if b.Digest == nil {
				return result{}, badParameter("The digest is required.")
			}
			if digest, err = decodeB64URL(*b.Digest); err != nil {
				return result{}, badParameter("The digest is not valid base64url: %v.", err)
			}
		}
		var k *Key
		var kv *KeyVersion
		if err := s.st.View(r.Context(), func(tx store.Tx) error {
			var err error
			k, kv, err = loadKey(tx, r.vault, r.keyName, r.version)
			return err
		}); err != nil {
			return result{}, err
		}
		r.keyName, r.version = k.Name, kv.Version
		if u := kv.usableFor(jwkOp, s.now()); u != nil {
			return result{}, &kvError{Status: http.StatusForbidden, Code: u.code, Inner: u.inner, Message: u.msg}
		}
		storeKey := versionKey(r.vault.ID, k.Name, kv.Version)
		out, err := s.rsaOperation(jwkOp, b.Alg, storeKey, kv, value, digest)
		if err != nil {
			return result{}, err
		}
		kid := s.kid(r.vault, k.Name, kv.Version)
		if jwkOp == "verify" {
			return result{http.StatusOK, map[string]any{"value": out != nil}}, nil
		}
		defer clear(out)
		return result{http.StatusOK, map[string]any{"kid": kid, "value": b64.EncodeToString(out)}}, nil
	}
}

// rsaOperation performs one RSA operation with a key version. For verify, a non-nil result
// means the signature is valid.
func (s *Service) rsaOperation(op, alg, storeKey string, kv *KeyVersion, value, digest []byte) ([]byte, error) {
	switch op {
	case "wrapKey", "encrypt":
		return rsaEncrypt(op, alg, kv.publicKey(), value)
	case "unwrapKey", "decrypt":
		priv, err := s.privateKey(storeKey, kv)
		if err != nil {
			return nil, err
		}
		return rsaDecrypt(op, alg, priv, value)
	case "sign":
		h, pss, err := signatureHash(alg)
		if err != nil {
			return nil, err
		}
		if len(value) != h.Size() {
			return nil, badParameter("The digest for %s must be %d bytes (the %s digest of the data); %d bytes were given.", alg, h.Size(), h, len(value))
		}
		priv, err := s.privateKey(storeKey, kv)
		if err != nil {
			return nil, err
		}
		if pss {
			return rsa.SignPSS(rand.Reader, priv, h, value, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, priv, h, value)
	case "verify":
		h, pss, err := signatureHash(alg)
		if err != nil {
			return nil, err
		}
		if len(digest) != h.Size() {
			return nil, badParameter("The digest for %s must be %d bytes; %d bytes were given.", alg, h.Size(), len(digest))
		}
		if pss {
			err = rsa.VerifyPSS(kv.publicKey(), h, digest, value, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		} else {
			err = rsa.VerifyPKCS1v15(kv.publicKey(), h, digest, value)
		}
		if err != nil {
			return nil, nil
		}
		return []byte{1}, nil
	}
	return nil, errors.New("unknown key operation " + op)
}

func oaepHash(alg string) (hash.Hash, bool) {
	switch alg {
	case AlgRSAOAEP:
		return sha1.New(), true
	case AlgRSAOAEP256:
		return sha256.New(), true
	}
	return nil, false
}

func badEncryptionAlg(op, alg string) error {
	return badParameter("Invalid algorithm '%s' for %s with an RSA key. Allowed algorithms are RSA-OAEP, RSA-OAEP-256 and RSA1_5.", alg, op)
}

// rsaEncrypt encrypts (or wraps) value with the public key.
func rsaEncrypt(op, alg string, pub *rsa.PublicKey, value []byte) ([]byte, error) {
	if h, ok := oaepHash(alg); ok {
		if max := pub.Size() - 2*h.Size() - 2; len(value) > max {
			return nil, badParameter("The value is too long for %s with a %d-bit key: at most %d bytes, %d were given.", alg, pub.Size()*8, max, len(value))
		}
		return rsa.EncryptOAEP(h, rand.Reader, pub, value, nil)
	}
	if alg == AlgRSA15 {
		if max := pub.Size() - 11; len(value) > max {
			return nil, badParameter("The value is too long for RSA1_5 with a %d-bit key: at most %d bytes, %d were given.", pub.Size()*8, max, len(value))
		}
		return rsa.EncryptPKCS1v15(rand.Reader, pub, value)
	}
	return nil, badEncryptionAlg(op, alg)
}

// rsaDecrypt decrypts (or unwraps) value with the private key.
func rsaDecrypt(op, alg string, priv *rsa.PrivateKey, value []byte) ([]byte, error) {
	var out []byte
	var err error
	if h, ok := oaepHash(alg); ok {
		out, err = rsa.DecryptOAEP(h, nil, priv, value, nil)
	} else if alg == AlgRSA15 {
		out, err = rsa.DecryptPKCS1v15(nil, priv, value)
	} else {
		return nil, badEncryptionAlg(op, alg)
	}
	if err != nil {
		return nil, badParameter("The value could not be %s with this key version and algorithm %s.", map[string]string{"unwrapKey": "unwrapped", "decrypt": "decrypted"}[op], alg)
	}
	return out, nil
}

// signatureHash maps a signature algorithm to its digest and padding.
func signatureHash(alg string) (crypto.Hash, bool, error) {
	switch alg {
	case "RS256":
		return crypto.SHA256, false, nil
	case "RS384":
		return crypto.SHA384, false, nil
	case "RS512":
		return crypto.SHA512, false, nil
	case "PS256":
		return crypto.SHA256, true, nil
	case "PS384":
		return crypto.SHA384, true, nil
	case "PS512":
		return crypto.SHA512, true, nil
	}
	return 0, false, badParameter("Invalid algorithm '%s' for sign or verify with an RSA key. Allowed algorithms are RS256, RS384, RS512, PS256, PS384 and PS512.", alg)
}
