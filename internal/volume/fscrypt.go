package volume

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/fsutil"
)

// Fscrypt is the kernel's own filesystem encryption as a Layer: each volume is an ext4
// filesystem with the `encrypt` feature in an image file of its own (cipherDir/volume.img),
// attached to a loop device with direct I/O and mounted on the mount directory. Its plaintext
// lives in one directory, DataDir = mountDir/data, under a v2 fscrypt policy (AES-256-XTS for
// contents, AES-256-CTS for names); the filesystem's root (which ext4 cannot encrypt: it holds
// lost+found) holds nothing else and is writable by root only.
//
// Why: a FUSE layer costs a round trip to a user-space server for every 8 KiB write PostgreSQL
// makes; here encryption happens in the kernel, in the page cache's writeback and read paths,
// with no process in between (bench/README.md has the numbers). The image gives the volume a
// size of its own: storageSizeGB is the filesystem's size, and it grows online (Grow).
//
// Key handling. The policy's master key is derived from the volume key (the server's DEK) with
// HKDF-SHA256, so that the DEK itself never reaches the kernel, and it is added to the
// filesystem's own keyring with FS_IOC_ADD_ENCRYPTION_KEY: through an ioctl argument, never a
// command line, environment variable or file. The key lives in the filesystem's keyring (not a
// process's), so it outlives the daemon that added it: a restarted daemon adopts the mount.
// Unmount removes it with FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS, which also wipes the kernel's
// per-file keys and drops the plaintext pages from the page cache (freed, not zeroed, unless
// the kernel runs with init_on_free=1), before the filesystem is unmounted; the loop device is made
// with LO_FLAGS_AUTOCLEAR and goes with the last unmount. Crypto-shredding is as for every
// layer: deleting the wrapped DEK (the header) leaves no way to derive the key.
//
// What it does not give: XTS is not authenticated (gocryptfs's AES-GCM is), so someone who can
// write the image could corrupt, though not read, data undetected; file sizes and the
// directory tree's shape are visible in the image, as with gocryptfs.
//
// Durability: a loop device with direct I/O passes the filesystem's flushes (FUA/PREFLUSH) on
// as fsync(2) of the image file, so what PostgreSQL has fsynced is on the host disk.
type Fscrypt struct {
	// Mkfs is the mkfs.ext4 executable; "" means "mkfs.ext4" from PATH.
	Mkfs string
	// Logger receives the layer's events; nil means slog.Default().
	Logger *slog.Logger
}

var (
	_ Layer = (*Fscrypt)(nil)
	_ Sizer = (*Fscrypt)(nil)
)

const (
	fscryptImage = "volume.img"
	fscryptData  = "data"
	// DefaultFscryptSize is the size of a volume made without one: Azure's smallest disk.
	DefaultFscryptSize = 32 << 30
	// MinFscryptSize is the smallest volume: room for ext4's journal and an empty cluster.
	MinFscryptSize = 64 << 20
	// fscryptMasterKeySize: v2 policies take up to 64-byte master keys; AES-256-XTS uses 64
	// bytes of key per file, derived by the kernel from this one.
	fscryptMasterKeySize = 64
	// fscryptKDFInfo binds the derived key to its use, so that it cannot equal any other key
	// derived from the DEK.
	fscryptKDFInfo = "pgflex volume fscrypt v2 master key"
	// ext4IOCResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): online growth to a block
	// count (what resize2fs does for a mounted filesystem).
	ext4IOCResizeFS = 0x40086610
	// fscryptMountFlags: nothing on a volume is a device or a set-uid program.
	fscryptMountFlags = unix.MS_NOSUID | unix.MS_NODEV
	// fscryptMountOptions: a filesystem error stops writes rather than spreading; inode tables
	// are never zeroed in the background (the sparse image reads as zeros).
	fscryptMountOptions = "errors=remount-ro,noinit_itable"
)

// Name implements Layer.
func (f *Fscrypt) Name() string { return "fscrypt" }

// DataDir implements Layer.
func (f *Fscrypt) DataDir(mountDir string) string { return filepath.Join(mountDir, fscryptData) }

func (f *Fscrypt) logger() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func (f *Fscrypt) mkfs() string {
	if f.Mkfs != "" {
		return f.Mkfs
	}
	return "mkfs.ext4"
}

func imagePath(cipherDir string) string { return filepath.Join(cipherDir, fscryptImage) }

// Available reports whether this host offers what the layer needs: ext4 with encryption in
// the kernel, loop devices and mkfs.ext4. Probe proves it end to end.
func (f *Fscrypt) Available() error {
	if _, err := os.Stat("/sys/fs/ext4/features/encryption"); err != nil {
		return fmt.Errorf("%w: the kernel's ext4 has no encryption (CONFIG_FS_ENCRYPTION): %v", ErrLayerMissing, err)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("%w: no loop devices (/dev/loop-control): %v", ErrLayerMissing, err)
	}
	if _, err := exec.LookPath(f.mkfs()); err != nil {
		return fmt.Errorf("%w: %s (e2fsprogs): %v", ErrLayerMissing, f.mkfs(), err)
	}
	return nil
}

// Probe makes, mounts, writes and unmounts a small volume under scratch with a throwaway key:
// what `auto` layer selection trusts, since a kernel can list the feature and still refuse a
// v2 policy (an old kernel, a missing cipher, a container without the capability).
func (f *Fscrypt) Probe(ctx context.Context, scratch string) error {
	if err := f.Available(); err != nil {
		return err
	}
	// A fixed name, so that what a probe killed halfway left is cleared by the next one.
	dir := filepath.Join(scratch, ".fscrypt-probe")
	if err := f.unmountUnder(ctx, dir); err != nil {
		return fmt.Errorf("fscrypt probe: clear an earlier probe: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("fscrypt probe: %w", err)
	}
	defer func() {
		if err := f.unmountUnder(context.WithoutCancel(ctx), dir); err == nil {
			os.RemoveAll(dir)
		}
	}()
	key := make([]byte, KeySize)
	// A fixed throwaway key: the probe's volume holds nothing and is deleted.
	v := &Volume{Dir: dir, Layer: f, Size: MinFscryptSize, Logger: slog.New(slog.DiscardHandler)}
	if err := v.Create(ctx, key); err != nil {
		return fmt.Errorf("fscrypt probe: %w", err)
	}
	if err := v.Mount(ctx, key); err != nil {
		return fmt.Errorf("fscrypt probe: %w", err)
	}
	werr := os.WriteFile(filepath.Join(v.DataDir(), "probe"), []byte("probe"), 0o600)
	uerr := v.Unmount(ctx)
	if err := errors.Join(werr, uerr); err != nil {
		return fmt.Errorf("fscrypt probe: %w", err)
	}
	return nil
}

// Init implements Layer: a sparse image of opts.Size bytes (DefaultFscryptSize if 0) with an
// empty ext4 filesystem whose data directory carries the policy of key.
func (f *Fscrypt) Init(ctx context.Context, cipherDir string, key []byte, opts InitOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	size := opts.Size
	if size == 0 {
		size = DefaultFscryptSize
	}
	if size < MinFscryptSize {
		return fmt.Errorf("fscrypt init: a volume of %d bytes is too small (at least %d)", size, MinFscryptSize)
	}
	if err := os.MkdirAll(cipherDir, 0o700); err != nil {
		return fmt.Errorf("fscrypt init: create cipher dir: %w", err)
	}
	if err := f.clearInit(ctx, cipherDir); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	entries, err := os.ReadDir(cipherDir)
	if err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("fscrypt init %s: %w", cipherDir, ErrAlreadyInitialized)
	}
	img := imagePath(cipherDir)
	// Made under a temporary name and renamed when complete, so that a crash halfway leaves no
	// image that looks like a volume.
	tmp := img + ".new"
	file, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	defer os.Remove(tmp)
	terr := file.Truncate(size)
	cerr := file.Close()
	if err := errors.Join(terr, cerr); err != nil {
		return fmt.Errorf("fscrypt init: size the image: %w", err)
	}
	// -b 4096: the loop device's block size (mkfs would pick 1 KiB for a small image); -m 0: no
	// blocks reserved for root, whom nothing on the volume runs as; lazy init: the
	// sparse image reads as zeros, so neither inode tables nor the journal need writing.
	var out limitedBuffer
	out.buf, out.max = &bytes.Buffer{}, 8<<10
	cmd := exec.CommandContext(ctx, f.mkfs(), "-q", "-F", "-t", "ext4", "-O", "encrypt", "-b", "4096", "-m", "0", "-L", "pgflex",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", tmp)
	cmd.Env = layerEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fscrypt init: mkfs.ext4: %w: %s", err, strings.TrimSpace(out.buf.String()))
	}
	if err := f.initData(ctx, tmp, cipherDir, key); err != nil {
		return err
	}
	if err := os.Rename(tmp, img); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	if err := fsutil.SyncDir(cipherDir); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	f.logger().InfoContext(ctx, "volume initialised", "layer", f.Name(), "cipher_dir", cipherDir, "size", size)
	return nil
}

// clearInit removes what an Init that did not finish left in cipherDir (the daemon killed
// halfway): its scratch mounts, unmounted key first, and its unfinished image. A finished
// volume (volume.img) is left alone.
func (f *Fscrypt) clearInit(ctx context.Context, cipherDir string) error {
	if err := f.unmountUnder(ctx, cipherDir); err != nil {
		return err
	}
	for _, pattern := range []string{"init-*", fscryptImage + ".new"} {
		left, _ := filepath.Glob(filepath.Join(cipherDir, pattern))
		for _, p := range left {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove what an unfinished init left: %w", err)
			}
		}
	}
	return nil
}

// unmountUnder unmounts every fscrypt filesystem mounted under dir, its key first.
func (f *Fscrypt) unmountUnder(ctx context.Context, dir string) error {
	mi, err := os.Open(mountInfoPath)
	if err != nil {
		return err
	}
	entries, err := parseMountInfo(mi)
	mi.Close()
	if err != nil {
		return err
	}
	canon, err := canonicalMountPoint(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(entries) - 1; i >= 0; i-- { // the newest (deepest) first
		e := entries[i]
		if !strings.HasPrefix(e.MountPoint, canon+"/") || e.FSType != "ext4" || !strings.HasPrefix(e.Source, "/dev/loop") {
			continue
		}
		if err := f.Unmount(ctx, e.MountPoint); err != nil {
			return err
		}
	}
	return nil
}

// Shred implements the optional hook Volume.Destroy calls before removing the volume: nothing of
// an unfinished Init may stay mounted (the key is derived from the DEK, whose header Destroy has
// already removed: that is the crypto-shredding).
func (f *Fscrypt) Shred(ctx context.Context, cipherDir string) error {
	return f.clearInit(ctx, cipherDir)
}

// initData mounts a new image on a scratch directory and makes its data directory under the
// key's policy.
func (f *Fscrypt) initData(ctx context.Context, img, cipherDir string, key []byte) (err error) {
	mnt, err := os.MkdirTemp(cipherDir, "init-")
	if err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	defer os.Remove(mnt)
	if err := mountImage(ctx, img, mnt); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	defer func() {
		if uerr := unmountImage(ctx, f.logger(), mnt); uerr != nil {
			err = errors.Join(err, fmt.Errorf("fscrypt init: %w", uerr))
		}
	}()
	id, err := addKey(mnt, key)
	if err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	defer func() {
		if rerr := removeKey(mnt, id); rerr != nil {
			err = errors.Join(err, fmt.Errorf("fscrypt init: %w", rerr))
		}
	}()
	// Traverse-only, as gocryptfs's mount root: each server's account reaches its own data
	// directory below, nobody lists or writes the root.
	if err := os.Chmod(mnt, 0o711); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	data := filepath.Join(mnt, fscryptData)
	if err := os.Mkdir(data, 0o711); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	if err := setPolicy(data, id); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	if err := fsutil.SyncDir(mnt); err != nil {
		return fmt.Errorf("fscrypt init: %w", err)
	}
	return nil
}

// Mount implements Layer. It refuses an image that a loop device already serves (a mount left
// in another mount namespace): two filesystems over one image would corrupt it.
func (f *Fscrypt) Mount(ctx context.Context, cipherDir, mountDir string, key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	img := imagePath(cipherDir)
	if _, err := os.Stat(img); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fscrypt mount %s: %w", cipherDir, ErrNotInitialized)
	}
	if dev, held := loopOf(img); held {
		// The filesystem is still mounted in some mount namespace: e2fsck and resize2fs must
		// not touch it. A pending growth waits for a mount after the last holder is gone.
		f.logger().WarnContext(ctx, "volume's filesystem is held elsewhere; sharing it, growth (if any) waits", "image", img, "device", dev)
	} else if err := f.growOffline(ctx, img); err != nil {
		return fmt.Errorf("fscrypt mount: %w", err)
	}
	if err := mountImage(ctx, img, mountDir); err != nil {
		return fmt.Errorf("fscrypt mount: %w", err)
	}
	if err := f.unlock(ctx, mountDir, key); err != nil {
		if uerr := unmountImage(ctx, f.logger(), mountDir); uerr != nil {
			err = errors.Join(err, fmt.Errorf("fscrypt mount: undo: %w", uerr))
		}
		return err
	}
	f.logger().InfoContext(ctx, "volume mounted", "layer", f.Name(), "cipher_dir", cipherDir, "mount_dir", mountDir)
	return nil
}

// unlock adds key to a freshly mounted volume, refusing a key that is not its policy's.
func (f *Fscrypt) unlock(ctx context.Context, mountDir string, key []byte) error {
	want, err := policyKey(filepath.Join(mountDir, fscryptData))
	if err != nil {
		return fmt.Errorf("fscrypt mount: %w", err)
	}
	id, err := addKey(mountDir, key)
	if err != nil {
		return fmt.Errorf("fscrypt mount: %w", err)
	}
	if id != want {
		// The kernel names a key by a hash of it: another name is another key.
		if err := removeKey(mountDir, id); err != nil {
			return fmt.Errorf("fscrypt mount: %w; remove it: %w", ErrWrongKey, err)
		}
		return fmt.Errorf("fscrypt mount: %w", ErrWrongKey)
	}
	return nil
}

// growOffline grows the unmounted filesystem in img to the image's size, if a Grow made the
// image larger: e2fsck first (resize2fs insists on a checked filesystem), then resize2fs.
func (f *Fscrypt) growOffline(ctx context.Context, img string) error {
	fi, err := os.Stat(img)
	if err != nil {
		return err
	}
	blocks, blockSize, err := ext4Blocks(img)
	if err != nil {
		return err
	}
	if uint64(fi.Size())/blockSize <= blocks {
		return nil
	}
	for _, c := range []struct {
		name string
		args []string
		ok   func(code int) bool
	}{
		// e2fsck -p exits 1 when it fixed something harmless (the free-block counts a clean
		// unmount leaves for it to recompute).
		{"e2fsck", []string{"-f", "-p", img}, func(code int) bool { return code == 0 || code == 1 }},
		{"resize2fs", []string{img}, func(code int) bool { return code == 0 }},
	} {
		var out limitedBuffer
		out.buf, out.max = &bytes.Buffer{}, 8<<10
		cmd := exec.CommandContext(ctx, c.name, c.args...)
		cmd.Env = layerEnv()
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && c.ok(exit.ExitCode())) {
			return fmt.Errorf("grow %s: %s: %w: %s", img, c.name, err, strings.TrimSpace(out.buf.String()))
		}
		if err != nil {
			// e2fsck fixed something: say what (a file it moved to lost+found is outside
			// PostgreSQL's data directory).
			f.logger().WarnContext(ctx, "e2fsck repaired the volume's filesystem before growing it", "image", img,
				"output", strings.TrimSpace(out.buf.String()))
		}
	}
	f.logger().InfoContext(ctx, "volume grown", "image", img, "size", fi.Size(), "online", false)
	return nil
}

// Unmount implements Layer: the key goes first (with it the plaintext in the page cache), then
// the filesystem, and with it the loop device. It fails with EBUSY while files are open.
func (f *Fscrypt) Unmount(ctx context.Context, mountDir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := f.RemoveKey(mountDir)
	// Processes just killed (a server's, at its stop) may hold files for a moment longer:
	// retry, as the kernel asks, before giving up.
	for retry := 0; errors.Is(err, syscall.EBUSY) && retry < 50; retry++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("fscrypt unmount %s: %w", mountDir, err)
		case <-time.After(100 * time.Millisecond):
		}
		err = f.RemoveKey(mountDir)
	}
	// No data directory, or one without a policy yet: an Init that stopped halfway; no key.
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENODATA) {
		return fmt.Errorf("fscrypt unmount %s: %w", mountDir, err)
	}
	return unmountImage(ctx, f.logger(), mountDir)
}

// waitLoopCleared waits a little for loop device dev, which served the file id, to let it go:
// the kernel clears an autoclear device after its last user closes it, not within umount(2).
// A device still bound after that is held by a mount in another namespace, which Mount shares.
func waitLoopCleared(ctx context.Context, dev string, id fileID) {
	for i := 0; i < 100; i++ {
		if got, err := loopID(dev); err != nil || got != id {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RemoveKey removes the key of the volume mounted on mountDir from its filesystem, for every
// user, evicting the plaintext it unlocked; the volume stays mounted, Stale. Unmount does this
// first; alone it is what a key lost behind the daemon's back looks like.
func (f *Fscrypt) RemoveKey(mountDir string) error {
	id, err := policyKey(filepath.Join(mountDir, fscryptData))
	if err != nil {
		return err
	}
	return removeKey(mountDir, id)
}

// Status implements Layer: Mounted when the image is mounted on mountDir with its key present,
// Stale when it is mounted without its key (removed by someone else, or a removal that found
// files busy): Adopt then unmounts it and Mount adds the key again.
func (f *Fscrypt) Status(ctx context.Context, cipherDir, mountDir string) (State, error) {
	e, ok, err := mountAt(ctx, mountDir)
	if err != nil {
		return NotMounted, err
	}
	if !ok {
		return NotMounted, nil
	}
	want, err := idOf(imagePath(cipherDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Mounted, fmt.Errorf("fscrypt status: %w", err)
	}
	if e.FSType != "ext4" || err != nil {
		return Mounted, fmt.Errorf("%w: %s from %s on %s", ErrForeignMount, e.FSType, e.Source, e.MountPoint)
	}
	if got, err := loopID(e.Source); err != nil || got != want {
		return Mounted, fmt.Errorf("%w: %s from %s on %s", ErrForeignMount, e.FSType, e.Source, e.MountPoint)
	}
	id, err := policyKey(filepath.Join(mountDir, fscryptData))
	if err != nil {
		return Mounted, fmt.Errorf("fscrypt status %s: %w", mountDir, err)
	}
	present, err := keyPresent(mountDir, id)
	if err != nil {
		return Mounted, fmt.Errorf("fscrypt status %s: %w", mountDir, err)
	}
	if !present {
		return Stale, nil
	}
	return Mounted, nil
}

// Grow implements Sizer: the image grows (sparse), then, if mounted, the loop device learns
// its new capacity and ext4 grows online. A crash in between is finished by the next Mount.
func (f *Fscrypt) Grow(ctx context.Context, cipherDir, mountDir string, size int64) error {
	img := imagePath(cipherDir)
	fi, err := os.Stat(img)
	if err != nil {
		return fmt.Errorf("fscrypt grow: %w", err)
	}
	if size < fi.Size() {
		return fmt.Errorf("fscrypt grow to %d bytes from %d: %w", size, fi.Size(), ErrShrink)
	}
	if size > fi.Size() {
		file, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("fscrypt grow: %w", err)
		}
		terr := file.Truncate(size)
		serr := file.Sync()
		cerr := file.Close()
		if err := errors.Join(terr, serr, cerr); err != nil {
			return fmt.Errorf("fscrypt grow: %w", err)
		}
	}
	st, err := f.Status(ctx, cipherDir, mountDir)
	if err != nil {
		return err
	}
	if st == NotMounted {
		return nil
	}
	e, _, err := lookupMount(mountDir)
	if err != nil {
		return err
	}
	if err := setLoopCapacity(e.Source); err != nil {
		return fmt.Errorf("fscrypt grow: %w", err)
	}
	if err := resizeTo(ctx, f.logger(), mountDir, e.Source, size); err != nil {
		if errors.Is(err, unix.EPERM) {
			// Online growth takes CAP_SYS_RESOURCE, which some hosts (containers, this
			// project's VMs) withhold even from root: the next Mount finishes it offline.
			return fmt.Errorf("fscrypt grow: online growth refused (the daemon lacks CAP_SYS_RESOURCE): %w", ErrRemountToGrow)
		}
		return fmt.Errorf("fscrypt grow: %w", err)
	}
	return nil
}

// masterKey derives the policy's master key from the volume key. The caller clears it.
func masterKey(key []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, key, nil, fscryptKDFInfo, fscryptMasterKeySize)
}

// addKey adds the master key derived from key to the keyring of the filesystem mounted on
// mnt and returns the identifier the kernel computed for it.
func addKey(mnt string, key []byte) ([unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte, error) {
	var id [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte
	mk, err := masterKey(key)
	if err != nil {
		return id, err
	}
	defer clear(mk)
	hdr := int(unsafe.Sizeof(unix.FscryptAddKeyArg{}))
	buf := make([]byte, hdr+len(mk))
	defer clear(buf)
	arg := (*unix.FscryptAddKeyArg)(unsafe.Pointer(&buf[0]))
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	arg.Raw_size = uint32(len(mk))
	copy(buf[hdr:], mk)
	if err := ioctlPath(mnt, unix.FS_IOC_ADD_ENCRYPTION_KEY, unsafe.Pointer(&buf[0])); err != nil {
		return id, fmt.Errorf("add the volume's key: %w", err)
	}
	copy(id[:], arg.Key_spec.U[:])
	return id, nil
}

// removeKey removes key id from the filesystem on mnt for every user, evicting the inodes and
// plaintext pages it unlocked. Files still open keep it "incompletely removed": that is EBUSY.
func removeKey(mnt string, id [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte) error {
	var arg unix.FscryptRemoveKeyArg
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	copy(arg.Key_spec.U[:], id[:])
	err := ioctlPath(mnt, unix.FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS, unsafe.Pointer(&arg))
	if errors.Is(err, unix.ENOKEY) {
		return nil // not there: already removed
	}
	if err != nil {
		return fmt.Errorf("remove the volume's key: %w", err)
	}
	if arg.Removal_status_flags&unix.FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY != 0 {
		return fmt.Errorf("remove the volume's key: files are still open (in use by %s): %w", holders(mnt), syscall.EBUSY)
	}
	return nil
}

// keyPresent reports whether key id is in the keyring of the filesystem on mnt.
func keyPresent(mnt string, id [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte) (bool, error) {
	var arg unix.FscryptGetKeyStatusArg
	arg.Key_spec.Type = unix.FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER
	copy(arg.Key_spec.U[:], id[:])
	if err := ioctlPath(mnt, unix.FS_IOC_GET_ENCRYPTION_KEY_STATUS, unsafe.Pointer(&arg)); err != nil {
		return false, fmt.Errorf("the volume's key status: %w", err)
	}
	return arg.Status == unix.FSCRYPT_KEY_STATUS_PRESENT, nil
}

// setPolicy puts the empty directory dir under a v2 policy of key id.
func setPolicy(dir string, id [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte) error {
	p := unix.FscryptPolicyV2{Version: unix.FSCRYPT_POLICY_V2, Contents_encryption_mode: unix.FSCRYPT_MODE_AES_256_XTS,
		Filenames_encryption_mode: unix.FSCRYPT_MODE_AES_256_CTS, Flags: unix.FSCRYPT_POLICY_FLAGS_PAD_32, Master_key_identifier: id}
	if err := ioctlPath(dir, unix.FS_IOC_SET_ENCRYPTION_POLICY, unsafe.Pointer(&p)); err != nil {
		return fmt.Errorf("set the encryption policy of %s: %w", dir, err)
	}
	return nil
}

// policyKey returns the key identifier of dir's v2 policy; a directory without one is an error.
func policyKey(dir string) ([unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte, error) {
	var id [unix.FSCRYPT_KEY_IDENTIFIER_SIZE]byte
	var arg unix.FscryptGetPolicyExArg
	arg.Size = uint64(len(arg.Policy))
	if err := ioctlPath(dir, unix.FS_IOC_GET_ENCRYPTION_POLICY_EX, unsafe.Pointer(&arg)); err != nil {
		if errors.Is(err, unix.ENODATA) {
			return id, fmt.Errorf("%s has no encryption policy: %w", dir, err)
		}
		return id, fmt.Errorf("the encryption policy of %s: %w", dir, err)
	}
	p := (*unix.FscryptPolicyV2)(unsafe.Pointer(&arg.Policy[0]))
	if p.Version != unix.FSCRYPT_POLICY_V2 {
		return id, fmt.Errorf("%s has an encryption policy of version %d, not 2", dir, p.Version)
	}
	return p.Master_key_identifier, nil
}

// ioctlPath runs an ioctl on a file descriptor of path (a directory: O_RDONLY|O_DIRECTORY
// without following a link planted in its place).
func ioctlPath(path string, req uint, arg unsafe.Pointer) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// mountImage attaches img to a free loop device (direct I/O, cleared with its last user) and
// mounts its ext4 filesystem on mnt. An image a loop device already serves (its filesystem
// still mounted in a mount namespace some process made while it was mounted here) is mounted
// from that device: the kernel then shares the one filesystem, where a second device would
// make two filesystems over one image and corrupt it.
func mountImage(ctx context.Context, img, mnt string) error {
	abs, err := filepath.Abs(img)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	if dev, ok := loopOf(abs); ok {
		err := unix.Mount(dev, mnt, "ext4", fscryptMountFlags, fscryptMountOptions)
		if err == nil {
			return nil
		}
		if _, still := loopOf(abs); still {
			return fmt.Errorf("mount %s (%s, attached before) on %s: %w", dev, abs, mnt, err)
		}
		// The device was being cleared after its last unmount: attach afresh.
	}
	loop, dev, err := attachLoop(ctx, abs)
	if err != nil {
		return err
	}
	// The mount holds the device; closing this descriptor leaves it to the mount, and, should
	// the mount fail, clears it (LO_FLAGS_AUTOCLEAR).
	defer loop.Close()
	if err := unix.Mount(dev, mnt, "ext4", fscryptMountFlags, fscryptMountOptions); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, abs, mnt, err)
	}
	return nil
}

// attachLoop binds img to a free loop device with direct I/O and autoclear.
func attachLoop(ctx context.Context, img string) (*os.File, string, error) {
	backing, err := os.OpenFile(img, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrLayerMissing, err)
	}
	defer ctl.Close()
	// Another process may take the free device between asking and binding: ask again.
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, "", fmt.Errorf("find a free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		loop, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, "", err
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: 4096}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], img)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, loop.Fd(), unix.LOOP_CONFIGURE, uintptr(unsafe.Pointer(&cfg)))
		if errno == 0 {
			return loop, dev, nil
		}
		loop.Close()
		if errno != unix.EBUSY || try >= 20 {
			return nil, "", fmt.Errorf("attach %s to %s: %w", img, dev, errno)
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// fileID identifies a file by device and inode: sysfs names a loop device's backing file by
// path, which a symlink in the path or a file deleted and made again would make ambiguous.
type fileID struct{ dev, ino uint64 }

func idOf(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// loopID is the file a loop device serves (LOOP_GET_STATUS64), or an error if dev is not a
// bound loop device.
func loopID(dev string) (fileID, error) {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "loop") || filepath.Dir(dev) != "/dev" {
		return fileID{}, fmt.Errorf("%s is not a loop device", dev)
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fileID{}, &fs.PathError{Op: "open", Path: dev, Err: err}
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		return fileID{}, fmt.Errorf("%s: %w", dev, err)
	}
	return fileID{info.Device, info.Inode}, nil
}

// loopOf finds the loop device serving img, if any.
func loopOf(img string) (string, bool) {
	id, err := idOf(img)
	if err != nil {
		return "", false
	}
	// A bound loop device has a loop/ directory in sysfs.
	bound, _ := filepath.Glob("/sys/block/loop*/loop")
	for _, p := range bound {
		dev := "/dev/" + filepath.Base(filepath.Dir(p))
		if got, err := loopID(dev); err == nil && got == id {
			return dev, true
		}
	}
	return "", false
}

// setLoopCapacity makes a loop device take its image's current size.
func setLoopCapacity(dev string) error {
	if _, err := loopID(dev); err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("set the capacity of %s: %w", dev, err)
	}
	return nil
}

// resizeTo grows the ext4 filesystem on dev, mounted on mnt, online to size bytes, if it is smaller.
func resizeTo(ctx context.Context, log *slog.Logger, mnt, dev string, size int64) error {
	// The superblock's count (statfs's leaves out ext4's overhead) is what EXT4_IOC_RESIZE_FS
	// compares with.
	cur, blockSize, err := ext4Blocks(dev)
	if err != nil {
		return err
	}
	blocks := uint64(size) / blockSize
	if blocks <= cur {
		return nil
	}
	if err := ioctlPath(mnt, ext4IOCResizeFS, unsafe.Pointer(&blocks)); err != nil {
		return fmt.Errorf("grow the filesystem on %s to %d blocks: %w", mnt, blocks, err)
	}
	log.InfoContext(ctx, "volume grown", "mount_dir", mnt, "blocks", blocks, "block_size", blockSize, "online", true)
	return nil
}

// ext4Blocks reads the block count and block size from the superblock of the ext4 filesystem
// in path (an image or its loop device; statfs reports blocks net of metadata). Through the
// device's page cache it is what the mounted filesystem last wrote.
func ext4Blocks(path string) (count, size uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, 0, fmt.Errorf("read the superblock of %s: %w", path, err)
	}
	le32 := func(off int) uint64 {
		return uint64(sb[off]) | uint64(sb[off+1])<<8 | uint64(sb[off+2])<<16 | uint64(sb[off+3])<<24
	}
	if sb[0x38] != 0x53 || sb[0x39] != 0xEF {
		return 0, 0, fmt.Errorf("%s holds no ext4 superblock", path)
	}
	// s_blocks_count_lo at 0x4, s_log_block_size at 0x18 (1 KiB to 64 KiB blocks),
	// s_feature_incompat at 0x60, s_blocks_count_hi at 0x150 (only with INCOMPAT_64BIT).
	logSize := le32(0x18)
	if logSize > 6 {
		return 0, 0, fmt.Errorf("%s: the superblock's block size (log %d) is not ext4's", path, logSize)
	}
	count = le32(0x4)
	if le32(0x60)&0x80 != 0 {
		count |= le32(0x150) << 32
	}
	return count, 1024 << logSize, nil
}

// unmountImage unmounts the filesystem on mnt and waits for its loop device to clear itself.
func unmountImage(ctx context.Context, log *slog.Logger, mnt string) error {
	e, ok, err := lookupMount(mnt)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	id, idErr := loopID(e.Source)
	if err := unmount(ctx, log, mnt); err != nil {
		return err
	}
	if idErr == nil {
		waitLoopCleared(ctx, e.Source, id)
	}
	return nil
}
