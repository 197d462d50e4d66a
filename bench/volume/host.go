package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pgflex/pgflex/internal/postgres"
	"github.com/pgflex/pgflex/internal/volume"
)

// host is what the figures depend on, printed above them.
type host struct {
	cpu, kernel, mem, aes, auto, disk, postgres string
	gocryptfs                                   []string
}

func hostFacts(ctx context.Context, c config) host {
	var h host
	h.cpu = fmt.Sprintf("%s, %d vCPU", firstField("/proc/cpuinfo", "model name"), runtime.NumCPU())
	var cpuAES []string
	for _, f := range strings.Fields(firstField("/proc/cpuinfo", "flags")) {
		if f == "aes" || f == "vaes" || f == "pclmulqdq" {
			cpuAES = append(cpuAES, f)
		}
	}
	if len(cpuAES) > 0 {
		h.cpu += " (CPU flags: " + strings.Join(cpuAES, " ") + ")"
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if kb, err := strconv.ParseInt(strings.Fields(firstField("/proc/meminfo", "MemTotal") + " 0")[0], 10, 64); err == nil {
		h.mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	// What the daemon's --volume-layer auto sees and would pick here.
	facts := volume.ProbeHost(ctx, c.workDir, volume.LayerAuto)
	accel := "software: no hardware AES driver in this kernel"
	if facts.AESHardware {
		accel = "hardware accelerated"
	}
	h.aes = fmt.Sprintf("xts(aes) driver %s: %s", facts.AESDriver, accel)
	if ch, err := volume.Choose(volume.LayerAuto, facts); err == nil {
		h.auto = fmt.Sprintf("%s (%s)", ch.Layer, ch.Reason)
	} else {
		h.auto = err.Error()
	}
	h.disk = diskOf(c.workDir)
	h.postgres = strings.TrimSpace(output(ctx, filepath.Join(postgres.DefaultBinDir, "postgres"), "--version"))
	for _, l := range c.layers {
		switch l {
		case "gocryptfs":
			h.gocryptfs = append(h.gocryptfs, "gocryptfs: "+firstLine(output(ctx, "gocryptfs", "-version")))
		case "gocryptfs-wbc":
			h.gocryptfs = append(h.gocryptfs, "gocryptfs-wbc: "+firstLine(output(ctx, c.gcwbBin, "-version")))
		}
	}
	return h
}

func (h host) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| host | |\n|---|---|\n")
	for _, r := range [][2]string{
		{"CPU", h.cpu}, {"kernel", h.kernel}, {"memory", h.mem}, {"kernel AES", h.aes}, {"`--volume-layer auto`", h.auto},
		{"disk", h.disk}, {"PostgreSQL", h.postgres},
	} {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	for _, g := range h.gocryptfs {
		name, v, _ := strings.Cut(g, ": ")
		fmt.Fprintf(&b, "| %s | %s |\n", name, v)
	}
	return b.String()
}

// diskOf describes the block device and filesystem holding dir.
func diskOf(dir string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	var mp, fstype, src string
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		m := unescapeMount(f[4])
		if (dir == m || strings.HasPrefix(dir, strings.TrimSuffix(m, "/")+"/")) && len(m) >= len(mp) {
			mp, fstype, src = m, g[0], g[1]
		}
	}
	dev := filepath.Base(src)
	desc := fmt.Sprintf("%s (%s on %s)", src, fstype, mp)
	if drv, err := os.Readlink(filepath.Join("/sys/class/block", dev, "device/driver")); err == nil {
		desc += ", driver " + filepath.Base(drv)
	}
	if s, err := os.ReadFile(filepath.Join("/sys/class/block", dev, "size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err == nil {
			desc += fmt.Sprintf(", %d GiB", n*512>>30)
		}
	}
	return desc
}

func firstField(path, key string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func output(ctx context.Context, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("? (%v)", err)
	}
	return out.String()
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return strings.TrimSpace(l) }
