package keyvault

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// RotationPolicy is a key's rotation policy.
type RotationPolicy struct {
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	ExpiryTime      string           `json:"expiryTime,omitempty"`
	Created         time.Time        `json:"created"`
	Updated         time.Time        `json:"updated"`
}

// LifetimeAction is one trigger and what to do when it fires.
type LifetimeAction struct {
	Trigger LifetimeTrigger `json:"trigger"`
	Action  struct {
		Type string `json:"type"`
	} `json:"action"`
}

// LifetimeTrigger fires a time after the current version's creation or before its expiry.
type LifetimeTrigger struct {
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
}

// Key Vault's rotation policy limits.
const (
	minRotationTrigger = 7 * 24 * time.Hour
	minPolicyExpiry    = 28 * 24 * time.Hour
)

type rotationPolicyBody struct {
	ID              *string          `json:"id"`
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	Attributes      *struct {
		ExpiryTime *string `json:"expiryTime"`
	} `json:"attributes"`
}

// validatePolicy checks a policy as Key Vault does and canonicalises action types.
func validatePolicy(b *rotationPolicyBody) (*RotationPolicy, error) {
	p := &RotationPolicy{LifetimeActions: []LifetimeAction{}}
	var expiry *isoDuration
	if b.Attributes != nil && b.Attributes.ExpiryTime != nil && *b.Attributes.ExpiryTime != "" {
		d, err := parseISODuration(*b.Attributes.ExpiryTime)
		if err != nil {
			return nil, badParameter("Invalid expiryTime: %v.", err)
		}
		if d.approx() < minPolicyExpiry {
			return nil, badParameter("Invalid expiryTime '%s': the expiry time of a rotation policy must be at least 28 days (P28D).", d)
		}
		expiry = &d
		p.ExpiryTime = d.String()
	}
	seen := map[string]bool{}
	for i, a := range b.LifetimeActions {
		typ := ""
		switch {
		case strings.EqualFold(a.Action.Type, "Rotate"):
			typ = "Rotate"
		case strings.EqualFold(a.Action.Type, "Notify"):
			typ = "Notify"
		default:
			return nil, badParameter("Invalid action type '%s' in lifetimeActions[%d]: allowed types are Rotate and Notify.", a.Action.Type, i)
		}
		if seen[typ] {
			return nil, badParameter("A rotation policy can have only one %s action.", typ)
		}
		seen[typ] = true
		t := a.Trigger
		if (t.TimeAfterCreate == "") == (t.TimeBeforeExpiry == "") {
			return nil, badParameter("lifetimeActions[%d] must have exactly one trigger: timeAfterCreate or timeBeforeExpiry.", i)
		}
		if typ == "Notify" && t.TimeAfterCreate != "" {
			return nil, badParameter("A Notify action can only be triggered by timeBeforeExpiry.")
		}
		text := t.TimeAfterCreate + t.TimeBeforeExpiry
		d, err := parseISODuration(text)
		if err != nil {
			return nil, badParameter("Invalid trigger in lifetimeActions[%d]: %v.", i, err)
		}
		if d.approx() < minRotationTrigger {
			return nil, badParameter("Invalid trigger '%s' in lifetimeActions[%d]: a rotation policy trigger must be at least 7 days (P7D).", d, i)
		}
		if expiry != nil && typ == "Rotate" && d.approx() > expiry.approx()-minRotationTrigger {
			return nil, badParameter("Invalid trigger '%s' in lifetimeActions[%d]: with an expiry time of %s, the rotation must fire at least 7 days before the key expires.", d, i, expiry)
		}
		var la LifetimeAction
		la.Action.Type = typ
		if t.TimeAfterCreate != "" {
			la.Trigger.TimeAfterCreate = d.String()
		} else {
			la.Trigger.TimeBeforeExpiry = d.String()
		}
		p.LifetimeActions = append(p.LifetimeActions, la)
	}
	return p, nil
}

// defaultPolicy is what a key without a policy reports: notify 30 days before expiry.
func defaultPolicy() *RotationPolicy {
	var la LifetimeAction
	la.Trigger.TimeBeforeExpiry = "P30D"
	la.Action.Type = "Notify"
	return &RotationPolicy{LifetimeActions: []LifetimeAction{la}}
}

func (s *Service) policyView(v *Vault, k *Key, p *RotationPolicy) map[string]any {
	attrs := map[string]any{}
	if p.ExpiryTime != "" {
		attrs["expiryTime"] = p.ExpiryTime
	}
	if !p.Created.IsZero() {
		attrs["created"] = p.Created.Unix()
		attrs["updated"] = p.Updated.Unix()
	}
	return map[string]any{
		"id":              "https://" + s.storeHost(v) + "/keys/" + k.Name + "/rotationpolicy",
		"lifetimeActions": p.LifetimeActions,
		"attributes":      attrs,
	}
}

func liveKey(tx store.Tx, v *Vault, name string) (*Key, error) {
	k, err := getKey(tx, v.ID, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Deleted != nil) {
		return nil, keyNotFound(name, "")
	}
	return k, err
}

// getRotationPolicy serves GET /keys/{name}/rotationpolicy.
func (s *Service) getRotationPolicy(r *kvRequest) (result, error) {
	var k *Key
	err := s.st.View(r.Context(), func(tx store.Tx) error {
		var err error
		k, err = liveKey(tx, r.vault, r.keyName)
		return err
	})
	if err != nil {
		return result{}, err
	}
	r.keyName = k.Name
	p := k.Policy
	if p == nil {
		p = defaultPolicy()
	}
	return result{http.StatusOK, s.policyView(r.vault, k, p)}, nil
}

// setRotationPolicy serves PUT /keys/{name}/rotationpolicy.
func (s *Service) setRotationPolicy(r *kvRequest) (result, error) {
	var b rotationPolicyBody
	if err := decodeBody(r, &b); err != nil {
		return result{}, err
	}
	p, err := validatePolicy(&b)
	if err != nil {
		return result{}, err
	}
	var k *Key
	var v *Vault
	err = s.st.Update(r.Context(), func(tx store.Tx) error {
		var err error
		if v, err = liveVault(tx, r.vault); err != nil {
			return err
		}
		if k, err = liveKey(tx, v, r.keyName); err != nil {
			return err
		}
		now := s.now().UTC()
		p.Created, p.Updated = now, now
		if k.Policy != nil && !k.Policy.Created.IsZero() {
			p.Created = k.Policy.Created
		}
		k.Policy = p
		return putKey(tx, v.ID, k)
	})
	if err != nil {
		return result{}, err
	}
	s.nudge()
	r.keyName = k.Name
	r.log.Info("key rotation policy set", "vault", v.Name, "key", k.Name, "actions", len(p.LifetimeActions), "expiry", p.ExpiryTime)
	return result{http.StatusOK, s.policyView(v, k, p)}, nil
}
