package keyvault

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/auth"
	"github.com/pgflex/pgflex/internal/seal"
	"github.com/pgflex/pgflex/internal/store"
)

func TestParseISODuration(t *testing.T) {
	base := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in    string
		after time.Time
		bad   bool
	}{
		{in: "P90D", after: base.AddDate(0, 0, 90)},
		{in: "P1Y", after: base.AddDate(1, 0, 0)},
		{in: "P1Y6M", after: base.AddDate(1, 6, 0)},
		{in: "P2W", after: base.AddDate(0, 0, 14)},
		{in: "P1DT12H", after: base.AddDate(0, 0, 1).Add(12 * time.Hour)},
		{in: "PT30M", after: base.Add(30 * time.Minute)},
		{in: "P", bad: true},
		{in: "P0D", bad: true},
		{in: "90D", bad: true},
		{in: "P1DT", bad: true},
		{in: "P-1D", bad: true},
		{in: "p30d", bad: true},
	} {
		d, err := parseISODuration(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%s: parsed, want an error", c.in)
			}
			continue
		}
		if err != nil || !d.after(base).Equal(c.after) || d.String() != c.in {
			t.Errorf("%s: after = %v, %v; want %v", c.in, d.after(base), err, c.after)
		}
		if !d.before(d.after(base)).Equal(base) && c.in != "P1Y6M" {
			t.Errorf("%s: before(after(t)) != t", c.in)
		}
	}
}

func policyBody(expiry string, actions ...[3]string) *rotationPolicyBody {
	b := &rotationPolicyBody{}
	if expiry != "" {
		b.Attributes = &struct {
			ExpiryTime *string `json:"expiryTime"`
		}{&expiry}
	}
	for _, a := range actions {
		var la LifetimeAction
		la.Action.Type = a[0]
		if a[1] == "after" {
			la.Trigger.TimeAfterCreate = a[2]
		} else {
			la.Trigger.TimeBeforeExpiry = a[2]
		}
		b.LifetimeActions = append(b.LifetimeActions, la)
	}
	return b
}

func TestValidatePolicy(t *testing.T) {
	for _, c := range []struct {
		name string
		body *rotationPolicyBody
		ok   bool
	}{
		{"rotate after create", policyBody("", [3]string{"rotate", "after", "P90D"}), true},
		{"rotate before expiry with expiry", policyBody("P2Y", [3]string{"Rotate", "before", "P30D"}, [3]string{"notify", "before", "P7D"}), true},
		{"empty", policyBody(""), true},
		{"trigger under 7 days", policyBody("", [3]string{"Rotate", "after", "P6D"}), false},
		{"expiry under 28 days", policyBody("P27D", [3]string{"Rotate", "after", "P7D"}), false},
		{"rotation too close to expiry", policyBody("P30D", [3]string{"Rotate", "after", "P28D"}), false},
		{"notify after create", policyBody("", [3]string{"Notify", "after", "P30D"}), false},
		{"two rotates", policyBody("", [3]string{"Rotate", "after", "P30D"}, [3]string{"Rotate", "after", "P60D"}), false},
		{"unknown action", policyBody("", [3]string{"Delete", "after", "P30D"}), false},
		{"bad duration", policyBody("", [3]string{"Rotate", "after", "30 days"}), false},
	} {
		p, err := validatePolicy(c.body)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if c.ok {
			for _, a := range p.LifetimeActions {
				if a.Action.Type != "Rotate" && a.Action.Type != "Notify" {
					t.Errorf("%s: action type %q not canonical", c.name, a.Action.Type)
				}
			}
		} else if ke := new(kvError); !errors.As(err, &ke) || ke.Code != "BadParameter" {
			t.Errorf("%s: refusal %v is not BadParameter", c.name, err)
		}
	}
}

func TestRotationDue(t *testing.T) {
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	exp := created.AddDate(0, 0, 100)
	for _, c := range []struct {
		name   string
		policy *rotationPolicyBody
		exp    *time.Time
		due    time.Time
		has    bool
	}{
		{"after create", policyBody("", [3]string{"Rotate", "after", "P90D"}), nil, created.AddDate(0, 0, 90), true},
		{"before expiry", policyBody("", [3]string{"Rotate", "before", "P30D"}), &exp, exp.AddDate(0, 0, -30), true},
		{"before expiry without exp", policyBody("", [3]string{"Rotate", "before", "P30D"}), nil, time.Time{}, false},
		{"notify only", policyBody("", [3]string{"Notify", "before", "P30D"}), &exp, time.Time{}, false},
	} {
		p, err := validatePolicy(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		due, has := rotationDue(p, &KeyVersion{Created: created, Expires: c.exp})
		if has != c.has || !due.Equal(c.due) {
			t.Errorf("%s: due %v %v, want %v %v", c.name, due, has, c.due, c.has)
		}
	}
}

func TestApplyPolicyOperation(t *testing.T) {
	entry := func(oid string, perms ...string) AccessPolicy {
		return AccessPolicy{TenantID: "t", ObjectID: oid, Permissions: Permissions{Keys: perms}}
	}
	cur := []AccessPolicy{entry("a", "get", "list"), entry("b", "wrapKey")}
	for _, c := range []struct {
		kind  string
		in    []AccessPolicy
		wantA []string // a's key permissions after; nil = entry gone
		count int
	}{
		{"add", []AccessPolicy{entry("A", "List", "unwrapKey")}, []string{"get", "list", "unwrapKey"}, 2},
		{"add", []AccessPolicy{entry("c", "get")}, []string{"get", "list"}, 3},
		{"replace", []AccessPolicy{entry("a", "sign")}, []string{"sign"}, 2},
		{"remove", []AccessPolicy{entry("a", "get")}, []string{"list"}, 2},
		{"remove", []AccessPolicy{entry("a")}, nil, 1},
		{"remove", []AccessPolicy{entry("a", "get", "list")}, nil, 1},
	} {
		out, err := applyPolicyOperation(cur, c.kind, c.in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range out {
			if p.ObjectID == "a" {
				got = p.Permissions.Keys
				if got == nil {
					got = []string{}
				}
			}
		}
		if len(out) != c.count || (c.wantA == nil) != (got == nil) || (c.wantA != nil && !slices.Equal(got, c.wantA)) {
			t.Errorf("%s %v: a = %v (%d entries), want %v (%d)", c.kind, c.in, got, len(out), c.wantA, c.count)
		}
	}
	if len(cur[0].Permissions.Keys) != 2 {
		t.Fatal("applyPolicyOperation changed its input")
	}
	if !policyGrants(cur, "A", "T", "", "get") || policyGrants(cur, "a", "t", "", "create") || !policyGrants([]AccessPolicy{entry("a", "all")}, "a", "t", "", "purge") {
		t.Fatal("policyGrants")
	}
	app := "app"
	compound := []AccessPolicy{{TenantID: "t", ObjectID: "a", ApplicationID: &app, Permissions: Permissions{Keys: []string{"get"}}}}
	if policyGrants(compound, "a", "t", "other", "get") || !policyGrants(compound, "a", "t", "app", "get") {
		t.Fatal("a compound identity's policy applies to another application")
	}
}

func TestValidateVaultName(t *testing.T) {
	for name, ok := range map[string]bool{"abc": true, "a-b-c": true, "Vault1": true, "abcdefghijklmnopqrstuvwx": true,
		"ab": false, "1abc": false, "abc-": false, "a--b": false, "a_b": false, "abcdefghijklmnopqrstuvwxy": false, "a.b": false,
		serviceVaultName: false} {
		if err := ValidateVaultName(name); (err == nil) != ok {
			t.Errorf("%q: err = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestUsableFor(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	all := append([]string(nil), allKeyOps...)
	for _, c := range []struct {
		name  string
		kv    KeyVersion
		op    string
		inner string // "" = usable
	}{
		{"enabled", KeyVersion{Enabled: true, KeyOps: all}, "wrapKey", ""},
		{"disabled wrap", KeyVersion{Enabled: false, KeyOps: all}, "wrapKey", "KeyDisabled"},
		{"disabled unwrap", KeyVersion{Enabled: false, KeyOps: all}, "unwrapKey", "KeyDisabled"},
		{"expired wrap", KeyVersion{Enabled: true, KeyOps: all, Expires: &past}, "wrapKey", "KeyExpired"},
		{"expired unwrap", KeyVersion{Enabled: true, KeyOps: all, Expires: &past}, "unwrapKey", ""},
		{"expired sign", KeyVersion{Enabled: true, KeyOps: all, Expires: &past}, "sign", "KeyExpired"},
		{"expired verify", KeyVersion{Enabled: true, KeyOps: all, Expires: &past}, "verify", ""},
		{"expires at now", KeyVersion{Enabled: true, KeyOps: all, Expires: &now}, "encrypt", "KeyExpired"},
		{"not yet valid", KeyVersion{Enabled: true, KeyOps: all, NotBefore: &future}, "wrapKey", "KeyNotYetValid"},
		{"not yet valid decrypt", KeyVersion{Enabled: true, KeyOps: all, NotBefore: &future}, "decrypt", ""},
		{"op not allowed", KeyVersion{Enabled: true, KeyOps: []string{"wrapKey"}}, "unwrapKey", "OperationNotAllowed"},
	} {
		u := c.kv.usableFor(c.op, now)
		got := ""
		if u != nil {
			got = u.inner
		}
		if got != c.inner {
			t.Errorf("%s: %q, want %q", c.name, got, c.inner)
		}
	}
}

// noTokens refuses every token: the in-process tests never serve HTTP.
type noTokens struct{}

func (noTokens) Verify(context.Context, string, ...string) (auth.Claims, *auth.Principal, error) {
	return auth.Claims{}, nil, auth.ErrSignature
}

// newTestService is a key store on a temporary bolt store with a settable clock.
func newTestService(t *testing.T, now *time.Time) *Service {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Store: st, Box: box, Tokens: noTokens{}, Endpoint: "https://127.0.0.1:8443",
		KeyVaultSuffix: "vault.localhost", TenantID: "00000000-0000-0000-0000-000000000001", Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMaintenance runs the maintenance pass at chosen times: a timeAfterCreate policy rotates
// once when due (and not before), deleted keys and vaults are purged when their retention ends.
func TestMaintenance(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	s := newTestService(t, &now)
	v := &Vault{ID: "vid", Name: "maint", SubscriptionID: "sub", ResourceGroup: "rg", Location: "eastus",
		Props: VaultProperties{SoftDeleteRetentionInDays: 7}}
	gone := &Vault{ID: "gone", Name: "gone-vault", Location: "eastus", Props: VaultProperties{SoftDeleteRetentionInDays: 7},
		Deleted: &VaultDeletion{DeletionDate: now, ScheduledPurgeDate: now.AddDate(0, 0, 7)}}
	mk := func(name string) *KeyVersion {
		kv, _, err := generateRSA(s.box, 2048, versionKey(v.ID, name, "00000000000000000000000000000001"))
		if err != nil {
			t.Fatal(err)
		}
		kv.Version, kv.Enabled, kv.KeyOps, kv.Created, kv.Updated = "00000000000000000000000000000001", true, allKeyOps, now, now
		return kv
	}
	policy, err := validatePolicy(policyBody("P60D", [3]string{"Rotate", "after", "P30D"}))
	if err != nil {
		t.Fatal(err)
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		for _, rec := range []*Vault{v, gone} {
			if err := putVaultRecord(tx, rec); err != nil {
				return err
			}
		}
		for _, k := range []*Key{{Name: "rotating", Policy: policy}, {Name: "dropped",
			Deleted: &KeyDeletion{DeletedDate: now, ScheduledPurgeDate: now.AddDate(0, 0, 7)}}} {
			k.Current, k.Created = "00000000000000000000000000000001", now
			if err := putVersion(tx, v.ID, k.Name, mk(k.Name)); err != nil {
				return err
			}
			if err := putKey(tx, v.ID, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (versions int, dropped, goneVault bool) {
		s.st.View(ctx, func(tx store.Tx) error {
			vs, _ := listVersions(tx, v.ID, "rotating")
			versions = len(vs)
			_, err := getKey(tx, v.ID, "dropped")
			dropped = err == nil
			_, err = getVaultRecord(tx, gone.Name)
			goneVault = err == nil
			return nil
		})
		return
	}
	for _, step := range []struct {
		at       time.Time
		versions int
		dropped  bool
	}{
		{now.AddDate(0, 0, 6), 1, true},
		{now.AddDate(0, 0, 7), 1, false},
		{now.AddDate(0, 0, 30), 2, false},
		{now.AddDate(0, 0, 31), 2, false}, // the new version is not due yet
		{now.AddDate(0, 0, 60), 3, false},
	} {
		now = step.at
		s.maintain(ctx)
		versions, dropped, goneVault := count()
		if versions != step.versions || dropped != step.dropped || goneVault != step.dropped {
			t.Fatalf("at %v: %d versions, dropped key kept %v, deleted vault kept %v; want %d, %v",
				step.at, versions, dropped, goneVault, step.versions, step.dropped)
		}
	}
	var latest *KeyVersion
	s.st.View(ctx, func(tx store.Tx) error {
		_, latest, err = loadKey(tx, v, "rotating", "")
		return err
	})
	if latest.Expires == nil || !latest.Expires.Equal(now.AddDate(0, 0, 60)) {
		t.Fatalf("rotated version expires %v, want the policy's expiryTime after creation", latest.Expires)
	}
	events, _ := s.AuditEvents(ctx, v.ID, "rotating")
	if len(events) != 2 || events[0].Operation != "KeyRotate" || events[0].CallerObjectID != ServiceCaller {
		t.Fatalf("rotation audit = %+v", events)
	}
}

func TestServiceKeys(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	s := newTestService(t, &now)
	dek := []byte("0123456789abcdef0123456789abcdef")
	id1, w1, err := s.WrapWithServiceKey(ctx, "eastus", dek)
	if err != nil {
		t.Fatal(err)
	}
	id2, w2, err := s.WrapWithServiceKey(ctx, "EastUS", dek)
	if err != nil {
		t.Fatal(err)
	}
	idW, _, err := s.WrapWithServiceKey(ctx, "westus", dek)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || id1 == idW || !strings.HasPrefix(id1, "https://pgflex--service.vault.localhost:8443/keys/smk-eastus/") {
		t.Fatalf("key ids: %s %s %s", id1, id2, idW)
	}
	if string(w1) == string(w2) || len(w1) != serviceKeyBits/8 {
		t.Fatal("wrapping is not randomized or not RSA-3072")
	}
	// Unwrapping ignores the port: the daemon may move.
	moved := strings.Replace(id1, ":8443", ":9443", 1)
	for _, id := range []string{id1, moved} {
		got, err := s.UnwrapWithServiceKey(ctx, id, w2)
		if err != nil || string(got) != string(dek) {
			t.Fatalf("unwrap with %s: %v", id, err)
		}
	}
	for _, bad := range []string{"", "https://other.vault.localhost/keys/smk-eastus/" + strings.Repeat("a", 32),
		strings.Replace(id1, "smk-eastus", "smk-atlantis", 1), strings.Replace(id1, "smk-eastus", "cmk", 1),
		id1[:len(id1)-1] + "g", idW} {
		if _, err := s.UnwrapWithServiceKey(ctx, bad, w1); err == nil {
			t.Errorf("unwrap with %q succeeded", bad)
		}
	}
	if _, _, err := s.WrapWithServiceKey(ctx, "atlantis", dek); err == nil {
		t.Error("wrap for an unknown region succeeded")
	}
	events, err := s.ServiceKeyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range events {
		ops = append(ops, e.Operation+"/"+e.ResultType)
	}
	if len(events) != 6 || ops[0] != "KeyWrap/Success" || ops[3] != "KeyUnwrap/Success" || ops[5] != "KeyUnwrap/Failure" {
		t.Fatalf("service key audit: %v", ops)
	}
	// Service keys are not in any vault a principal can list.
	vaults, _ := func() ([]Vault, error) {
		var out []Vault
		err := s.st.View(ctx, func(tx store.Tx) error { var err error; out, err = listVaultRecords(tx); return err })
		return out, err
	}()
	if len(vaults) != 0 {
		t.Fatalf("service keys created a vault record: %v", vaults)
	}
}
