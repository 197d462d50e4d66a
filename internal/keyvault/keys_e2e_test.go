package keyvault_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func publicKey(k *azkeys.JSONWebKey) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
}

func versions(t *testing.T, c *azkeys.Client, name string) []string {
	t.Helper()
	var out []string
	for p := c.NewListKeyPropertiesVersionsPager(name, nil); p.More(); {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Value {
			out = append(out, k.KID.Version())
		}
	}
	return out
}

// TestKeysWithAzkeysAsVaultCreator drives the keys REST API with Azure's azkeys client as the
// vault's creator: create, read, list, wrap and unwrap with every RSA algorithm, encrypt,
// sign, rotate, disable, expire, delete, recover and purge, rotation policies with automatic
// rotation, and the audit trail of it all.
func TestKeysWithAzkeysAsVaultCreator(t *testing.T) {
	ctx := context.Background()
	e := newKVEnv(t)
	e.group("rg")
	e.createVault("rg", "keys-vault", nil)
	c := e.keys("keys-vault", nil)

	created, err := c.CreateKey(ctx, "Key-1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](3072),
		Tags: map[string]*string{"purpose": to.Ptr("cmk")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := created.Key
	kidRE := regexp.MustCompile(`^https://keys-vault\.vault\.localhost:\d+/keys/Key-1/[0-9a-f]{32}$`)
	if !kidRE.MatchString(string(*k.KID)) || *k.Kty != azkeys.KeyTypeRSA || len(k.N) != 384 || !bytes.Equal(k.E, []byte{1, 0, 1}) {
		t.Fatalf("created key: kid %s kty %s n %d bytes e %x", *k.KID, *k.Kty, len(k.N), k.E)
	}
	if k.D != nil || k.P != nil || k.Q != nil || k.DP != nil || k.DQ != nil || k.QI != nil {
		t.Fatal("the key bundle carries private key material")
	}
	var ops []string
	for _, op := range k.KeyOps {
		ops = append(ops, string(*op))
	}
	if !slices.Equal(ops, []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}) {
		t.Fatalf("default key_ops = %v", ops)
	}
	a := created.Attributes
	if !*a.Enabled || *a.RecoveryLevel != "Recoverable+Purgeable" || *a.RecoverableDays != 90 || *created.Tags["purpose"] != "cmk" {
		t.Fatalf("attributes: enabled %v level %s days %d", *a.Enabled, *a.RecoveryLevel, *a.RecoverableDays)
	}
	v1 := k.KID.Version()
	pub := publicKey(k)

	// Wrap and unwrap with every algorithm; what the client encrypts locally with the public key
	// the vault unwraps, so the algorithms are the standard ones.
	dek := make([]byte, 32)
	rand.Read(dek)
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP256, azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSA15} {
		w, err := c.WrapKey(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: dek}, nil)
		if err != nil {
			t.Fatalf("wrap %s: %v", alg, err)
		}
		if string(*w.KID) != string(*k.KID) || len(w.Result) != 384 {
			t.Fatalf("wrap %s: kid %s, %d bytes", alg, *w.KID, len(w.Result))
		}
		u, err := c.UnwrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, dek) {
			t.Fatalf("unwrap %s: %v", alg, err)
		}
	}
	local, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.UnwrapKey(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: local}, nil)
	if err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap of a locally wrapped key: %v", err)
	}
	enc, err := c.Encrypt(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("hello")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: enc.Result}, nil)
	if err != nil || string(dec.Result) != "hello" {
		t.Fatalf("decrypt: %v", err)
	}
	digest := sha256.Sum256([]byte("signed data"))
	for _, alg := range []azkeys.SignatureAlgorithm{azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmPS256} {
		sig, err := c.Sign(ctx, "Key-1", "", azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: digest[:]}, nil)
		if err != nil {
			t.Fatalf("sign %s: %v", alg, err)
		}
		if alg == azkeys.SignatureAlgorithmRS256 {
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig.Result); err != nil {
				t.Fatalf("the RS256 signature does not verify locally: %v", err)
			}
		}
		for _, c2 := range []struct {
			digest []byte
			want   bool
		}{{digest[:], true}, {make([]byte, 32), false}} {
			ver, err := c.Verify(ctx, "Key-1", "", azkeys.VerifyParameters{Algorithm: to.Ptr(alg), Digest: c2.digest, Signature: sig.Result}, nil)
			if err != nil || *ver.Value != c2.want {
				t.Fatalf("verify %s = %v, %v; want %v", alg, ver.Value, err, c2.want)
			}
		}
	}
	wrapped1, err := c.WrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Rotate: a new current version; the old one still unwraps what it wrapped.
	rot, err := c.RotateKey(ctx, "Key-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := rot.Key.KID.Version()
	if v2 == v1 || len(rot.Key.N) != 384 || *rot.Tags["purpose"] != "cmk" {
		t.Fatalf("rotated key: version %s (was %s), %d bytes", v2, v1, len(rot.Key.N))
	}
	if got := versions(t, c, "Key-1"); !slices.Equal(got, []string{v1, v2}) {
		t.Fatalf("versions = %v, want [%s %s]", got, v1, v2)
	}
	latest, err := c.GetKey(ctx, "key-1", "", nil)
	if err != nil || latest.Key.KID.Version() != v2 {
		t.Fatalf("latest after rotation: %v", err)
	}
	if u, err := c.UnwrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped1.Result}, nil); err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap with the old version after rotation: %v", err)
	}

	// Disable one version: it refuses crypto, the other version does not.
	if _, err := c.UpdateKey(ctx, "Key-1", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.UnwrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped1.Result}, nil)
	if re := respErr(t, "unwrap with a disabled version", err, 403, "Forbidden"); !strings.Contains(re.Error(), "KeyDisabled") {
		t.Fatalf("disabled refusal lacks innererror KeyDisabled: %v", re)
	}
	if _, err := c.WrapKey(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil); err != nil {
		t.Fatalf("the current version was disabled with the old one: %v", err)
	}
	got, err := c.GetKey(ctx, "Key-1", v1, nil)
	if err != nil || *got.Attributes.Enabled {
		t.Fatalf("a disabled version reads as enabled: %v", err)
	}
	if _, err := c.UpdateKey(ctx, "Key-1", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.WrapKey(ctx, "Key-1", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	respErr(t, "wrap with a disabled key", err, 403, "Forbidden")
	if _, err := c.UpdateKey(ctx, "Key-1", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}

	// Validity window: outside it a key no longer wraps, but still unwraps what it wrapped.
	exp, err := c.CreateKey(ctx, "expiring", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ew, err := c.WrapKey(ctx, "expiring", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if _, err := c.UpdateKey(ctx, "expiring", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.WrapKey(ctx, "expiring", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if re := respErr(t, "wrap with an expired key", err, 403, "Forbidden"); !strings.Contains(re.Error(), "KeyExpired") {
		t.Fatalf("expiry refusal lacks innererror KeyExpired: %v", re)
	}
	if u, err := c.UnwrapKey(ctx, "expiring", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ew.Result}, nil); err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap with an expired key: %v", err)
	}
	future := time.Now().Add(time.Hour)
	_, err = c.CreateKey(ctx, "not-yet", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeyAttributes: &azkeys.KeyAttributes{NotBefore: &future}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WrapKey(ctx, "not-yet", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	respErr(t, "wrap with a not-yet-valid key", err, 403, "Forbidden")
	_ = exp

	// Key list: base kids, no versions.
	var names []string
	for p := c.NewListKeyPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			if it.KID.Version() != "" {
				t.Fatalf("listed kid has a version: %s", *it.KID)
			}
			names = append(names, it.KID.Name())
		}
	}
	if !slices.Equal(names, []string{"expiring", "Key-1", "not-yet"}) {
		t.Fatalf("keys = %v", names)
	}

	// Delete, recover, delete, purge.
	del, err := c.DeleteKey(ctx, "Key-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(*del.RecoveryID, "/deletedkeys/Key-1") || del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 90*24*time.Hour {
		t.Fatalf("deleted key: recovery id %s", *del.RecoveryID)
	}
	_, err = c.GetKey(ctx, "Key-1", "", nil)
	respErr(t, "get a deleted key", err, 404, "KeyNotFound")
	_, err = c.UnwrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped1.Result}, nil)
	respErr(t, "unwrap with a deleted key", err, 404, "KeyNotFound")
	_, err = c.CreateKey(ctx, "Key-1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if re := respErr(t, "reuse a deleted key's name", err, 409, "Conflict"); !strings.Contains(re.Error(), "ObjectIsDeletedButRecoverable") {
		t.Fatalf("conflict lacks innererror ObjectIsDeletedButRecoverable: %v", re)
	}
	gd, err := c.GetDeletedKey(ctx, "Key-1", nil)
	if err != nil || gd.Key.KID.Version() != v2 {
		t.Fatalf("get deleted key: %v", err)
	}
	var deleted []string
	for p := c.NewListDeletedKeyPropertiesPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Value {
			deleted = append(deleted, it.KID.Name())
		}
	}
	if !slices.Equal(deleted, []string{"Key-1"}) {
		t.Fatalf("deleted keys = %v", deleted)
	}
	if _, err := c.RecoverDeletedKey(ctx, "Key-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKey(ctx, "Key-1", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if u, err := c.UnwrapKey(ctx, "Key-1", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped1.Result}, nil); err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap after recovery: %v", err)
	}
	if _, err := c.DeleteKey(ctx, "Key-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "Key-1", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDeletedKey(ctx, "Key-1", nil)
	respErr(t, "get a purged key", err, 404, "KeyNotFound")
	if _, err := c.CreateKey(ctx, "Key-1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatalf("a purged key's name is not free: %v", err)
	}

	// Purge protection holds deleted keys until their retention ends.
	e.createVault("rg", "protected-vault", func(p *armkeyvault.VaultCreateOrUpdateParameters) {
		p.Properties.EnablePurgeProtection = to.Ptr(true)
	})
	pc := e.keys("protected-vault", nil)
	pk, err := pc.CreateKey(ctx, "held", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil || *pk.Attributes.RecoveryLevel != "Recoverable" {
		t.Fatalf("key in a purge-protected vault: %v", err)
	}
	if _, err := pc.DeleteKey(ctx, "held", nil); err != nil {
		t.Fatal(err)
	}
	_, err = pc.PurgeDeletedKey(ctx, "held", nil)
	respErr(t, "purge under purge protection", err, 403, "Forbidden")
	if _, err := pc.GetDeletedKey(ctx, "held", nil); err != nil {
		t.Fatalf("a refused purge purged: %v", err)
	}

	// Rotation policy: the default, a refused one, and automatic rotation when due.
	pol, err := c.GetKeyRotationPolicy(ctx, "expiring", nil)
	if err != nil || len(pol.LifetimeActions) != 1 || *pol.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionNotify ||
		*pol.LifetimeActions[0].Trigger.TimeBeforeExpiry != "P30D" {
		t.Fatalf("default rotation policy: %v", err)
	}
	_, err = c.UpdateKeyRotationPolicy(ctx, "expiring", azkeys.KeyRotationPolicy{LifetimeActions: []*azkeys.LifetimeAction{{
		Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P1D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}}, nil)
	respErr(t, "a rotation trigger shorter than 7 days", err, 400, "BadParameter")
	soon := time.Now().Add(10 * 24 * time.Hour)
	auto, err := c.CreateKey(ctx, "auto", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeyAttributes: &azkeys.KeyAttributes{Expires: &soon}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.UpdateKeyRotationPolicy(ctx, "auto", azkeys.KeyRotationPolicy{
		LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")},
			Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}},
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")}}, nil)
	if err != nil || *set.Attributes.ExpiryTime != "P90D" {
		t.Fatalf("set rotation policy: %v", err)
	}
	var vs []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if vs = versions(t, c, "auto"); len(vs) == 2 {
			break
		}
	}
	if len(vs) != 2 || vs[0] != auto.Key.KID.Version() {
		t.Fatalf("the due rotation policy did not rotate: versions %v", vs)
	}
	rotated, err := c.GetKey(ctx, "auto", "", nil)
	if err != nil || rotated.Key.KID.Version() != vs[1] || rotated.Attributes.Expires == nil ||
		rotated.Attributes.Expires.Sub(*rotated.Attributes.Created) != 90*24*time.Hour {
		t.Fatalf("automatically rotated version: %v", err)
	}

	// The audit trail names every operation, its caller and its result.
	token := e.token("https://management.azure.com/.default")
	audit := e.do("GET", e.prof.Endpoint+"/subscriptions/"+e.sub+"/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/keys-vault/auditEvents?api-version=2023-07-01&keyName=key-1", token, "")
	if audit.status != 200 {
		t.Fatalf("audit list: %d %s", audit.status, audit.raw)
	}
	seen := map[string]bool{}
	events, _ := audit.body["value"].([]any)
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["keyName"] != "Key-1" || m["vault"] != "keys-vault" || m["time"] == "" {
			t.Fatalf("audit event for another key or without time: %v", m)
		}
		op, _ := m["operationName"].(string)
		status := int(m["httpStatusCode"].(float64))
		seen[op+"/"+m["resultType"].(string)] = true
		if op == "KeyWrap" && status == 200 && (m["callerObjectId"] != e.adminOID || m["keyVersion"] == "") {
			t.Fatalf("wrap audited without caller or version: %v", m)
		}
	}
	for _, want := range []string{"KeyCreate/Success", "KeyWrap/Success", "KeyUnwrap/Success", "KeyRotate/Success", "KeyWrap/Failure",
		"KeyUnwrap/Failure", "KeyDelete/Success", "KeyRecover/Success", "KeyPurge/Success", "KeySign/Success", "KeyUpdate/Success"} {
		if !seen[want] {
			t.Errorf("audit trail lacks %s; has %v", want, seen)
		}
	}
	autoAudit := e.do("GET", e.prof.Endpoint+"/subscriptions/"+e.sub+"/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/keys-vault/auditEvents?api-version=2023-07-01&keyName=auto", token, "")
	found := false
	for _, ev := range autoAudit.body["value"].([]any) {
		m := ev.(map[string]any)
		found = found || (m["operationName"] == "KeyRotate" && m["callerObjectId"] == "pgflex")
	}
	if !found {
		t.Fatalf("the automatic rotation is not in the audit trail: %s", autoAudit.raw)
	}

	// Keys survive a restart: sealed on disk, unsealed again by the new process.
	e.d.Restart()
	c = e.keys("keys-vault", nil)
	if u, err := c.UnwrapKey(ctx, "expiring", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ew.Result}, nil); err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap after a restart: %v", err)
	}
}
