package flexserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pgflex/pgflex/internal/activitylog"
	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/insights"
)

// Storage that means its size: the storage monitor measures every running server's storage,
// grows it when storage autogrow asks for it, and makes the server read-only when it is nearly
// full, as Azure does.
//
// A server on a volume with a filesystem of its own (fscrypt's image) has exactly
// storageSizeGB GiB; growing it grows the filesystem online. A server on the host's filesystem
// (gocryptfs) has no size of its own: its usage is the space its ciphertext takes, measured
// against storageSizeGB, which is then a limit the read-only rule enforces; growing it (a
// PATCH or autogrow) raises that limit. Neither layer reserves the host's space (fscrypt's
// images are sparse): keeping the host's disk larger than what its servers use is the
// operator's part.

const gib = 1 << 30

// Azure's thresholds, from "Storage options" and "Configure storage autogrow" (Azure Database
// for PostgreSQL flexible server, learn.microsoft.com/azure/postgresql/flexible-server/
// concepts-storage and .../scale/how-to-auto-grow-storage):
//   - "the server is automatically switched to read-only mode when the storage usage reaches
//     95 percent or when the available capacity is less than 5 GiB";
//   - autogrow "activates when the available space is less than 10% of the total capacity or
//     when the available space is less than 64 GiB. The smaller of the two ... for servers
//     with more than 1 TiB", and 20% instead of 10% for servers of 1 TiB or less (a 128 GiB
//     server grows with 25.6 GiB left); Premium SSD storage "always doubles in size": the next
//     size of StorageSizesGB. (Azure does not autogrow across 4 TiB, a limit of its managed
//     disks that needs a restart there; pgflex grows online at every size and does.)
const (
	readOnlyPercent      = 95.0
	readOnlyMinAvail     = 5 * gib
	autoGrowSmallPercent = 20 // of the size, for servers of autoGrowLargeGB or less
	autoGrowLargePercent = 10
	autoGrowLargeGB      = 1024
	autoGrowMaxAvail     = 64 * gib
)

// autoGrowDue applies Azure's autogrow threshold to a server of sizeGB GiB.
func autoGrowDue(u StorageUsage, sizeGB int) bool {
	pct := uint64(autoGrowSmallPercent)
	if sizeGB > autoGrowLargeGB {
		pct = autoGrowLargePercent
	}
	return u.Avail < min(u.Total*pct/100, autoGrowMaxAvail)
}

// readOnlyDue applies Azure's read-only threshold.
func readOnlyDue(u StorageUsage) bool {
	return u.Total > 0 && (u.Percent() >= readOnlyPercent || u.Avail < readOnlyMinAvail)
}

// nextStorageSize is the size storage autogrow grows a server of sizeGB GiB to: the next size
// Azure offers; false at the largest.
func nextStorageSize(sizeGB int) (int, bool) {
	i := slices.IndexFunc(StorageSizesGB, func(gb int) bool { return gb > sizeGB })
	if i < 0 {
		return 0, false
	}
	return StorageSizesGB[i], true
}

// undersized: a volume with a size of its own whose filesystem is well short of the size the
// server records (a grow recorded but not done: the daemon stopped in between, or the grow
// failed). A filesystem's own metadata takes a few percent of it, and sizes at least double.
func undersized(u StorageUsage, sizeGB int) bool {
	return u.Sizable && u.Total < uint64(sizeGB)*gib*8/10
}

// storageMonitor measures the servers' storage and acts on it.
type storageMonitor struct {
	s        *Service
	interval time.Duration
	samples  SampleRecorder

	mu sync.Mutex
	// last is each running server's latest measurement (by uid), shown by GET.
	last map[string]storageSample
	// enforced lists the servers whose configuration this daemon has made agree with their
	// read-only state: a restarted daemon applies each server's state once, whatever its
	// record says (the record may have been written by a daemon that stopped before applying).
	enforced map[string]bool
}

type storageSample struct {
	usage StorageUsage
	at    time.Time
}

// newStorageMonitor makes the monitor. One measurement is a statfs (a volume of its own) or a
// walk of the server's ciphertext directory (gocryptfs); at the default interval of 5 s, a disk
// filling at 200 MB/s is seen within 1 GB.
func newStorageMonitor(s *Service, interval time.Duration, samples SampleRecorder) *storageMonitor {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &storageMonitor{s: s, interval: interval, samples: samples, last: map[string]storageSample{}, enforced: map[string]bool{}}
}

// RunStorageMonitor measures every running server's storage each interval until ctx ends.
func (s *Service) RunStorageMonitor(ctx context.Context) {
	for {
		s.storage.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.storage.interval):
		}
	}
}

func (m *storageMonitor) pass(ctx context.Context) {
	servers, err := m.s.listServers(ctx)
	if err != nil {
		m.s.log.Error("storage monitor: list servers", "err", err)
		return
	}
	running := map[string]bool{}
	for i := range servers {
		srv := &servers[i]
		if srv.State != StateReady || srv.Desired != DesiredRunning || srv.Operation != "" {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		running[srv.UID] = true
		m.check(ctx, srv)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for uid := range m.last {
		if !running[uid] {
			delete(m.last, uid)
			delete(m.enforced, uid)
		}
	}
}

// latest is a server's latest measurement, if it runs and was measured.
func (m *storageMonitor) latest(uid string) *storageSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.last[uid]; ok {
		return &s
	}
	return nil
}

// check measures one server and acts: grows it (an undersized volume, or storage autogrow),
// then makes it read-only or read-write again.
func (m *storageMonitor) check(ctx context.Context, srv *Server) {
	u, err := m.measure(ctx, srv)
	if err != nil {
		// A server whose PostgreSQL or volume is down is the reconciler's; the next pass looks again.
		m.s.log.Debug("storage monitor: measure", "server", srv.Name, "err", err)
		return
	}
	grow := 0
	if undersized(u, srv.StorageSizeGB) {
		grow = srv.StorageSizeGB
	} else if srv.AutoGrow == "Enabled" && autoGrowDue(u, srv.StorageSizeGB) {
		grow, _ = nextStorageSize(srv.StorageSizeGB) // 0 at the largest size
	}
	if grow == 0 {
		m.setReadOnly(ctx, srv, u)
		return
	}
	m.grow(ctx, srv, u, grow)
	// Measured again after a grow: the read-only rule applies to the storage as it is now.
	cur, err := m.s.reload(ctx, srv.ID())
	if err != nil || cur == nil || cur.UID != srv.UID {
		return
	}
	if u, err = m.measure(ctx, cur); err == nil {
		m.setReadOnly(ctx, cur, u)
	}
}

// measure reads a server's storage, keeps it for GET and records it for the metrics API.
func (m *storageMonitor) measure(ctx context.Context, srv *Server) (StorageUsage, error) {
	u, err := m.s.dp.StorageUsage(ctx, srv.instance())
	if err != nil {
		return u, err
	}
	now := m.s.now()
	m.mu.Lock()
	m.last[srv.UID] = storageSample{usage: u, at: now}
	m.mu.Unlock()
	if m.samples != nil {
		id := srv.ID().String()
		m.samples.Record(id, insights.StoragePercent, now, u.Percent())
		m.samples.Record(id, insights.StorageUsed, now, float64(u.Used))
		m.samples.Record(id, insights.StorageFree, now, float64(u.Avail))
	}
	return u, nil
}

// lockIdle takes the server's lock if nothing else acts on it and returns the server as it is
// now, or nil (busy, gone, or no longer a running server): the monitor then leaves it to the
// next pass.
func (m *storageMonitor) lockIdle(ctx context.Context, listed *Server) (*Server, func()) {
	mu := m.s.serverLock(listed.ID())
	if !mu.TryLock() {
		return nil, nil
	}
	cur, err := m.s.reload(ctx, listed.ID())
	if err != nil || cur == nil || cur.UID != listed.UID || cur.Operation != "" || cur.State != StateReady || cur.Desired != DesiredRunning {
		mu.Unlock()
		return nil, nil
	}
	return cur, mu.Unlock
}

// grow records the server's new size, then grows its volume online: a daemon that stops in
// between finds the volume undersized at its next check and grows it then.
func (m *storageMonitor) grow(ctx context.Context, listed *Server, u StorageUsage, sizeGB int) {
	cur, unlock := m.lockIdle(ctx, listed)
	if cur == nil {
		return
	}
	defer unlock()
	from := cur.StorageSizeGB
	if from != listed.StorageSizeGB {
		return // the size changed since the measurement
	}
	if sizeGB != from {
		var err error
		cur, err = m.s.mutate(ctx, cur.ID(), func(s *Server) error {
			if s.StorageSizeGB != from || s.Operation != "" {
				return errSkip
			}
			s.StorageSizeGB = sizeGB
			return nil
		})
		if err != nil {
			if !errors.Is(err, errSkip) {
				m.s.log.Error("storage autogrow: record the new size", "server", listed.Name, "err", err)
			}
			return
		}
	}
	if err := m.s.dp.GrowStorage(ctx, cur.instance()); err != nil {
		m.s.log.Error("storage: grow the server's volume (retried at the next check)", "server", cur.Name, "size_gb", sizeGB, "err", err)
		return
	}
	if sizeGB == from {
		m.s.log.Info("storage: grew an undersized volume to the server's size", "server", cur.Name, "size_gb", sizeGB)
		return
	}
	what := "its volume grew online"
	if !u.Sizable {
		what = "its storage limit was raised (its volume shares the host's filesystem)"
	}
	m.s.log.Info("storage autogrow", "server", cur.Name, "from_gb", from, "to_gb", sizeGB, "used_percent", u.Percent())
	m.s.event(ctx, cur, "storageAutoGrow", activitylog.LevelInformational,
		fmt.Sprintf("Storage autogrow: server '%s' had %s free of its %d GiB (%.1f%% used); %s to %d GiB.",
			cur.Name, formatGiB(u.Avail), from, u.Percent(), what, sizeGB),
		map[string]string{"previousStorageSizeGB": fmt.Sprint(from), "storageSizeGB": fmt.Sprint(sizeGB)})
}

// setReadOnly makes the server read-only when its storage is nearly full, and read-write again
// when it no longer is: the server's configuration sets default_transaction_read_only (a
// session may still SET it off, to delete data), applied with a reload.
func (m *storageMonitor) setReadOnly(ctx context.Context, listed *Server, u StorageUsage) {
	due := readOnlyDue(u)
	m.mu.Lock()
	enforced := m.enforced[listed.UID]
	m.mu.Unlock()
	if due == (listed.StorageReadOnly != "") && enforced {
		return
	}
	cur, unlock := m.lockIdle(ctx, listed)
	if cur == nil {
		return
	}
	defer unlock()
	was := cur.StorageReadOnly
	reason := ""
	if due {
		reason = storageReadOnlyReason(cur, u)
	}
	if (was != "") != due {
		var err error
		cur, err = m.s.mutate(ctx, cur.ID(), func(s *Server) error {
			if s.Operation != "" {
				return errSkip
			}
			s.StorageReadOnly = reason
			return nil
		})
		if err != nil {
			if !errors.Is(err, errSkip) {
				m.s.log.Error("storage monitor: record the read-only state", "server", listed.Name, "err", err)
			}
			return
		}
	}
	if err := m.s.applyParameters(ctx, cur.ID()); err != nil {
		// Put the record back, so that the next check tries again.
		_, _ = m.s.mutate(context.WithoutCancel(ctx), cur.ID(), func(s *Server) error {
			s.StorageReadOnly = was
			return nil
		})
		m.s.log.Error("storage monitor: apply the read-only state (retried at the next check)", "server", cur.Name, "read_only", due, "err", err)
		return
	}
	m.mu.Lock()
	m.enforced[cur.UID] = true
	m.mu.Unlock()
	switch {
	case due && was == "":
		m.s.log.Warn("storage: server made read-only", "server", cur.Name, "used_percent", u.Percent(), "avail_bytes", u.Avail)
		m.s.event(ctx, cur, "storageReadOnly", activitylog.LevelCritical, fmt.Sprintf("Server '%s' was made read-only: %s", cur.Name, reason),
			map[string]string{"storagePercent": fmt.Sprintf("%.1f", u.Percent()), "storageFreeBytes": fmt.Sprint(u.Avail)})
	case !due && was != "":
		m.s.log.Info("storage: server is read-write again", "server", cur.Name, "used_percent", u.Percent())
		m.s.event(ctx, cur, "storageReadWrite", activitylog.LevelInformational,
			fmt.Sprintf("Server '%s' is read-write again: its storage is %.1f%% used, %s free of %d GiB.", cur.Name, u.Percent(), formatGiB(u.Avail), cur.StorageSizeGB),
			map[string]string{"storagePercent": fmt.Sprintf("%.1f", u.Percent()), "storageFreeBytes": fmt.Sprint(u.Avail)})
	}
}

// storageReadOnlyReason says why a server is read-only and what to do, as its stateReason shows it.
func storageReadOnlyReason(srv *Server, u StorageUsage) string {
	todo := "increase its storage size (properties.storage.storageSizeGB)"
	if _, ok := nextStorageSize(srv.StorageSizeGB); !ok {
		todo = "its storage is at the largest size"
	} else if srv.AutoGrow != "Enabled" {
		todo += " or enable storage autogrow"
	}
	return fmt.Sprintf("its storage is %.1f%% used (%s free of %d GiB), and a server is made read-only when its storage reaches %.0f%% or less than %s remains. To make it writable again, %s, or delete data in a session after SET default_transaction_read_only = off.",
		u.Percent(), formatGiB(u.Avail), srv.StorageSizeGB, readOnlyPercent, formatGiB(readOnlyMinAvail), todo)
}

func formatGiB(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/gib) }

// event records an activity-log event about a server.
func (s *Service) event(ctx context.Context, srv *Server, op, level, desc string, props map[string]string) {
	if s.events == nil {
		return
	}
	if err := s.events.Append(context.WithoutCancel(ctx), activitylog.Event{ResourceID: srv.ID().String(),
		Operation: ResourceType + "/" + op + "/action", Level: level, Description: desc, Properties: props}); err != nil {
		s.log.Error("append activity event", "err", err)
	}
}

// storageView is properties.storage: Azure's properties, and pgflex's extensions saying what
// the storage holds (from the server's latest measurement, while it runs) and whether it is
// read-only for lack of space (isReadOnly, as Azure Cosmos DB for PostgreSQL names it).
func (s *Server) storageView() map[string]any {
	out := map[string]any{"storageSizeGB": s.StorageSizeGB, "autoGrow": s.AutoGrow, "tier": storageTier(s.StorageSizeGB),
		"iops": storageIOPS(s.StorageSizeGB), "type": "Premium_LRS"}
	if s.storageUsage != nil {
		u := s.storageUsage.usage
		out["storageUsedBytes"] = u.Used
		out["storageFreeBytes"] = u.Avail
		out["storagePercent"] = float64(int(u.Percent()*10)) / 10
	}
	out["isReadOnly"] = s.StorageReadOnly != ""
	return out
}

// growStorage grows the volume of an updated server to its recorded size.
func (s *Service) growStorage(ctx context.Context, id arm.ResourceID) error {
	srv, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if st, err := s.dp.Status(ctx, srv.instance()); err != nil || !st.Mounted {
		// A stopped server's volume grows once it runs again: the storage monitor finds it
		// smaller than its recorded size.
		s.log.Info("server storage grows when the server runs", "server", srv.Name, "size_gb", srv.StorageSizeGB)
		return nil
	}
	if err := s.dp.GrowStorage(ctx, srv.instance()); err != nil {
		// The size stays recorded; the storage monitor grows the volume once it can.
		return fmt.Errorf("grow the storage of server '%s' to %d GiB: %w", srv.Name, srv.StorageSizeGB, err)
	}
	s.log.Info("server storage grown", "server", srv.Name, "size_gb", srv.StorageSizeGB)
	return nil
}
