package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// KeySize is the size in bytes of a volume key: the server's 256-bit DEK.
const KeySize = 32

// Errors a Layer reports, for callers to test with errors.Is.
var (
	// ErrWrongKey: the key does not open this volume.
	ErrWrongKey = errors.New("volume: wrong key")
	// ErrKeySize: the key is not KeySize bytes.
	ErrKeySize = errors.New("volume: key must be 32 bytes")
	// ErrNotInitialized: the cipher directory holds no volume.
	ErrNotInitialized = errors.New("volume: cipher directory is not initialised")
	// ErrAlreadyInitialized: Create was asked to overwrite an existing volume.
	ErrAlreadyInitialized = errors.New("volume: cipher directory already holds a volume")
	// ErrForeignMount: something other than this volume is mounted on its mount directory.
	ErrForeignMount = errors.New("volume: mount directory holds another mount")
	// ErrLayerMissing: the layer's filesystem, binary or device is not available on this host.
	ErrLayerMissing = errors.New("volume: encrypting filesystem not available")
	// ErrNotSizable: the layer has no size of its own (it shares the host's filesystem).
	ErrNotSizable = errors.New("volume: this layer has no size of its own")
	// ErrRemountToGrow: the volume's image has grown but its mounted filesystem could not
	// follow online; it takes its new size at the next Mount.
	ErrRemountToGrow = errors.New("volume: the volume takes its new size when it is mounted again")
	// ErrShrink: a volume's size can only grow.
	ErrShrink = errors.New("volume: a volume cannot shrink")
)

// InitOptions are what a new volume is made with.
type InitOptions struct {
	// Size is the filesystem's size in bytes for a layer that has one (fscrypt's image); a
	// layer on the host's filesystem (gocryptfs) ignores it.
	Size int64
}

// Usage is a mounted volume's space, in bytes, as the filesystem reports it (statfs): for a
// layer without a size of its own, the host filesystem's.
type Usage struct {
	Total, Used, Avail uint64
}

// Percent is Used as a percentage of Total.
func (u Usage) Percent() float64 {
	if u.Total == 0 {
		return 0
	}
	return 100 * float64(u.Used) / float64(u.Total)
}

// Sizer is a Layer whose volumes have a size of their own, which can grow.
type Sizer interface {
	// Grow makes the volume in cipherDir size bytes large; if it is mounted on mountDir the
	// filesystem grows online, or, where the host does not allow that, reports
	// ErrRemountToGrow and grows at the next Mount. It reports ErrShrink for a smaller size.
	Grow(ctx context.Context, cipherDir, mountDir string, size int64) error
}

// State is what the kernel says about a mount directory.
type State int

const (
	// NotMounted: nothing is mounted on the directory.
	NotMounted State = iota
	// Mounted: the volume is mounted and its FUSE daemon answers.
	Mounted
	// Stale: the mount is still listed but its FUSE daemon is gone
	// (ENOTCONN); it must be unmounted before it can be mounted again.
	Stale
)

func (s State) String() string {
	switch s {
	case NotMounted:
		return "NotMounted"
	case Mounted:
		return "Mounted"
	case Stale:
		return "Stale"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Layer is an encrypting filesystem: a FUSE filesystem (gocryptfs) or the kernel's own
// filesystem encryption (fscrypt). It is an interface so that each server keeps the layer it
// was made with while new servers get another.
//
// Keys are passed as byte slices that the Layer never retains, copies into a
// string, or passes through a command line, environment variable or file; the
// caller owns the slice and zeroes it when done.
type Layer interface {
	// Name identifies the layer in logs, e.g. "gocryptfs".
	Name() string
	// Init creates a new, empty encrypted volume in cipherDir, which must
	// be empty or absent. It reports ErrAlreadyInitialized otherwise.
	Init(ctx context.Context, cipherDir string, key []byte, opts InitOptions) error
	// DataDir is where the plaintext lives under a mount directory: the mount itself, or a
	// directory in it (fscrypt encrypts a directory, not a filesystem's root).
	DataDir(mountDir string) string
	// Mount mounts the volume in cipherDir on mountDir and returns once the
	// mount is usable. It returns ErrWrongKey when key does not open it.
	// The FUSE daemon outlives the caller: a restarted caller adopts it
	// through Status.
	Mount(ctx context.Context, cipherDir, mountDir string, key []byte) error
	// Unmount unmounts mountDir. It fails (EBUSY) while files are open
	// unless the mount is Stale, in which case it detaches it.
	Unmount(ctx context.Context, mountDir string) error
	// Status reports the state of mountDir from /proc/self/mountinfo, and
	// ErrForeignMount if what is mounted there is not cipherDir under this
	// layer.
	Status(ctx context.Context, cipherDir, mountDir string) (State, error)
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w (got %d)", ErrKeySize, len(key))
	}
	return nil
}

// Layer names, as LayerByName and DetectLayer use them.
const (
	LayerFscrypt   = "fscrypt"
	LayerGocryptfs = "gocryptfs"
)

// LayerByName returns the layer called name.
func LayerByName(name string, log *slog.Logger) (Layer, error) {
	switch name {
	case LayerFscrypt:
		return &Fscrypt{Logger: log}, nil
	case LayerGocryptfs:
		return &Gocryptfs{Logger: log}, nil
	}
	return nil, fmt.Errorf("volume: no layer %q (%s or %s)", name, LayerFscrypt, LayerGocryptfs)
}

// DetectLayer names the layer of the volume in cipherDir from what its files are, or "" if it
// holds no volume: a volume keeps the layer it was made with, whatever new volumes get.
func DetectLayer(cipherDir string) string {
	for _, c := range []struct{ file, layer string }{{gocryptfsConf, LayerGocryptfs}, {fscryptImage, LayerFscrypt}} {
		if _, err := os.Lstat(filepath.Join(cipherDir, c.file)); err == nil {
			return c.layer
		}
	}
	return ""
}
