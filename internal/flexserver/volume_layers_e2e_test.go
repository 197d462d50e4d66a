package flexserver_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgflex/pgflex/internal/testenv"
	"github.com/pgflex/pgflex/internal/testkit"
	"github.com/pgflex/pgflex/internal/volume"
)

// TestVolumeLayersCoexist: a daemon told --volume-layer gocryptfs makes gocryptfs volumes;
// restarted with the default (auto: fscrypt on this host) it adopts that server as it is,
// still gocryptfs through a stop and a start, while a new server gets fscrypt. Each layer shows
// in the kernel's own mount table, and both servers keep their data.
func TestVolumeLayersCoexist(t *testing.T) {
	t.Parallel()
	requireDataPlane(t)
	ctx := context.Background()
	runDir := testenv.RuntimeDir(t)
	d := testenv.Start(t, testenv.Options{Args: []string{"--runtime-dir", runDir, "--volume-layer", "gocryptfs"}})
	createGroup(t, d, "rg", "eastus")
	old := createServer(t, d, "rg", "older", nil)
	write := func(srv map[string]any, v string) {
		t.Helper()
		conn, err := connect(t, d, srv, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('"+v+"')"); err != nil {
			t.Fatal(err)
		}
	}
	read := func(srv map[string]any) string {
		t.Helper()
		conn, err := connect(t, d, srv, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var got string
		if err := conn.QueryRow(ctx, "SELECT string_agg(v, ',' ORDER BY v) FROM kept").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	layerOf := func(srv map[string]any) (string, string) {
		t.Helper()
		uid, mount := serverMount(t, d, runDir, srv)
		var fstype string
		for _, m := range testkit.Mounts(t) {
			if m.Point == mount {
				fstype = m.FSType
			}
		}
		return volume.DetectLayer(filepath.Join(d.DataDir, "servers", uid, "cipher")), fstype
	}
	write(old, "before")
	if layer, fstype := layerOf(old); layer != volume.LayerGocryptfs || fstype != "fuse.gocryptfs" {
		t.Fatalf("with --volume-layer gocryptfs the server's volume is %q mounted as %q", layer, fstype)
	}

	d.Args = []string{"--runtime-dir", runDir}
	d.Restart()
	if !strings.Contains(d.Logs(), `msg="volume layer for new servers" layer=fscrypt requested=auto`) {
		t.Fatalf("the restarted daemon does not log its choice of fscrypt for new servers")
	}
	old = waitState(t, d, "rg", "older", "Ready", time.Minute)
	if layer, fstype := layerOf(old); layer != volume.LayerGocryptfs || fstype != "fuse.gocryptfs" {
		t.Fatalf("after the restart the older server's volume is %q mounted as %q; it must keep gocryptfs", layer, fstype)
	}
	newer := createServer(t, d, "rg", "newer", nil)
	if layer, fstype := layerOf(newer); layer != volume.LayerFscrypt || fstype != "ext4" {
		t.Fatalf("a new server's volume is %q mounted as %q, want fscrypt on ext4", layer, fstype)
	}
	write(newer, "fresh")
	// fscrypt's plaintext directory admits the server's own accounts only: another account
	// cannot even enter it (its working directory there would hold the volume busy).
	_, newMount := serverMount(t, d, runDir, newer)
	if out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
		"/bin/bash", "-c", "cd "+plainDir(newMount)).CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("another account entering the fscrypt server's plaintext directory: %v %s; want Permission denied", err, out)
	}

	serverAction(t, d, "rg", "stop", "older")
	serverAction(t, d, "rg", "start", "older")
	old = waitState(t, d, "rg", "older", "Ready", time.Minute)
	if layer, fstype := layerOf(old); layer != volume.LayerGocryptfs || fstype != "fuse.gocryptfs" {
		t.Fatalf("after a stop and a start the older server's volume is %q mounted as %q", layer, fstype)
	}
	write(old, "after")
	if got := read(old); got != "after,before" {
		t.Errorf("the older server holds %q, want after,before", got)
	}
	if got := read(newer); got != "fresh" {
		t.Errorf("the newer server holds %q, want fresh", got)
	}
}
