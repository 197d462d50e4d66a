// Package volume provides pgflex's encrypted volumes: one per server, holding
// everything PostgreSQL writes (data, WAL, temporary files, logs, stats), so
// that outside the volume there is only ciphertext, the wrapped-DEK header and
// sockets.
//
// A volume is an encrypting FUSE filesystem (a Layer; gocryptfs by default)
// keyed by the server's 256-bit data encryption key (DEK). The key travels to
// the filesystem through a pipe, never on a command line, in an environment
// variable or in a file, and the package never converts it to a string (Go
// strings cannot be zeroed); callers zero their key slices after use.
//
// Mounts outlive the daemon that made them. A restarted daemon builds a new
// Volume and calls Adopt (or Mount, which adopts first): a live mount is used
// as it is, a stale one (its FUSE server died) is detached and mounted again.
// State always comes from /proc/self/mountinfo, never from memory.
//
// The Header, kept beside the volume, records the wrapped DEK and the key that
// wrapped it; WriteHeader and ReadHeader store it atomically.
package volume
