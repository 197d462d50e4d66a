package flexserver

import (
	"context"
	"encoding/json"
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
//     size of StorageSizesGB. (Azure does not autogrow across 4 TiB, where its managed disks
//     need a restart; pgflex grows at every size, online where the host allows it, else with
//     a restart of about a second.)
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

// storageMonitor measures the servers' storage and acts on it.
type storageMonitor struct {
	s        *Service
	interval time.Duration
	samples  SampleRecorder

	mu sync.Mutex
	// last is each running server's latest measurement (by uid), shown by GET.
	last map[string]StorageUsage
	// enforced lists the servers whose configuration this daemon has made agree with their
	// read-only state: a restarted daemon applies each server's state once, whatever its
	// record says (the record may have been written by a daemon that stopped before applying).
	enforced map[string]bool
}

// undersized: a volume with a size of its own whose filesystem is well short of the size the
// server records. A filesystem's own metadata takes a few percent of it, and sizes at least
// double.
func undersized(u StorageUsage, sizeGB int) bool {
	return u.Sizable && u.Total < uint64(sizeGB)*gib*8/10
}

// newStorageMonitor makes the monitor. One measurement is a statfs (a volume of its own) or a
// walk of the server's ciphertext directory (gocryptfs); at the default interval of 5 s, a disk
// filling at 200 MB/s is seen within 1 GB.
func newStorageMonitor(s *Service, interval time.Duration, samples SampleRecorder) *storageMonitor {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &storageMonitor{s: s, interval: interval, samples: samples, last: map[string]StorageUsage{}, enforced: map[string]bool{}}
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
func (m *storageMonitor) latest(uid string) *StorageUsage {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.last[uid]; ok {
		return &u
	}
	return nil
}

// check measures one server and acts: storage autogrow starts an update that grows it, else
// the server is made read-only or read-write again as its usage says.
func (m *storageMonitor) check(ctx context.Context, srv *Server) {
	u, err := m.measure(ctx, srv)
	if err != nil {
		// A server whose PostgreSQL or volume is down is the reconciler's; the next pass looks again.
		m.s.log.Debug("storage monitor: measure", "server", srv.Name, "err", err)
		return
	}
	// A volume still short of its recorded size is not grown further: its grow failed (or waits
	// for the next mount, which finishes it), and growing again would double the size again.
	if srv.AutoGrow == "Enabled" && !undersized(u, srv.StorageSizeGB) && autoGrowDue(u, srv.StorageSizeGB) {
		if next, ok := nextStorageSize(srv.StorageSizeGB); ok {
			// The read-only rule applies again once the grow is over (at the next pass).
			m.autoGrow(ctx, srv, u, next)
			return
		}
	}
	m.setReadOnly(ctx, srv, u)
}

// measure reads a server's storage, keeps it for GET and records it for the metrics API.
func (m *storageMonitor) measure(ctx context.Context, srv *Server) (StorageUsage, error) {
	u, err := m.s.dp.StorageUsage(ctx, srv.instance())
	if err != nil {
		return u, err
	}
	now := m.s.now()
	m.mu.Lock()
	m.last[srv.UID] = u
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

// autoGrowData is what storage autogrow measured when it started an update.
type autoGrowData struct {
	FromGB      int     `json:"fromGB"`
	UsedPercent float64 `json:"usedPercent"`
	FreeBytes   uint64  `json:"freeBytes"`
}

// autoGrow starts the update that grows a server to sizeGB, as a PATCH of storageSizeGB
// would: the size is recorded with the operation, which the daemon resumes after a restart.
func (m *storageMonitor) autoGrow(ctx context.Context, listed *Server, u StorageUsage, sizeGB int) {
	cur, unlock := m.lockIdle(ctx, listed)
	if cur == nil {
		return
	}
	defer unlock()
	from := listed.StorageSizeGB
	var op *arm.Operation
	_, err := m.s.mutate(ctx, cur.ID(), func(s *Server) error {
		if s.StorageSizeGB != from || s.Operation != "" || s.State != StateReady {
			return errSkip // changed since the measurement
		}
		s.StorageSizeGB = sizeGB
		op = m.s.newOperation(s, kindUpdate)
		op.Data, _ = json.Marshal(updateData{GrowStorage: true, AutoGrow: &autoGrowData{FromGB: from, UsedPercent: u.Percent(), FreeBytes: u.Avail}})
		s.Operation, s.State = op.Name, StateUpdating
		return nil
	})
	if err != nil {
		if !errors.Is(err, errSkip) {
			m.s.log.Error("storage autogrow: record the new size", "server", listed.Name, "err", err)
		}
		return
	}
	m.s.log.Info("storage autogrow", "server", listed.Name, "from_gb", from, "to_gb", sizeGB, "used_percent", u.Percent(), "operation", op.Name)
	if err := m.s.ops.Start(ctx, op, func(ctx context.Context, op *arm.Operation) error { return m.s.finishUpdate(ctx, op, nil) }); err != nil {
		m.s.log.Error("storage autogrow: start the update", "server", listed.Name, "err", err)
		m.s.endUpdate(ctx, cur.ID())
	}
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
	// The configuration first, then the record (show says read-only once the server is), in
	// turn with parameter changes.
	if err := m.s.applyParametersWith(ctx, cur.ID(), func(s *Server) { s.StorageReadOnly = reason }); err != nil {
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
	todo := "delete data in a session after SET default_transaction_read_only = off (its storage is at the largest size)"
	if _, ok := nextStorageSize(srv.StorageSizeGB); ok {
		todo = "increase its storage size (properties.storage.storageSizeGB)"
		if srv.AutoGrow != "Enabled" {
			todo += " or enable storage autogrow"
		}
		todo += ", or delete data in a session after SET default_transaction_read_only = off"
	}
	return fmt.Sprintf("its storage is %.1f%% used (%s free of %d GiB), and a server is made read-only when its storage reaches %.0f%% or less than %s remains. To make it writable again, %s.",
		u.Percent(), formatGiB(u.Avail), srv.StorageSizeGB, readOnlyPercent, formatGiB(readOnlyMinAvail), todo)
}

func formatGiB(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/gib) }

// event records an activity-log event about a server (an action that succeeded).
func (s *Service) event(ctx context.Context, srv *Server, op, level, desc string, props map[string]string) {
	s.eventStatus(ctx, srv, op, level, "", desc, props)
}

// eventStatus records an activity-log event with its status ("" is Succeeded).
func (s *Service) eventStatus(ctx context.Context, srv *Server, op, level, status, desc string, props map[string]string) {
	if s.events == nil {
		return
	}
	if err := s.events.Append(context.WithoutCancel(ctx), activitylog.Event{ResourceID: srv.ID().String(),
		Operation: ResourceType + "/" + op + "/action", Level: level, Status: status, Description: desc, Properties: props}); err != nil {
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
		u := s.storageUsage
		out["storageUsedBytes"] = u.Used
		out["storageFreeBytes"] = u.Avail
		out["storagePercent"] = float64(int(u.Percent()*10)) / 10
	}
	out["isReadOnly"] = s.StorageReadOnly != ""
	return out
}

// ErrStorageGrowsAtRestart is what DataPlane.GrowStorage reports when the volume's image
// grew but its mounted filesystem cannot follow online (the host withholds CAP_SYS_RESOURCE
// from the daemon): it takes its new size when it is mounted again.
var ErrStorageGrowsAtRestart = errors.New("the storage takes its new size when the server restarts")

// growStorage grows the volume of an updated server to its recorded size: online, or, where
// the host does not allow that, with a restart of the server (its volume is mounted again at
// its new size), as Azure restarts a server whose disk crosses 4 TiB. ag is set when storage
// autogrow started the update.
func (s *Service) growStorage(ctx context.Context, id arm.ResourceID, ag *autoGrowData) error {
	srv, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	how := "online"
	if st, err := s.dp.Status(ctx, srv.instance()); err == nil && !st.Mounted {
		// A stopped server's image grows now, its filesystem when it is mounted again.
		how = "when the server starts"
	}
	err = s.dp.GrowStorage(ctx, srv.instance())
	if errors.Is(err, ErrStorageGrowsAtRestart) {
		how = "with a restart of the server (this host does not let its filesystem grow online)"
		s.log.Warn("server storage grows with a restart", "server", srv.Name, "size_gb", srv.StorageSizeGB, "cause", err)
		if err = s.dp.Stop(ctx, srv.instance()); err == nil {
			err = s.volumeReleased(ctx, srv)
		}
		if err == nil {
			if err = s.bringUp(ctx, srv); err == nil {
				// The restart applied any static parameter that was waiting for one.
				s.clearPendingRestart(ctx, id)
			}
		}
		if err == nil {
			// A volume still held elsewhere is mounted shared, at its old size: say so.
			if u, uerr := s.dp.StorageUsage(ctx, srv.instance()); uerr == nil && undersized(u, srv.StorageSizeGB) {
				err = fmt.Errorf("the server restarted but its filesystem kept %s (it was still held elsewhere); it takes its new size at its next restart", formatGiB(u.Total))
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("grow the storage of server '%s' to %d GiB: %w", srv.Name, srv.StorageSizeGB, err)
		if ag != nil {
			s.eventStatus(ctx, srv, "storageAutoGrow", activitylog.LevelError, "Failed", fmt.Sprintf("Storage autogrow failed: %v.", err),
				map[string]string{"previousStorageSizeGB": fmt.Sprint(ag.FromGB), "storageSizeGB": fmt.Sprint(srv.StorageSizeGB)})
		}
		return err
	}
	s.log.Info("server storage grown", "server", srv.Name, "size_gb", srv.StorageSizeGB, "how", how)
	if ag != nil {
		what := "its storage grew " + how
		if st, err := s.dp.StorageUsage(ctx, srv.instance()); err == nil && !st.Sizable {
			what = "its storage limit was raised (its volume shares the host's filesystem)"
		}
		s.event(ctx, srv, "storageAutoGrow", activitylog.LevelInformational,
			fmt.Sprintf("Storage autogrow: server '%s' had %s free of its %d GiB (%.1f%% used); %s to %d GiB.",
				srv.Name, formatGiB(ag.FreeBytes), ag.FromGB, ag.UsedPercent, what, srv.StorageSizeGB),
			map[string]string{"previousStorageSizeGB": fmt.Sprint(ag.FromGB), "storageSizeGB": fmt.Sprint(srv.StorageSizeGB)})
	}
	return nil
}

// volumeReleased waits, for a bounded time, until the server's stopped volume can be mounted
// again.
func (s *Service) volumeReleased(ctx context.Context, srv *Server) error {
	ctx, cancel := context.WithTimeout(ctx, releasePatience)
	defer cancel()
	return s.dp.VolumeReleased(ctx, srv.instance())
}

// releasePatience bounds volumeReleased.
const releasePatience = time.Minute
