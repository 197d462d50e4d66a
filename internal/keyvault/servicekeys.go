package keyvault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/regions"
	"github.com/pgflex/pgflex/internal/store"
)

// Service-managed keys: one pgflex-owned RSA key per region, in an internal vault that no
// principal can reach through any API. It has no ARM record, no access policies, and its host
// refuses every token. The data plane wraps and unwraps server DEKs with it in process.

// serviceVaultID keys the internal vault's records and audit trail.
const serviceVaultID = "service"

// serviceKeyBits is the size of service keys: 128-bit security, as for customer keys of 3072.
const serviceKeyBits = 3072

type serviceKeyRecord struct {
	Region  string `json:"region"`
	Current string `json:"current"`
}

func serviceKeyName(region string) string   { return "smk-" + region }
func serviceRecordKey(region string) string { return "kv/svc/" + region }
func serviceVersionKey(region, version string) string {
	return "kv/svcver/" + region + "/" + version
}

// serviceKey returns the current service key version of a region, creating the key on first use.
func (s *Service) serviceKey(ctx context.Context, region string) (*KeyVersion, error) {
	load := func() (*KeyVersion, error) {
		var kv *KeyVersion
		err := s.st.View(ctx, func(tx store.Tx) error {
			var rec serviceKeyRecord
			if err := store.GetJSON(tx, serviceRecordKey(region), &rec); err != nil {
				return err
			}
			var v KeyVersion
			if err := store.GetJSON(tx, serviceVersionKey(region, rec.Current), &v); err != nil {
				return err
			}
			kv = &v
			return nil
		})
		return kv, err
	}
	kv, err := load()
	if !errors.Is(err, store.ErrNotFound) {
		return kv, err
	}
	s.svcMu.Lock()
	defer s.svcMu.Unlock()
	if kv, err = load(); !errors.Is(err, store.ErrNotFound) {
		return kv, err
	}
	version := newVersionID()
	gen, priv, err := generateRSA(s.box, serviceKeyBits, serviceVersionKey(region, version))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	gen.Version, gen.KeyOps, gen.Enabled, gen.Created, gen.Updated = version, []string{"wrapKey", "unwrapKey"}, true, now, now
	if err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, serviceVersionKey(region, version), gen); err != nil {
			return err
		}
		return store.PutJSON(tx, serviceRecordKey(region), serviceKeyRecord{Region: region, Current: version})
	}); err != nil {
		return nil, fmt.Errorf("store service key for %s: %w", region, err)
	}
	s.keys.put(serviceVersionKey(region, version), priv)
	s.log.Info("service-managed key created", "region", region, "version", version)
	return gen, nil
}

// WrapWithServiceKey wraps a data encryption key with the region's service-managed key
// (RSA-OAEP-256) and returns the versioned key id that unwraps it. The key is created on first
// use. Each call is recorded in the service vault's audit trail.
func (s *Service) WrapWithServiceKey(ctx context.Context, region string, dek []byte) (keyID string, wrapped []byte, err error) {
	reg, ok := regions.Lookup(region)
	if !ok {
		return "", nil, fmt.Errorf("wrap with service key: unknown region %q", region)
	}
	status := http.StatusOK
	var version string
	defer func() {
		if err != nil {
			status = http.StatusInternalServerError
		}
		s.auditService(ctx, "KeyWrap", reg.Name, version, status)
	}()
	kv, err := s.serviceKey(ctx, reg.Name)
	if err != nil {
		return "", nil, fmt.Errorf("wrap with service key: %w", err)
	}
	version = kv.Version
	wrapped, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, kv.publicKey(), dek, nil)
	if err != nil {
		return "", nil, fmt.Errorf("wrap with service key: %w", err)
	}
	return s.kid(s.serviceVault(), serviceKeyName(reg.Name), kv.Version), wrapped, nil
}

// UnwrapWithServiceKey unwraps what WrapWithServiceKey wrapped, given the key id it returned.
// The port in the key id is ignored, so that wrapped keys survive a change of the daemon's
// address.
func (s *Service) UnwrapWithServiceKey(ctx context.Context, keyID string, wrapped []byte) (dek []byte, err error) {
	region, version, err := s.parseServiceKeyID(keyID)
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	defer func() {
		if err != nil {
			status = http.StatusBadRequest
		}
		s.auditService(ctx, "KeyUnwrap", region, version, status)
	}()
	storeKey := serviceVersionKey(region, version)
	var kv KeyVersion
	if err := s.st.View(ctx, func(tx store.Tx) error { return store.GetJSON(tx, storeKey, &kv) }); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("unwrap with service key: no service key version %s for region %s", version, region)
		}
		return nil, fmt.Errorf("unwrap with service key: %w", err)
	}
	priv, err := s.privateKey(storeKey, &kv)
	if err != nil {
		return nil, fmt.Errorf("unwrap with service key: %w", err)
	}
	dek, err = rsa.DecryptOAEP(sha256.New(), nil, priv, wrapped, nil)
	if err != nil {
		return nil, fmt.Errorf("unwrap with service key %s: the wrapped key does not open under it", keyID)
	}
	return dek, nil
}

// IsServiceKeyID reports whether a key id names a service-managed key.
func (s *Service) IsServiceKeyID(keyID string) bool {
	_, _, err := s.parseServiceKeyID(keyID)
	return err == nil
}

func (s *Service) parseServiceKeyID(keyID string) (region, version string, err error) {
	u, err := url.Parse(keyID)
	if err != nil || u.Scheme != "https" || s.vaultNameFromHost(u.Host) != serviceVaultName {
		return "", "", fmt.Errorf("%q is not a service-managed key id", keyID)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "keys" || !strings.HasPrefix(parts[1], "smk-") || !versionRE.MatchString(parts[2]) {
		return "", "", fmt.Errorf("%q is not a service-managed key id", keyID)
	}
	region = strings.TrimPrefix(parts[1], "smk-")
	if _, ok := regions.Lookup(region); !ok {
		return "", "", fmt.Errorf("%q names an unknown region", keyID)
	}
	return region, parts[2], nil
}

func (s *Service) auditService(ctx context.Context, op, region, version string, status int) {
	e := &AuditEvent{Time: s.now().UTC(), Vault: serviceVaultName, KeyName: serviceKeyName(region), KeyVersion: version,
		Operation: op, CallerObjectID: ServiceCaller, HTTPStatus: status, ClientInfo: dataenc.UserAgent(ctx)}
	if err := s.appendAudit(context.WithoutCancel(ctx), serviceVaultID, e); err != nil {
		s.log.Error("service key audit write failed", "err", err)
	}
}

// ServiceKeyAudit returns the audit trail of the service-managed keys, oldest first.
func (s *Service) ServiceKeyAudit(ctx context.Context) ([]AuditEvent, error) {
	return s.AuditEvents(ctx, serviceVaultID, "")
}

// serviceVault is the internal vault's stand-in record: a name and the directory's tenant.
func (s *Service) serviceVault() *Vault {
	return &Vault{ID: serviceVaultID, Name: serviceVaultName, Props: VaultProperties{TenantID: s.tenantID}}
}

// serveServiceVault answers requests to the internal vault's host: the challenge without a
// token, and a refusal for every token, whoever holds it.
func (s *Service) serveServiceVault(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	c, _, ok := s.authenticate(w, r, s.serviceVault())
	if !ok {
		return
	}
	e := &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "AccessDenied",
		Message: fmt.Sprintf("The user, group or application '%s' does not have keys permission on key vault '%s'. The vault holds pgflex's service-managed keys, which no principal can use directly.", c.describe(), serviceVaultName)}
	_ = s.appendAudit(context.WithoutCancel(r.Context()), serviceVaultID, &AuditEvent{Time: s.now().UTC(), Vault: serviceVaultName,
		Operation: "VaultAccessDenied", CallerObjectID: c.ObjectID, CallerAppID: c.AppID, CallerIP: remoteIP(r), HTTPStatus: e.Status})
	log.Warn("refused a request to the service-managed key vault", "caller", c.ObjectID)
	writeKV(w, e.Status, e.body())
}
