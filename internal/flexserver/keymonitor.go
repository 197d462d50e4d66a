package flexserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgflex/pgflex/internal/activitylog"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/insights"
)

// MonitorConfig tunes the key monitor (daemon settings).
type MonitorConfig struct {
	// Interval between two checks of one server's keys; default 5 s. Each server's checks are
	// jittered by ±20% so that many servers do not call the key store at once.
	Interval time.Duration
	// Grace is how long a key store may stay unreachable (network errors, 5xx, throttling)
	// before its servers are made Inaccessible; refusals (401/403/404, disabled or expired
	// keys) act at once. Default 60 s.
	Grace time.Duration
}

// monitorMetrics are the monitor's Prometheus series.
type monitorMetrics struct {
	checks      *prometheus.CounterVec
	duration    prometheus.Histogram
	calls       *prometheus.CounterVec
	transitions *prometheus.CounterVec
	rewraps     prometheus.Counter
}

func newMonitorMetrics(reg prometheus.Registerer) *monitorMetrics {
	m := &monitorMetrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgflex_key_checks_total",
			Help: "Customer-managed key checks by key role and result (valid, invalid, transient)."}, []string{"role", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pgflex_key_check_duration_seconds",
			Help: "Latency of one key check against the key store.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgflex_key_store_calls_total",
			Help: "Key-store calls made by the data plane, by operation."}, []string{"op"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgflex_server_state_transitions_total",
			Help: "Server state transitions made by the key monitor."}, []string{"from", "to"}),
		rewraps: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgflex_dek_rewraps_total",
			Help: "DEKs rewrapped to follow a new key version."}),
	}
	if reg != nil {
		reg.MustRegister(m.checks, m.duration, m.calls, m.transitions, m.rewraps)
	}
	return m
}

// keyMonitor revalidates every CMK server's keys, follows new key versions, locks servers whose
// key is revoked and brings them back when access returns.
type keyMonitor struct {
	s       *Service
	cfg     MonitorConfig
	metrics *monitorMetrics
	samples SampleRecorder // optional: the history of checks and states per server

	mu           sync.Mutex
	next         map[string]time.Time // server uid → when to check next
	firstFailure map[string]time.Time // server uid + role → first transient failure of a streak
}

// RunKeyMonitor runs the key monitor until ctx ends.
func (s *Service) RunKeyMonitor(ctx context.Context) {
	m := s.monitor
	tick := min(m.cfg.Interval/10, 250*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
		m.pass(ctx)
	}
}

func (m *keyMonitor) pass(ctx context.Context) {
	servers, err := m.s.listServers(ctx)
	if err != nil {
		m.s.log.Error("key monitor: list servers", "err", err)
		return
	}
	now := m.s.now()
	for i := range servers {
		srv := &servers[i]
		if !srv.isCMK() || srv.Operation != "" || srv.State == StateProvisioning || srv.State == StateDropping {
			continue
		}
		m.mu.Lock()
		due, seen := m.next[srv.UID]
		if !seen {
			// A new server's first check falls at a random point of the interval.
			due = now.Add(time.Duration(rand.Int64N(int64(m.cfg.Interval))))
		}
		if now.Before(due) {
			m.next[srv.UID] = due
			m.mu.Unlock()
			continue
		}
		jitter := time.Duration(float64(m.cfg.Interval) * (0.8 + 0.4*rand.Float64()))
		m.next[srv.UID] = now.Add(jitter)
		m.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		m.check(ctx, srv)
	}
}

// verdict is the outcome of one key check.
type verdict struct {
	valid     bool
	transient bool
	cause     string
	info      *dataenc.KeyInfo
}

// checkAccess reads the key as the identity: one GET per check.
func (m *keyMonitor) checkAccess(ctx context.Context, srv *Server, keyURI, identityID string) verdict {
	ref, ok := srv.Identities[strings.ToLower(identityID)]
	if !ok {
		return verdict{cause: fmt.Sprintf("the identity %s is no longer assigned to the server", identityID)}
	}
	if id, err := parseIdentityID(identityID); err == nil {
		info, err := m.s.identities.LookupIdentity(ctx, id)
		switch {
		case errors.Is(err, ErrIdentityNotFound):
			return verdict{cause: fmt.Sprintf("the user-assigned identity %s was deleted", identityID)}
		case err != nil:
			return verdict{transient: true, cause: err.Error()}
		case !strings.EqualFold(info.PrincipalID, ref.PrincipalID):
			return verdict{cause: fmt.Sprintf("the identity %s was deleted and re-created with a new principal; update the server to use it", identityID)}
		}
	}
	w, err := m.s.customerWrapper(srv, keyURI, identityID)
	if err != nil {
		return verdict{cause: err.Error()}
	}
	start := time.Now()
	info, err := w.Get(ctx)
	m.metrics.duration.Observe(time.Since(start).Seconds())
	m.metrics.calls.WithLabelValues("get").Inc()
	if err != nil {
		var ke *dataenc.KeyStoreError
		if errors.As(err, &ke) && ke.Refused {
			return verdict{cause: refusalCause(ke, keyURI)}
		}
		return verdict{transient: true, cause: fmt.Sprintf("the key store holding %s could not be reached: %v", keyURI, err)}
	}
	if why := info.Usable(m.s.now()); why != "" {
		return verdict{cause: fmt.Sprintf("%s (%s)", why, info.KeyID)}
	}
	return verdict{valid: true, info: info}
}

func refusalCause(ke *dataenc.KeyStoreError, keyURI string) string {
	switch ke.Status {
	case http.StatusForbidden:
		return fmt.Sprintf("the server's identity was refused access to the key %s (%s: %s)", keyURI, ke.Code, ke.Message)
	case http.StatusNotFound:
		return fmt.Sprintf("the key %s or its key store no longer exists (%s)", keyURI, ke.Code)
	case http.StatusUnauthorized:
		return fmt.Sprintf("the key store did not accept the server's identity for %s (%s)", keyURI, ke.Message)
	}
	if ke.Err != nil {
		return fmt.Sprintf("the key %s cannot be used: %v", keyURI, ke.Err)
	}
	return fmt.Sprintf("the key %s cannot be used (%d %s: %s)", keyURI, ke.Status, ke.Code, ke.Message)
}

// check runs one check of a server's primary and geo-backup keys and acts on the result.
func (m *keyMonitor) check(ctx context.Context, listed *Server) {
	// Servers are checked one after another: a key store that does not answer must not hold up
	// the checks of all the others. A timeout is a transient failure, under the grace period.
	cctx, cancel := context.WithTimeout(ctx, keyCheckTimeout)
	defer cancel()
	v := m.checkAccess(cctx, listed, listed.Encryption.PrimaryKeyURI, listed.Encryption.PrimaryIdentityID)
	v = m.applyGrace(listed.UID+"/primary", v)
	m.count("primary", v)
	geo := listed.Encryption.GeoKeyURI != ""
	var gv verdict
	if geo {
		gv = m.applyGrace(listed.UID+"/geo", m.checkAccess(cctx, listed, listed.Encryption.GeoKeyURI, listed.Encryption.GeoIdentityID))
		m.count("geo", gv)
	}
	cancel()
	// The checks took time, in which an operation may have started on the server or an update
	// changed its keys: act only on the server as it is now, if the verdicts still apply to it,
	// and not while a request or the reconciler acts on it (the next check will).
	mu := m.s.serverLock(listed.ID())
	if !mu.TryLock() {
		return
	}
	defer mu.Unlock()
	srv, err := m.s.reload(ctx, listed.ID())
	if err != nil || srv == nil || srv.UID != listed.UID || srv.Operation != "" ||
		srv.State == StateProvisioning || srv.State == StateDropping || keyConfig(srv) != keyConfig(listed) {
		return
	}
	// Sampled only for a server that still exists and is not being dropped: a sample taken
	// after a delete forgot the server's history would start a new one for it.
	m.sample(srv, v, "")
	// The state the check left the server in is sampled once the check has acted.
	defer func() {
		if cur, err := m.s.reload(context.WithoutCancel(ctx), srv.ID()); err == nil && cur != nil && cur.UID == srv.UID {
			m.sample(cur, v, cur.State)
		}
	}()
	switch {
	case v.valid:
		m.onValid(ctx, srv, v.info)
	case !v.transient:
		m.revoke(ctx, srv, v.cause)
	}
	if geo && gv.valid {
		_, _, configured, _ := dataenc.ParseKeyID(srv.Encryption.GeoKeyURI)
		if configured == "" && srv.GeoEnvelope != nil && !strings.EqualFold(gv.info.KeyID, srv.GeoEnvelope.KeyID) {
			if err := m.followVersion(ctx, srv, true); err != nil {
				m.s.log.Warn("key monitor: follow new geo-backup key version", "server", srv.Name, "err", err)
			}
		}
	}
	if geo && !gv.transient {
		m.setGeoStatus(ctx, srv, gv)
	}
}

// keyCheckTimeout bounds the key-store calls of one server's check.
const keyCheckTimeout = 10 * time.Second

// keyConfig is what a server's key checks depend on: its keys, the identities that reach them
// and those identities' principals.
func keyConfig(srv *Server) [6]string {
	e := srv.Encryption
	principal := func(id string) string { return srv.Identities[strings.ToLower(id)].PrincipalID }
	return [6]string{e.PrimaryKeyURI, e.PrimaryIdentityID, principal(e.PrimaryIdentityID),
		e.GeoKeyURI, e.GeoIdentityID, principal(e.GeoIdentityID)}
}

func (m *keyMonitor) count(role string, v verdict) {
	result := "valid"
	if v.transient {
		result = "transient"
	} else if !v.valid {
		result = "invalid"
	}
	m.metrics.checks.WithLabelValues(role, result).Inc()
}

// sample records one primary-key check (and, when state is given, the server's state after
// it) for the metrics API.
func (m *keyMonitor) sample(srv *Server, v verdict, state string) {
	if m.samples == nil {
		return
	}
	id, now := srv.ID().String(), m.s.now()
	if state != "" {
		accessible := 1.0
		if state == StateInaccessible {
			accessible = 0
		}
		m.samples.Record(id, insights.ServerAccessible, now, accessible)
		return
	}
	ok := 0.0
	if v.valid {
		ok = 1
	}
	m.samples.Record(id, insights.KeyChecksSucceeded, now, ok)
	m.samples.Record(id, insights.KeyChecksFailed, now, 1-ok)
}

// applyGrace turns a transient failure into a refusal once it has lasted longer than Grace.
func (m *keyMonitor) applyGrace(key string, v verdict) verdict {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !v.transient {
		delete(m.firstFailure, key)
		return v
	}
	first, ok := m.firstFailure[key]
	if !ok {
		m.firstFailure[key] = m.s.now()
		m.s.log.Warn("key store unreachable; retrying within the grace period", "check", key, "cause", v.cause, "grace", m.cfg.Grace)
		return v
	}
	if m.s.now().Sub(first) > m.cfg.Grace {
		return verdict{cause: fmt.Sprintf("%s, for longer than the grace period of %s", v.cause, m.cfg.Grace)}
	}
	return v
}

// onValid follows a new key version, marks the key Valid, and recovers an Inaccessible server.
func (m *keyMonitor) onValid(ctx context.Context, srv *Server, info *dataenc.KeyInfo) {
	_, _, configured, _ := dataenc.ParseKeyID(srv.Encryption.PrimaryKeyURI)
	if configured == "" && srv.Envelope != nil && !strings.EqualFold(info.KeyID, srv.Envelope.KeyID) {
		if err := m.followVersion(ctx, srv, false); err != nil {
			m.s.log.Warn("key monitor: follow new key version", "server", srv.Name, "err", err)
		}
	}
	if srv.State == StateInaccessible {
		m.recover(ctx, srv)
		return
	}
	if srv.Encryption.PrimaryKeyStatus != KeyValid {
		m.s.mutate(ctx, srv.ID(), func(cur *Server) error {
			cur.Encryption.PrimaryKeyStatus = KeyValid
			return nil
		})
	}
}

// followVersion rewraps a DEK with its key's newest version (automatic key version update):
// unwrap with the version that wrapped it, wrap with the newest, store the new envelope in one
// transaction — a crash before it leaves the old envelope, which the old version still unwraps.
// geo selects the geo-backup DEK instead of the server's primary DEK.
func (m *keyMonitor) followVersion(ctx context.Context, srv *Server, geo bool) error {
	// The primary key wraps the server's DEK and repository 1's backup DEK; the geo-backup key
	// wraps repository 2's.
	keyURI, identityID, what := srv.Encryption.PrimaryKeyURI, srv.Encryption.PrimaryIdentityID, "DEK"
	envelopes := []func(*Server) **dataenc.Envelope{
		func(s *Server) **dataenc.Envelope { return &s.Envelope },
		func(s *Server) **dataenc.Envelope { return &s.BackupEnvelope },
	}
	if geo {
		keyURI, identityID, what = srv.Encryption.GeoKeyURI, srv.Encryption.GeoIdentityID, "geo-backup DEK"
		envelopes = []func(*Server) **dataenc.Envelope{func(s *Server) **dataenc.Envelope { return &s.GeoEnvelope }}
	}
	w, err := m.s.customerWrapper(srv, keyURI, identityID)
	if err != nil {
		return err
	}
	olds := make([]*dataenc.Envelope, len(envelopes))
	news := make([]*dataenc.Envelope, len(envelopes))
	for i, e := range envelopes {
		old := *e(srv)
		if old == nil {
			continue
		}
		dek, err := w.Unwrap(ctx, old)
		m.metrics.calls.WithLabelValues("unwrapKey").Inc()
		if err != nil {
			return fmt.Errorf("unwrap with the version in use %s: %w", old.KeyID, err)
		}
		env, err := w.Wrap(ctx, dek)
		m.metrics.calls.WithLabelValues("wrapKey").Inc()
		clear(dek)
		if err != nil {
			return fmt.Errorf("wrap with the newest version: %w", err)
		}
		olds[i], news[i] = old, env
	}
	if news[0] == nil {
		return nil
	}
	updated, err := m.s.mutate(ctx, srv.ID(), func(cur *Server) error {
		if cur.Operation != "" {
			return errSkip
		}
		for i, e := range envelopes {
			if news[i] == nil {
				continue
			}
			if *e(cur) == nil || (*e(cur)).KeyID != olds[i].KeyID {
				return errSkip
			}
			*e(cur) = news[i]
		}
		return nil
	})
	if errors.Is(err, errSkip) {
		return nil
	}
	if err != nil {
		return err
	}
	old, env := olds[0], news[0]
	if !geo {
		// The header beside the volume holds the primary DEK only.
		if err := m.s.dp.WriteEnvelope(ctx, updated.instance(), env); err != nil {
			m.s.log.Warn("write rewrapped DEK header", "server", srv.Name, "err", err)
		}
	}
	m.metrics.rewraps.Inc()
	*srv = *updated
	m.event(ctx, srv, "keyVersionUpdated", activitylog.LevelInformational,
		fmt.Sprintf("Automatic key version update: the %s of server '%s' is now wrapped by %s (was %s).", what, srv.Name, env.KeyID, old.KeyID),
		map[string]string{"previousKeyId": old.KeyID, "keyId": env.KeyID})
	return nil
}

// errSkip and errBusy abandon a monitor's change of a server: nothing to change, or an
// operation runs on it.
var (
	errSkip = errors.New("skip")
	errBusy = errors.New("an operation runs on the server")
)

// revoke makes a server Inaccessible: fast shutdown of PostgreSQL, unmount of the volume (the
// FUSE daemon, which held the only copy of the key, exits), key status Invalid.
func (m *keyMonitor) revoke(ctx context.Context, srv *Server, cause string) {
	from := srv.State
	updated, err := m.s.mutate(ctx, srv.ID(), func(cur *Server) error {
		if cur.Operation != "" {
			return errBusy
		}
		changed := cur.State != StateInaccessible || cur.Encryption.PrimaryKeyStatus != KeyInvalid || cur.StateReason != cause
		if !changed {
			return errSkip
		}
		cur.State, cur.StateReason, cur.Encryption.PrimaryKeyStatus = StateInaccessible, cause, KeyInvalid
		return nil
	})
	if errors.Is(err, errBusy) {
		return // an operation owns the server's data plane now; the next check looks again
	}
	if errors.Is(err, errSkip) {
		// Already Inaccessible: make sure it is still locked (a failed unmount is retried).
		if st, serr := m.s.dp.Status(ctx, srv.instance()); serr == nil && (st.Mounted || st.Running) {
			if err := m.s.dp.Stop(ctx, srv.instance()); err != nil {
				m.s.log.Error("key monitor: stop Inaccessible server", "server", srv.Name, "err", err)
			}
		}
		return
	}
	if err != nil {
		m.s.log.Error("key monitor: mark server Inaccessible", "server", srv.Name, "err", err)
		return
	}
	if err := m.s.dp.Stop(ctx, updated.instance()); err != nil {
		m.s.log.Error("key monitor: stop Inaccessible server (retried at the next check)", "server", srv.Name, "err", err)
	}
	if from != StateInaccessible {
		m.metrics.transitions.WithLabelValues(from, StateInaccessible).Inc()
		m.event(ctx, updated, "keyRevoked", activitylog.LevelError,
			fmt.Sprintf("Server '%s' is Inaccessible: %s. PostgreSQL was stopped and the encrypted volume unmounted; the server comes back when access to the key returns.", srv.Name, cause),
			map[string]string{"cause": cause, "previousState": from})
	}
}

// recover brings an Inaccessible server back once its key is usable again.
func (m *keyMonitor) recover(ctx context.Context, srv *Server) {
	desired := StateReady
	if srv.Desired == DesiredStopped {
		desired = StateStopped
	} else if err := m.s.bringUp(ctx, srv); err != nil {
		m.metrics.calls.WithLabelValues("unwrapKey").Inc()
		m.s.log.Warn("key monitor: key is valid again but the server does not start yet", "server", srv.Name, "err", err)
		return
	} else {
		m.metrics.calls.WithLabelValues("unwrapKey").Inc()
	}
	updated, err := m.s.mutate(ctx, srv.ID(), func(cur *Server) error {
		if cur.State != StateInaccessible || cur.Operation != "" {
			return errSkip
		}
		cur.State, cur.StateReason, cur.Encryption.PrimaryKeyStatus = desired, "", KeyValid
		return nil
	})
	if err != nil {
		return
	}
	m.metrics.transitions.WithLabelValues(StateInaccessible, desired).Inc()
	m.event(ctx, updated, "accessRestored", activitylog.LevelInformational,
		fmt.Sprintf("Access to the key of server '%s' was restored; the server is %s with its data intact.", srv.Name, desired), nil)
}

// setGeoStatus records the geo-backup key's status; an invalid geo key pauses geo copies only.
func (m *keyMonitor) setGeoStatus(ctx context.Context, srv *Server, v verdict) {
	status := KeyValid
	if !v.valid {
		status = KeyInvalid
	}
	if srv.Encryption.GeoKeyStatus == status {
		return
	}
	updated, err := m.s.mutate(ctx, srv.ID(), func(cur *Server) error {
		cur.Encryption.GeoKeyStatus = status
		if status == KeyValid && cur.BackupEnvelope != nil {
			// Repository 2 missed the WAL of the pause: it needs a full backup of its own.
			cur.GeoBackupDue = true
		}
		return nil
	})
	if err != nil {
		return
	}
	// Pause or resume repository 2: archive-push then serves repository 1 alone, or both.
	if err := m.s.dp.ConfigureBackups(ctx, updated.instance()); err != nil {
		m.s.log.Error("key monitor: reconfigure geo-redundant backups", "server", srv.Name, "err", err)
	}
	level, what := activitylog.LevelWarning, "geoBackupKeyInvalid"
	desc := fmt.Sprintf("The geo-backup key of server '%s' cannot be used: %s. Copies of backups to the paired region are paused; the server itself is unaffected.", srv.Name, v.cause)
	if v.valid {
		level, what = activitylog.LevelInformational, "geoBackupKeyRestored"
		desc = fmt.Sprintf("The geo-backup key of server '%s' is usable again; copies to the paired region resume.", srv.Name)
	}
	m.event(ctx, updated, what, level, desc, nil)
}

func (m *keyMonitor) event(ctx context.Context, srv *Server, op, level, desc string, props map[string]string) {
	m.s.event(ctx, srv, op, level, desc, props)
}
