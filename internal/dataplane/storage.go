package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgflex/pgflex/internal/flexserver"
	"github.com/pgflex/pgflex/internal/volume"
)

// gib is a storageSizeGB unit: Azure's sizes are GiB.
const gib = 1 << 30

// StorageUsage measures a mounted server's storage. A volume with a filesystem of its own
// (fscrypt's image) reports that filesystem; one on the host's filesystem (gocryptfs) reports
// the blocks its ciphertext takes against the server's storageSizeGB, since the host's statfs
// says nothing about one server.
func (m *Manager) StorageUsage(ctx context.Context, inst flexserver.Instance) (flexserver.StorageUsage, error) {
	vol := m.volume(inst)
	if !sizable(vol) {
		st, err := vol.Status(ctx)
		if err != nil {
			return flexserver.StorageUsage{}, err
		}
		if st != volume.Mounted {
			return flexserver.StorageUsage{}, fmt.Errorf("storage usage of server %s: its volume is %s", inst.Name, st)
		}
		used, err := diskUsage(ctx, vol.CipherDir())
		if err != nil {
			return flexserver.StorageUsage{}, fmt.Errorf("storage usage of server %s: %w", inst.Name, err)
		}
		total := uint64(inst.StorageSizeGB) * gib
		return flexserver.StorageUsage{Total: total, Used: used, Avail: total - min(used, total)}, nil
	}
	u, err := vol.Usage(ctx)
	if err != nil {
		return flexserver.StorageUsage{}, err
	}
	// Blocks the filesystem reserves for root are no more usable by PostgreSQL than used ones:
	// used is what PostgreSQL can no longer write.
	return flexserver.StorageUsage{Total: u.Total, Used: u.Total - min(u.Avail, u.Total), Avail: u.Avail, Sizable: true}, nil
}

// GrowStorage makes the server's volume inst.StorageSizeGB GiB large (online if mounted). A
// volume on the host's filesystem has no size to grow.
func (m *Manager) GrowStorage(ctx context.Context, inst flexserver.Instance) error {
	vol := m.volume(inst)
	if !sizable(vol) || inst.StorageSizeGB <= 0 {
		return nil
	}
	err := vol.Grow(ctx, int64(inst.StorageSizeGB)*gib)
	switch {
	case err == nil, errors.Is(err, volume.ErrNotSizable):
		return nil
	case errors.Is(err, volume.ErrRemountToGrow):
		return fmt.Errorf("%w: %w", flexserver.ErrStorageGrowsAtRestart, err)
	}
	return fmt.Errorf("grow the storage of server %s to %d GiB: %w", inst.Name, inst.StorageSizeGB, err)
}

// VolumeReleased waits until no loop device serves an image of the server's stopped volume any
// more. The kernel releases the device once the last mount of its filesystem is gone, and a
// mount namespace of the server's sandbox can outlive the stop by a moment: mounting the image
// again (and growing it offline) before then would work on a filesystem that is still live.
func (m *Manager) VolumeReleased(ctx context.Context, inst flexserver.Instance) error {
	vol := m.volume(inst)
	start := time.Now()
	logged := false
	for {
		dev, held := vol.Attached()
		if !held {
			if waited := time.Since(start); waited > 100*time.Millisecond {
				m.log.Info("volume released", "server", inst.Name, "waited", waited.Round(time.Millisecond))
			}
			return nil
		}
		if !logged && time.Since(start) > 2*time.Second {
			logged = true
			m.log.Warn("volume still held after the server stopped", "server", inst.Name, "device", dev, "held_by", mountHolders(dev))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server %s: %s still serves its volume: %w", inst.Name, dev, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mountHolders lists the processes (pid and name) whose mount namespace still mounts dev.
func mountHolders(dev string) []string {
	var out []string
	infos, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, f := range infos {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), " "+dev+" ") {
			continue
		}
		dir := filepath.Dir(f)
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		out = append(out, filepath.Base(dir)+":"+strings.TrimSpace(string(comm)))
		if len(out) == 10 {
			break
		}
	}
	return out
}

// sizable: the volume's layer gives it a filesystem of its own.
func sizable(vol *volume.Volume) bool {
	_, ok := vol.Layer.(volume.Sizer)
	return ok
}

// diskUsage is what the files under dir take on disk (du): allocated blocks, not apparent
// sizes, so that sparse files count for what they hold. Hard links are counted once.
func diskUsage(ctx context.Context, dir string) (uint64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total uint64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A file PostgreSQL removed between the listing and its stat is no longer there.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += uint64(st.Blocks) * 512
		return nil
	})
	return total, err
}
