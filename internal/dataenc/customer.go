package dataenc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"
)

// KeyStoreAPIVersion is the Key Vault REST version pgflex's data plane speaks.
const KeyStoreAPIVersion = "7.5"

// TokenSource returns a bearer token for the key store at vaultURL, as the server's identity.
type TokenSource func(ctx context.Context, vaultURL string) (string, error)

// CustomerManaged wraps DEKs with a customer's key through the key store's REST API, exactly
// as Azure's service does: wrapKey/unwrapKey over HTTPS, authenticated as the server's
// user-assigned managed identity. It never sees key material.
type CustomerManaged struct {
	HTTP *http.Client
	// KeyURI is the configured key: versioned (pinned) or versionless (follows the newest).
	KeyURI string
	Token  TokenSource
}

// KeyInfo is what the key store says about a key version.
type KeyInfo struct {
	KeyID     string // full versioned kid
	KeyType   string // RSA, RSA-HSM, EC, ...
	Bits      int    // RSA modulus size
	KeyOps    []string
	Enabled   bool
	NotBefore *time.Time
	Expires   *time.Time
}

// Usable reports why the key cannot be used for data encryption now, or "" if it can.
func (k *KeyInfo) Usable(now time.Time) string {
	switch {
	case k.KeyType != "RSA" && k.KeyType != "RSA-HSM":
		return fmt.Sprintf("the key type is %s; data encryption needs an RSA key", k.KeyType)
	case k.Bits != 2048 && k.Bits != 3072 && k.Bits != 4096:
		return fmt.Sprintf("the key has %d bits; data encryption needs 2048, 3072 or 4096", k.Bits)
	case !k.Enabled:
		return "the key is disabled"
	case k.NotBefore != nil && now.Before(*k.NotBefore):
		return fmt.Sprintf("the key is not active until %s", k.NotBefore.UTC().Format(time.RFC3339))
	case k.Expires != nil && !now.Before(*k.Expires):
		return fmt.Sprintf("the key expired at %s", k.Expires.UTC().Format(time.RFC3339))
	}
	for _, op := range []string{"wrapKey", "unwrapKey"} {
		found := false
		for _, have := range k.KeyOps {
			found = found || strings.EqualFold(have, op)
		}
		if !found {
			return fmt.Sprintf("the key does not permit the %s operation (key_ops)", op)
		}
	}
	return ""
}

// KeyStoreError is a failed key-store call. Refused tells a decision of the key store (the key
// or permission is not there: 401, 403, 404, a disabled key) from a failure to reach it
// (network error, 5xx, throttling), which is retried rather than acted on.
type KeyStoreError struct {
	Op      string
	Status  int
	Code    string
	Message string
	Refused bool
	Err     error
}

func (e *KeyStoreError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("key store %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("key store %s: %d %s: %s", e.Op, e.Status, e.Code, e.Message)
}

func (e *KeyStoreError) Unwrap() error { return e.Err }

// IsRefusal reports whether err is a key store's refusal (as opposed to a transient failure).
func IsRefusal(err error) bool {
	var ke *KeyStoreError
	return errors.As(err, &ke) && ke.Refused
}

// call makes one key-store request with a JSON body (nil for none) and decodes a successful
// answer into out. The response body is zeroed once decoded: an unwrapKey answer carries the DEK.
func (c CustomerManaged) call(ctx context.Context, op, method, url string, body []byte, out any) error {
	u, err := neturl.Parse(url)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return &KeyStoreError{Op: op, Refused: true, Err: fmt.Errorf("%w: %q", ErrMalformedKeyID, url)}
	}
	tok, err := c.Token(ctx, "https://"+u.Host)
	if err != nil {
		return &KeyStoreError{Op: op, Refused: true, Err: fmt.Errorf("token for the server's identity: %w", err)}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url+"?api-version="+KeyStoreAPIVersion, rd)
	if err != nil {
		return &KeyStoreError{Op: op, Refused: true, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", UserAgent(ctx))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var dnsErr *net.DNSError
		return &KeyStoreError{Op: op, Err: err, Refused: errors.As(err, &dnsErr) && dnsErr.IsNotFound}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	defer clear(raw)
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		refused := resp.StatusCode == 400 || resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 409
		return &KeyStoreError{Op: op, Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, Refused: refused}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return &KeyStoreError{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("decode response: %w", err)}
		}
	}
	return nil
}

var b64url = base64.RawURLEncoding

// keyOpResult is a wrapKey/unwrapKey answer. Value stays bytes, not a string, so that an
// unwrapped DEK in it can be zeroed.
type keyOpResult struct {
	Kid   string          `json:"kid"`
	Value json.RawMessage `json:"value"`
}

// value decodes the base64url "value" of the answer into a new slice.
func (r *keyOpResult) value() ([]byte, error) {
	v := bytes.Trim(r.Value, `"`)
	out := make([]byte, b64url.DecodedLen(len(v)))
	n, err := b64url.Decode(out, v)
	if err != nil {
		clear(out)
		return nil, err
	}
	return out[:n], nil
}

// keyOpBody is the JSON body {"alg":alg,"value":base64url(value)} of wrapKey and unwrapKey,
// built by hand so that the caller can zero it when value is a DEK.
func keyOpBody(alg string, value []byte) []byte {
	quoted, _ := json.Marshal(alg) // a string always marshals
	head := `{"alg":` + string(quoted) + `,"value":"`
	b := make([]byte, 0, len(head)+b64url.EncodedLen(len(value))+2)
	b = append(b, head...)
	b = b64url.AppendEncode(b, value)
	return append(b, `"}`...)
}

// Wrap wraps dek with the configured key (its newest version when the reference is versionless).
func (c CustomerManaged) Wrap(ctx context.Context, dek []byte) (*Envelope, error) {
	var res keyOpResult
	url := strings.TrimSuffix(c.KeyURI, "/") + "/wrapkey"
	body := keyOpBody(AlgRSAOAEP256, dek)
	defer clear(body)
	if err := c.call(ctx, "wrapKey", http.MethodPost, url, body, &res); err != nil {
		return nil, err
	}
	wrapped, err := res.value()
	if err != nil {
		return nil, &KeyStoreError{Op: "wrapKey", Err: fmt.Errorf("wrapped value is not base64url: %w", err)}
	}
	if _, _, v, err := ParseKeyID(res.Kid); err != nil || v == "" {
		return nil, &KeyStoreError{Op: "wrapKey", Err: fmt.Errorf("the key store answered kid %q without a version", res.Kid)}
	}
	return &Envelope{KeyID: res.Kid, Algorithm: AlgRSAOAEP256, Wrapped: wrapped, Created: time.Now().UTC()}, nil
}

// Unwrap unwraps with exactly the key version that wrapped the envelope.
func (c CustomerManaged) Unwrap(ctx context.Context, env *Envelope) ([]byte, error) {
	var res keyOpResult
	url := strings.TrimSuffix(env.KeyID, "/") + "/unwrapkey"
	if err := c.call(ctx, "unwrapKey", http.MethodPost, url, keyOpBody(env.Algorithm, env.Wrapped), &res); err != nil {
		return nil, err
	}
	defer clear(res.Value)
	dek, err := res.value()
	if err != nil {
		return nil, &KeyStoreError{Op: "unwrapKey", Err: fmt.Errorf("unwrapped value is not base64url: %w", err)}
	}
	if len(dek) != DEKSize {
		clear(dek)
		return nil, &KeyStoreError{Op: "unwrapKey", Refused: true, Err: fmt.Errorf("unwrapped DEK has %d bytes, want %d", len(dek), DEKSize)}
	}
	return dek, nil
}

// Get reads the configured key (the newest version for a versionless reference).
func (c CustomerManaged) Get(ctx context.Context) (*KeyInfo, error) {
	return c.GetVersion(ctx, c.KeyURI)
}

// GetVersion reads one key version (or the newest when kid has no version).
func (c CustomerManaged) GetVersion(ctx context.Context, kid string) (*KeyInfo, error) {
	var res struct {
		Key struct {
			Kid    string   `json:"kid"`
			Kty    string   `json:"kty"`
			N      string   `json:"n"`
			KeyOps []string `json:"key_ops"`
		} `json:"key"`
		Attributes struct {
			Enabled *bool  `json:"enabled"`
			NBF     *int64 `json:"nbf"`
			Exp     *int64 `json:"exp"`
		} `json:"attributes"`
	}
	url := strings.TrimSuffix(kid, "/")
	if _, _, v, err := ParseKeyID(url); err == nil && v == "" {
		url += "/" // the SDKs ask for the newest version with an empty version segment
	}
	if err := c.call(ctx, "get", http.MethodGet, url, nil, &res); err != nil {
		return nil, err
	}
	n, _ := b64url.DecodeString(res.Key.N)
	info := &KeyInfo{KeyID: res.Key.Kid, KeyType: res.Key.Kty, Bits: new(big.Int).SetBytes(n).BitLen(), KeyOps: res.Key.KeyOps,
		Enabled: res.Attributes.Enabled == nil || *res.Attributes.Enabled}
	if res.Attributes.NBF != nil {
		t := time.Unix(*res.Attributes.NBF, 0)
		info.NotBefore = &t
	}
	if res.Attributes.Exp != nil {
		t := time.Unix(*res.Attributes.Exp, 0)
		info.Expires = &t
	}
	return info, nil
}
