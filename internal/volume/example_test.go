package volume_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/pgflex/pgflex/internal/volume"
)

// A server's volume: create it with the DEK, mount it, use it, unmount it.
// After a daemon restart the same calls adopt the live mount. (Not run: it
// needs root, /dev/fuse and gocryptfs; TestVolumeLifecycle runs these steps.)
func ExampleVolume() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pgflex-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// In pgflex the key is the server's DEK, just unwrapped by the key
	// store; it lives only in memory and is zeroed after use.
	key := make([]byte, volume.KeySize)
	if _, err := rand.Read(key); err != nil {
		log.Fatal(err)
	}
	defer clear(key)

	v := &volume.Volume{Dir: filepath.Join(dir, "server1"), Logger: slog.New(slog.DiscardHandler)}
	if err := v.Create(ctx, key); err != nil {
		log.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		log.Fatal(err)
	}
	defer v.Unmount(ctx)

	if err := os.WriteFile(filepath.Join(v.MountDir(), "hello.txt"), []byte("plaintext only in the mount"), 0o600); err != nil {
		log.Fatal(err)
	}
	st, _ := v.Status(ctx)
	fmt.Println("status:", st) // status: Mounted

	// A restarted daemon knows nothing but the directory.
	again := &volume.Volume{Dir: v.Dir, Logger: slog.New(slog.DiscardHandler)}
	adopted, err := again.Adopt(ctx)
	fmt.Println("adopted:", adopted, err) // adopted: true <nil>
}
