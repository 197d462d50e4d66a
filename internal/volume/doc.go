// Package volume provides pgflex's encrypted volumes: one per server, holding
// everything PostgreSQL writes (data, WAL, temporary files, logs, stats), so
// that outside the volume there is only ciphertext, the wrapped-DEK header and
// sockets.
//
// A volume is an encrypting filesystem (a Layer) keyed by the server's 256-bit
// data encryption key (DEK): the kernel's own ext4 encryption on a per-volume
// image (Fscrypt), or a FUSE filesystem (Gocryptfs); Choose picks the layer of
// new volumes from what the host offers, and DetectLayer tells an existing
// volume's. The key reaches the kernel through an ioctl argument (a key derived
// from it) or gocryptfs through a pipe, never a command line, an environment
// variable or a file, and the package never converts it to a string (Go
// strings cannot be zeroed); callers zero their key slices after use.
//
// Mounts outlive the daemon that made them. A restarted daemon builds a new
// Volume and calls Adopt (or Mount, which adopts first): a live mount is used
// as it is, a stale one (its FUSE server died, or its key left the kernel) is
// unmounted and mounted again. State always comes from /proc/self/mountinfo
// and the kernel, never from memory.
//
// The Header, kept beside the volume, records the wrapped DEK and the key that
// wrapped it; WriteHeader and ReadHeader store it atomically.
package volume
