package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// Volume is one server's encrypted volume, laid out under Dir:
//
//	Dir/cipher/               ciphertext: fscrypt's ext4 image (volume.img) or gocryptfs's files
//	Dir/cipher.gocryptfs.log  gocryptfs's output (no key material)
//	Dir/mount/                the plaintext view, only while mounted
//	Dir/header.json           the wrapped DEK (see Header)
//
// The header sits beside the cipher directory, not inside it, so that it can
// be read (to unwrap the DEK) before the volume is mounted, and so that
// crypto-shredding is the deletion of one small file.
//
// A Volume holds no key and no process handle: every method asks the kernel
// (/proc/self/mountinfo) for the current state, so a daemon that was killed
// and restarted uses a fresh Volume exactly as it used the old one.
type Volume struct {
	// Dir is the volume's directory; it is created by Create.
	Dir string
	// Layer is the encrypting filesystem; nil means &Gocryptfs{} with
	// the default options.
	Layer Layer
	// Logger receives events; nil means slog.Default().
	Logger *slog.Logger
	// MountPath, if set, is where the plaintext view is mounted instead of Dir/mount: the
	// daemon mounts under a runtime directory that the PostgreSQL user can traverse, while Dir
	// (ciphertext and header) stays inside the root-only data directory.
	MountPath string
	// Size is the size in bytes Create gives a layer that has one (see InitOptions).
	Size int64
}

// CipherDir is the backing directory holding only ciphertext.
func (v *Volume) CipherDir() string { return filepath.Join(v.Dir, "cipher") }

// MountDir is where the plaintext view is mounted.
func (v *Volume) MountDir() string {
	if v.MountPath != "" {
		return v.MountPath
	}
	return filepath.Join(v.Dir, "mount")
}

// DataDir is where the plaintext lives while the volume is mounted: MountDir or a directory
// in it, as the layer says.
func (v *Volume) DataDir() string { return v.layer().DataDir(v.MountDir()) }

// LayerName names the volume's layer.
func (v *Volume) LayerName() string { return v.layer().Name() }

// HeaderPath is where the wrapped-DEK header is kept.
func (v *Volume) HeaderPath() string { return filepath.Join(v.Dir, "header.json") }

func (v *Volume) layer() Layer {
	if v.Layer != nil {
		return v.Layer
	}
	return &Gocryptfs{Logger: v.Logger}
}

func (v *Volume) logger() *slog.Logger {
	if v.Logger != nil {
		return v.Logger
	}
	return slog.Default()
}

// Create initialises a new encrypted volume keyed by key (KeySize bytes).
// It fails with ErrAlreadyInitialized if the volume already exists. It does
// not mount it.
func (v *Volume) Create(ctx context.Context, key []byte) error {
	if v.Dir == "" {
		return errors.New("volume: Dir is empty")
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.MkdirAll(v.Dir, 0o711); err != nil {
		return fmt.Errorf("volume create: %w", err)
	}
	if err := os.Mkdir(v.MountDir(), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("volume create: %w", err)
	}
	if err := v.layer().Init(ctx, v.CipherDir(), key, InitOptions{Size: v.Size}); err != nil {
		return fmt.Errorf("volume create %s: %w", v.Dir, err)
	}
	return nil
}

// Mount makes the volume available at MountDir. If it is already mounted
// (typically by a previous run of the daemon) it adopts that mount and
// returns nil without using the key; if a stale mount is left (its FUSE
// server died, or its key left the kernel) it unmounts it and mounts afresh. It returns ErrWrongKey
// if key does not open the volume.
//
// Mount refuses a mount directory that contains files: anything there was
// written in plaintext to the underlying disk while the volume was not
// mounted, which must be investigated, not hidden under a mount.
func (v *Volume) Mount(ctx context.Context, key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	adopted, err := v.Adopt(ctx)
	if err != nil {
		return err
	}
	if adopted {
		return nil
	}
	if err := ensureEmptyDir(v.MountDir()); err != nil {
		return fmt.Errorf("volume mount: %w", err)
	}
	if err := v.layer().Mount(ctx, v.CipherDir(), v.MountDir(), key); err != nil {
		return fmt.Errorf("volume mount %s: %w", v.Dir, err)
	}
	return nil
}

// Adopt is what a restarted daemon calls for each volume it finds: it
// reports true if the volume is mounted and usable (the mount is then used as
// is), and false if it is not mounted. A stale mount (FUSE server gone, key
// gone) is unmounted and reported as false, so the caller mounts again with
// the key.
func (v *Volume) Adopt(ctx context.Context) (bool, error) {
	st, err := v.Status(ctx)
	if err != nil {
		return false, err
	}
	switch st {
	case Mounted:
		v.logger().InfoContext(ctx, "volume adopted", "dir", v.Dir)
		return true, nil
	case Stale:
		v.logger().WarnContext(ctx, "volume mount is stale; detaching", "dir", v.Dir)
		if err := v.layer().Unmount(ctx, v.MountDir()); err != nil {
			return false, fmt.Errorf("volume adopt %s: detach stale mount: %w", v.Dir, err)
		}
		return false, nil
	}
	return false, nil
}

// Unmount unmounts the volume; it is a no-op if it is not mounted. It fails
// while files are open (stop PostgreSQL first).
func (v *Volume) Unmount(ctx context.Context) error {
	st, err := v.Status(ctx)
	if err != nil {
		return err
	}
	if st == NotMounted {
		return nil
	}
	if err := v.layer().Unmount(ctx, v.MountDir()); err != nil {
		return fmt.Errorf("volume unmount %s: %w", v.Dir, err)
	}
	return nil
}

// Status reports whether the volume is mounted, per the kernel.
func (v *Volume) Status(ctx context.Context) (State, error) {
	st, err := v.layer().Status(ctx, v.CipherDir(), v.MountDir())
	if err != nil {
		return st, fmt.Errorf("volume status %s: %w", v.Dir, err)
	}
	return st, nil
}

// Destroy crypto-shreds and deletes an unmounted volume. It first removes
// what makes the ciphertext decryptable (the header with the wrapped DEK and
// the layer's sealed master key) and syncs that, so that a crash halfway
// through deleting a large cipher directory leaves only data nobody can
// read; then it removes Dir.
func (v *Volume) Destroy(ctx context.Context) error {
	st, err := v.Status(ctx)
	if err != nil {
		return err
	}
	if st != NotMounted {
		return fmt.Errorf("volume destroy %s: volume is %s; unmount it first", v.Dir, st)
	}
	if err := os.Remove(v.HeaderPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume destroy: %w", err)
	}
	if s, ok := v.layer().(interface {
		Shred(ctx context.Context, cipherDir string) error
	}); ok {
		if err := s.Shred(ctx, v.CipherDir()); err != nil {
			return fmt.Errorf("volume destroy %s: %w", v.Dir, err)
		}
	}
	if err := fsutil.SyncDir(v.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("volume destroy: %w", err)
	}
	if err := os.RemoveAll(v.Dir); err != nil {
		return fmt.Errorf("volume destroy: %w", err)
	}
	v.logger().InfoContext(ctx, "volume destroyed", "dir", v.Dir)
	return nil
}

// Usage reports the mounted volume's space (statfs of DataDir).
func (v *Volume) Usage(ctx context.Context) (Usage, error) {
	st, err := v.Status(ctx)
	if err != nil {
		return Usage{}, err
	}
	if st != Mounted {
		return Usage{}, fmt.Errorf("volume usage %s: volume is %s", v.Dir, st)
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(v.DataDir(), &sfs); err != nil {
		return Usage{}, fmt.Errorf("volume usage %s: %w", v.Dir, err)
	}
	bs := uint64(sfs.Bsize)
	return Usage{Total: sfs.Blocks * bs, Used: (sfs.Blocks - sfs.Bfree) * bs, Avail: sfs.Bavail * bs}, nil
}

// Attached reports the loop device that still serves the volume's image, if any (fscrypt): its
// filesystem is then live somewhere, if only in another mount namespace. A layer without an
// image has none.
func (v *Volume) Attached() (string, bool) {
	if _, ok := v.layer().(*Fscrypt); !ok {
		return "", false
	}
	return loopOf(imagePath(v.CipherDir()))
}

// Grow makes the volume size bytes large, online if it is mounted. It reports ErrNotSizable
// for a layer without a size of its own and ErrShrink for a smaller size.
func (v *Volume) Grow(ctx context.Context, size int64) error {
	s, ok := v.layer().(Sizer)
	if !ok {
		return fmt.Errorf("volume grow %s: %w", v.Dir, ErrNotSizable)
	}
	if err := s.Grow(ctx, v.CipherDir(), v.MountDir(), size); err != nil {
		return fmt.Errorf("volume grow %s: %w", v.Dir, err)
	}
	return nil
}

// ensureEmptyDir creates dir if needed and fails if it holds anything.
func ensureEmptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("mount directory %s is not empty (found %q): refusing to mount over files written outside the volume", dir, names[0])
	}
	return nil
}
