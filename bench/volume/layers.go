package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgflex/pgflex/internal/volume"
)

// layer is one storage stack under PostgreSQL's data directory.
type layer struct {
	name string
	// open sets the layer up in dir (empty, on the disk under test) and
	// returns the directory the data directory goes into, and what undoes
	// it all (called with a fresh context, also after Ctrl-C).
	open func(ctx context.Context, dir string) (parent string, closeFn func(context.Context) error, err error)
}

// layerNames are the layers -layers accepts, in report order.
func layerNames() []string { return []string{"plain", "loop", "fscrypt", "gocryptfs", "gocryptfs-wbc"} }

// layerCatalog builds every layer. The encrypting ones are pgflex's own
// volume.Layer implementations behind a volume.Volume, as the data plane
// uses them; adding one is one entry here.
func layerCatalog(c config, log *slog.Logger) map[string]layer {
	vol := func(name string, mk func() volume.Layer) layer {
		return layer{name: name, open: func(ctx context.Context, dir string) (string, func(context.Context) error, error) {
			return openVolume(ctx, dir, c.volumeSize, mk(), log)
		}}
	}
	return map[string]layer{
		"plain": {name: "plain", open: openPlain},
		"loop": {name: "loop", open: func(ctx context.Context, dir string) (string, func(context.Context) error, error) {
			return openLoop(ctx, dir, c.volumeSize)
		}},
		"fscrypt": vol("fscrypt", func() volume.Layer { return &volume.Fscrypt{Logger: log} }),
		"gocryptfs": vol("gocryptfs", func() volume.Layer {
			return &volume.Gocryptfs{Options: c.gc, Logger: log}
		}),
		"gocryptfs-wbc": vol("gocryptfs-wbc", func() volume.Layer {
			return &volume.Gocryptfs{Binary: c.gcwbBin, Options: c.gc, Logger: log}
		}),
	}
}

func openPlain(_ context.Context, dir string) (string, func(context.Context) error, error) {
	parent := filepath.Join(dir, "plain")
	if err := os.Mkdir(parent, 0o711); err != nil {
		return "", nil, err
	}
	return parent, func(context.Context) error { return nil }, nil
}

// openVolume creates and mounts a fresh volume with a random key that lives
// only in this process.
func openVolume(ctx context.Context, dir string, size int64, l volume.Layer, log *slog.Logger) (string, func(context.Context) error, error) {
	key := make([]byte, volume.KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return "", nil, err
	}
	v := &volume.Volume{Dir: filepath.Join(dir, "vol"), Layer: l, Logger: log, Size: size}
	if err := v.Create(ctx, key); err != nil {
		return "", nil, err
	}
	if err := v.Mount(ctx, key); err != nil {
		return "", nil, err
	}
	return v.DataDir(), v.Unmount, nil
}

// openLoop makes what the fscrypt layer stands on, without the encryption:
// an ext4 image of the same size on a loop device in direct-I/O mode, so that
// the image's blocks are not cached twice. Its numbers are the ceiling of any
// layer built on a per-server image on this host.
func openLoop(ctx context.Context, dir string, size int64) (parent string, closeFn func(context.Context) error, err error) {
	img := filepath.Join(dir, "loop.img")
	mnt := filepath.Join(dir, "loop")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(mnt, 0o711); err != nil {
		return "", nil, err
	}
	if _, err := command(ctx, "mkfs.ext4", mkfsArgs(img)...); err != nil {
		return "", nil, err
	}
	dev, err := attachLoop(ctx, img, true)
	if err != nil {
		return "", nil, err
	}
	closeFn = func(ctx context.Context) error { return detachLoop(ctx, dev) }
	defer func() {
		if err != nil {
			_ = closeFn(context.Background())
		}
	}()
	if _, err := command(ctx, "mount", "-t", "ext4", "-o", ext4MountOptions, dev, mnt); err != nil {
		return "", nil, err
	}
	closeFn = func(ctx context.Context) error {
		return errors.Join(unmountDir(ctx, mnt), detachLoop(ctx, dev))
	}
	if err := os.Chmod(mnt, 0o711); err != nil { // as volume.Fscrypt's root
		return "", nil, err
	}
	parent = filepath.Join(mnt, "data")
	if err := os.Mkdir(parent, 0o711); err != nil {
		return "", nil, err
	}
	return parent, closeFn, nil
}

// mkfsArgs are the mkfs.ext4 options of volume.Fscrypt's image without the
// encrypt feature, so that the loop layer differs from fscrypt in the
// encryption only.
func mkfsArgs(img string) []string {
	return []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", "pgflex",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", img}
}

// ext4MountOptions are volume.Fscrypt's.
const ext4MountOptions = "nosuid,nodev,errors=remount-ro,noinit_itable"

// attachLoop attaches img to a free loop device and returns the device.
func attachLoop(ctx context.Context, img string, directIO bool) (string, error) {
	args := []string{"--find", "--show", "--sector-size", "4096"} // as volume.Fscrypt
	if directIO {
		args = append(args, "--direct-io=on")
	}
	out, err := command(ctx, "losetup", append(args, img)...)
	if err != nil {
		return "", err
	}
	dev := strings.TrimSpace(out)
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("losetup printed %q, not a loop device", out)
	}
	if directIO {
		// losetup falls back to buffered I/O silently when the backing
		// filesystem refuses O_DIRECT; the measurement must say which.
		b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/dio"))
		if err != nil || strings.TrimSpace(string(b)) != "1" {
			_ = detachLoop(context.Background(), dev)
			return "", fmt.Errorf("loop device %s is not in direct-I/O mode (dio=%q, %v)", dev, b, err)
		}
	}
	return dev, nil
}

func detachLoop(ctx context.Context, dev string) error {
	_, err := command(ctx, "losetup", "-d", dev)
	return err
}

// unmountDir unmounts dir, retrying briefly while it is busy (a server that
// just exited may still hold it for a moment).
func unmountDir(ctx context.Context, dir string) error {
	var err error
	for i := 0; i < 20; i++ {
		if _, err = command(ctx, "umount", dir); err == nil || !strings.Contains(err.Error(), "busy") {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// command runs a system tool with a minimal environment and returns its
// output; the error carries the output.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// sizeMiB renders a byte count for mount options.
func sizeMiB(b int64) string { return strconv.FormatInt(b>>20, 10) + "m" }
