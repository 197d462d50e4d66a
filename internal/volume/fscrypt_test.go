package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/testkit"
)

// requireFscrypt skips the test when this host cannot make fscrypt volumes (fails instead
// where every end-to-end test must run: see testkit.Require).
func requireFscrypt(t *testing.T) {
	t.Helper()
	testkit.Require(t, testkit.Root, testkit.Fscrypt)
}

// newFscryptVolume returns a small fscrypt volume in a fresh temporary directory, unmounted
// (and its loop device gone) when the test ends.
func newFscryptVolume(t *testing.T, size int64) *Volume {
	t.Helper()
	tmp := t.TempDir()
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	v := &Volume{Dir: filepath.Join(tmp, "vol"), Layer: &Fscrypt{}, Size: size}
	t.Cleanup(func() {
		if err := v.Unmount(context.Background()); err != nil {
			t.Errorf("cleanup: unmount: %v; detaching", err)
			syscall.Unmount(v.MountDir(), syscall.MNT_DETACH)
		}
		waitLoopGone(t, imagePath(v.CipherDir()))
	})
	return v
}

// waitLoopGone fails t unless no loop device serves img within a while: a process of another
// test that made a mount namespace while the volume was mounted holds the filesystem until it
// detaches its copy or exits.
func waitLoopGone(t *testing.T, img string) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, "no loop device serves "+img, func() error {
		if dev, ok := loopOf(img); ok {
			return fmt.Errorf("%s still serves it", dev)
		}
		return nil
	})
}

// readImage reads the volume's whole image: what an attacker with the disk has.
func readImage(t *testing.T, v *Volume) []byte {
	t.Helper()
	b, err := os.ReadFile(imagePath(v.CipherDir()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFscryptBytesOnDisk: what is written into the data directory is not in the image, by
// contents or by name, while a marker written (as a positive control) into the filesystem's
// unencrypted root is found by the same scan of the same image. Then the volume mounts again
// with its key and reads back.
func TestFscryptBytesOnDisk(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 128<<20)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := DetectLayer(v.CipherDir()); got != LayerFscrypt {
		t.Fatalf("DetectLayer = %q, want fscrypt", got)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	secret := "pgflex-fscrypt-secret-" + strings.Repeat("Z", 40)
	name := "pgflex-plaintext-name-" + strings.Repeat("N", 20)
	control := "pgflex-unencrypted-control-" + strings.Repeat("C", 40)
	if err := os.WriteFile(filepath.Join(v.DataDir(), name), bytes.Repeat([]byte(secret), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	// The root is outside the policy: what root writes there reaches the image in clear.
	if err := os.WriteFile(filepath.Join(v.MountDir(), "control"), bytes.Repeat([]byte(control), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	syncfs(t, v.MountDir())
	img := readImage(t, v)
	if !bytes.Contains(img, []byte(control)) {
		t.Fatal("positive control: the scan did not find the marker written outside the policy; it could find nothing")
	}
	for _, needle := range []string{secret, name} {
		if bytes.Contains(img, []byte(needle)) {
			t.Errorf("the image holds %q in clear", needle[:24])
		}
	}
	mk, err := masterKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for what, k := range map[string][]byte{"the volume key": key, "the derived master key": mk, "its first half": mk[:32]} {
		if bytes.Contains(img, k) {
			t.Errorf("the image holds %s", what)
		}
	}
	if err := os.Remove(filepath.Join(v.MountDir(), "control")); err != nil {
		t.Fatal(err)
	}
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := v.Status(ctx); err != nil || st != NotMounted {
		t.Fatalf("after Unmount: %v, %v", st, err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(v.DataDir(), name))
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte(secret), 200)) {
		t.Fatalf("read back after remount: %d bytes, %v", len(got), err)
	}
}

func syncfs(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
}

// TestFscryptWrongKey: another key is refused, and leaves nothing mounted or attached.
func TestFscryptWrongKey(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 64<<20)
	if err := v.Create(ctx, newKey(t)); err != nil {
		t.Fatal(err)
	}
	err := v.Mount(ctx, newKey(t))
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Mount with another key: %v, want ErrWrongKey", err)
	}
	if st, err := v.Status(ctx); err != nil || st != NotMounted {
		t.Fatalf("after a refused key: %v, %v; want NotMounted", st, err)
	}
	waitLoopGone(t, imagePath(v.CipherDir()))
}

// TestFscryptWithoutKey: the filesystem mounted without the key (as anyone with the image
// could) shows no plaintext name and opens no file; a key removed behind the layer's back
// makes the volume Stale, and Mount brings it back.
func TestFscryptWithoutKey(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 64<<20)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	const name, contents = "orders.csv", "alice,42,secret"
	if err := os.WriteFile(filepath.Join(v.DataDir(), name), []byte(contents), 0o600); err != nil {
		t.Fatal(err)
	}
	// The key removed while mounted: names and contents are gone from the mount at once.
	id, err := policyKey(v.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := removeKey(v.MountDir(), id); err != nil {
		t.Fatal(err)
	}
	checkLocked(t, v.DataDir(), name)
	if st, err := v.Status(ctx); err != nil || st != Stale {
		t.Fatalf("with its key removed: %v, %v; want Stale", st, err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("Mount of a Stale volume: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(v.DataDir(), name)); err != nil || string(got) != contents {
		t.Fatalf("after Mount: %q, %v", got, err)
	}
	// Unmounted, then mounted by hand without a key: the same.
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if err := mountImage(ctx, imagePath(v.CipherDir()), mnt); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unmountImage(ctx, slog.New(slog.DiscardHandler), mnt); err != nil {
			t.Error(err)
		}
	}()
	checkLocked(t, filepath.Join(mnt, fscryptData), name)
}

// checkLocked asserts that dir lists no plaintext name and that its one file cannot be read.
func checkLocked(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("locked directory lists %d entries, want 1", len(entries))
	}
	if entries[0].Name() == name {
		t.Fatalf("locked directory lists the plaintext name %q", name)
	}
	f, err := os.Open(filepath.Join(dir, entries[0].Name()))
	if err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		t.Fatalf("opened a file of a locked directory: %q", b)
	}
	if !errors.Is(err, unix.ENOKEY) {
		t.Fatalf("open in a locked directory: %v, want ENOKEY", err)
	}
}

// TestFscryptAdoptAndBusy: a fresh Volume (a restarted daemon) adopts the mount without a
// key; an open file makes Unmount fail with EBUSY and leaves the data mounted readable only
// through what is open; once closed, Unmount succeeds.
func TestFscryptAdoptAndBusy(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 64<<20)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	restarted := &Volume{Dir: v.Dir, Layer: &Fscrypt{}}
	if ok, err := restarted.Adopt(ctx); err != nil || !ok {
		t.Fatalf("Adopt after a restart: %v, %v; want true", ok, err)
	}
	f, err := os.Create(filepath.Join(v.DataDir(), "open"))
	if err != nil {
		t.Fatal(err)
	}
	err = restarted.Unmount(ctx)
	f.Close()
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Unmount with a file open: %v, want EBUSY", err)
	}
	if err := restarted.Unmount(ctx); err != nil {
		t.Fatalf("Unmount once closed: %v", err)
	}
	if st, err := v.Status(ctx); err != nil || st != NotMounted {
		t.Fatalf("after Unmount: %v, %v", st, err)
	}
}

// TestFscryptGrow: a mounted volume grows online where the host lets root do so
// (CAP_SYS_RESOURCE), otherwise at its next mount; an unmounted one grows at its next mount;
// data stays; shrinking is refused.
func TestFscryptGrow(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 64<<20)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.DataDir(), "kept"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := usage(t, v)
	err := v.Grow(ctx, 128<<20)
	if errors.Is(err, ErrRemountToGrow) {
		t.Logf("online growth refused here (%v): growing at the next mount", err)
		if err := v.Unmount(ctx); err != nil {
			t.Fatal(err)
		}
		if err := v.Mount(ctx, key); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	grown := usage(t, v)
	if grown.Total < before.Total+48<<20 {
		t.Fatalf("grow 64→128 MiB: total %d → %d bytes", before.Total, grown.Total)
	}
	if err := v.Grow(ctx, 96<<20); !errors.Is(err, ErrShrink) {
		t.Fatalf("Grow to a smaller size: %v, want ErrShrink", err)
	}
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Grow(ctx, 192<<20); err != nil {
		t.Fatalf("Grow of an unmounted volume: %v", err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	if after := usage(t, v); after.Total < grown.Total+48<<20 {
		t.Fatalf("offline grow 128→192 MiB: total %d → %d bytes", grown.Total, after.Total)
	}
	if b, err := os.ReadFile(filepath.Join(v.DataDir(), "kept")); err != nil || string(b) != "kept" {
		t.Fatalf("data after growing: %q, %v", b, err)
	}
	if err := (&Volume{Dir: t.TempDir(), Layer: &Gocryptfs{}}).Grow(ctx, 1<<30); !errors.Is(err, ErrNotSizable) {
		t.Fatalf("Grow of a gocryptfs volume: %v, want ErrNotSizable", err)
	}
}

func usage(t *testing.T, v *Volume) Usage {
	t.Helper()
	u, err := v.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFscryptProbe: the probe `auto` layer selection trusts passes here and leaves nothing.
func TestFscryptProbe(t *testing.T) {
	requireFscrypt(t)
	scratch := t.TempDir()
	if err := (&Fscrypt{}).Probe(context.Background(), scratch); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
		t.Fatalf("the probe left %v", entries)
	}
}

// TestFscryptMountHeldByAnotherNamespace: a process that made its own mount namespace while the
// volume was mounted keeps a copy of the mount. Unmount still removes the key — in that
// namespace the plaintext is gone too — and the next Mount shares the filesystem the kernel
// still has (same loop device) instead of making a second one over the same image.
func TestFscryptMountHeldByAnotherNamespace(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, 64<<20)
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(v.DataDir(), "held")
	if err := os.WriteFile(file, []byte("held-contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	inHolder := func(args ...string) ([]byte, error) {
		return exec.Command("nsenter", append([]string{"--target", strconv.Itoa(holder.Process.Pid), "--mount", "--"}, args...)...).CombinedOutput()
	}
	testkit.Eventually(t, 10*time.Second, "the holder's namespace sees the volume", func() error {
		out, err := inHolder("cat", file)
		if err != nil || string(out) != "held-contents" {
			return fmt.Errorf("%q, %v", out, err)
		}
		return nil
	})
	img, _ := filepath.Abs(imagePath(v.CipherDir()))
	dev, _ := loopOf(img)
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	// Without the key the plaintext name resolves to nothing and the listing shows only an
	// encoded one.
	if out, err := inHolder("cat", file); err == nil || strings.Contains(string(out), "held-contents") {
		t.Fatalf("in the other namespace after Unmount: cat %q, %v; want the key gone", out, err)
	}
	if out, err := inHolder("ls", "-A", v.DataDir()); err != nil || strings.Contains(string(out), "held") || len(strings.Fields(string(out))) != 1 {
		t.Fatalf("in the other namespace after Unmount: ls %q, %v; want one encoded name", out, err)
	}
	if again, ok := loopOf(img); !ok || again != dev {
		t.Fatalf("the other namespace's filesystem: image served by %q (%v), want %s still", again, ok, dev)
	}
	// A growth asked for meanwhile must wait: e2fsck and resize2fs must not touch a filesystem
	// mounted elsewhere.
	sizeBefore := imageBlocks(t, v)
	if err := v.Grow(ctx, 128<<20); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatalf("Mount while another namespace holds the filesystem: %v", err)
	}
	if got := imageBlocks(t, v); got != sizeBefore {
		t.Fatalf("the held filesystem was resized from %d to %d blocks under its holder", sizeBefore, got)
	}
	if got, _ := loopOf(img); got != dev {
		t.Fatalf("remounted from %s, want the same device %s", got, dev)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "held-contents" {
		t.Fatalf("after the remount: %q, %v", b, err)
	}
	holder.Process.Kill()
	holder.Wait()
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	waitLoopGone(t, img)
	// Held by no one, the next Mount finishes the growth.
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := imageBlocks(t, v); got <= sizeBefore {
		t.Fatalf("the waiting growth did not happen at the next free mount: %d blocks", got)
	}
}

// imageBlocks is the block count in the image's superblock.
func imageBlocks(t *testing.T, v *Volume) uint64 {
	t.Helper()
	n, _, err := ext4Blocks(imagePath(v.CipherDir()))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFscryptPathThroughSymlink: a volume reached through a symbolic link in its path (a data
// directory on a symlinked mount point) is still recognised as mounted, and unmounts.
func TestFscryptPathThroughSymlink(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	tmp := t.TempDir()
	if err := os.Mkdir(filepath.Join(tmp, "real"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tmp, "real"), filepath.Join(tmp, "link")); err != nil {
		t.Fatal(err)
	}
	v := &Volume{Dir: filepath.Join(tmp, "link", "vol"), Layer: &Fscrypt{}, Size: MinFscryptSize}
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	st, err := v.Status(ctx)
	if err != nil || st != Mounted {
		syscall.Unmount(v.MountDir(), syscall.MNT_DETACH)
		t.Fatalf("Status through a symlinked path: %v, %v; want Mounted", st, err)
	}
	if err := v.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	waitLoopGone(t, imagePath(v.CipherDir()))
}

// TestFscryptCreateAfterCrashedInit: what an Init killed halfway leaves — its scratch mount,
// key added, and the unfinished image — is cleared by the next Create, which then succeeds.
func TestFscryptCreateAfterCrashedInit(t *testing.T) {
	requireFscrypt(t)
	ctx := context.Background()
	v := newFscryptVolume(t, MinFscryptSize)
	cipher := v.CipherDir()
	if err := os.MkdirAll(cipher, 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := imagePath(cipher) + ".new"
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(tmp, MinFscryptSize); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "encrypt", "-b", "4096", tmp).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	scratch := filepath.Join(cipher, "init-crashed")
	if err := mountImage(ctx, tmp, scratch); err != nil {
		t.Fatal(err)
	}
	if _, err := addKey(scratch, newKey(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(scratch, fscryptData), 0o711); err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	if err := v.Create(ctx, key); err != nil {
		syscall.Unmount(scratch, syscall.MNT_DETACH)
		t.Fatalf("Create after a crashed Init: %v", err)
	}
	if testkit.Mounted(t, scratch) {
		t.Fatal("the crashed Init's scratch mount is still there")
	}
	if err := v.Mount(ctx, key); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(cipher); len(entries) != 1 || entries[0].Name() != fscryptImage {
		t.Fatalf("the cipher directory holds %v, want only %s", entries, fscryptImage)
	}
}
