package volume

import (
	"context"
	"errors"
	"fmt"
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
	// ErrLayerMissing: the FUSE filesystem binary or /dev/fuse is not available.
	ErrLayerMissing = errors.New("volume: encrypting filesystem not available")
)

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

// Layer is an encrypting FUSE filesystem. It is an interface so that the
// filesystem can be swapped (gocryptfs today) without touching callers.
//
// Keys are passed as byte slices that the Layer never retains, copies into a
// string, or passes through a command line, environment variable or file; the
// caller owns the slice and zeroes it when done.
type Layer interface {
	// Name identifies the layer in logs, e.g. "gocryptfs".
	Name() string
	// Init creates a new, empty encrypted volume in cipherDir, which must
	// be empty or absent. It reports ErrAlreadyInitialized otherwise.
	Init(ctx context.Context, cipherDir string, key []byte) error
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
