package volume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// LayerAuto asks Choose to pick the layer from what the host offers.
const LayerAuto = "auto"

// HostFacts are what Choose decides from.
type HostFacts struct {
	// Fscrypt is nil when a fscrypt volume was made, mounted, written and unmounted here (the
	// probe), else why not.
	Fscrypt error
	// Gocryptfs is nil when gocryptfs and /dev/fuse are usable, else why not.
	Gocryptfs error
	// AESDriver is the kernel's driver for xts(aes), the cipher of fscrypt's contents ("" if
	// the kernel lists none yet), and AESHardware whether it uses the CPU's AES instructions.
	AESDriver   string
	AESHardware bool
}

// Choice is a layer picked for new volumes, and why.
type Choice struct {
	Layer  string
	Reason string
}

// Choose picks the layer for new volumes: requested, unless it is "auto". Auto takes fscrypt
// wherever it works, hardware AES or not: measured on a kernel with only software AES
// (bench/README.md) it still costs PostgreSQL less than gocryptfs, whose cost is FUSE's round
// trips rather than its cipher; gocryptfs where fscrypt does not work (no loop devices, an ext4
// without encryption, a container without the mount capability).
func Choose(requested string, h HostFacts) (Choice, error) {
	aes := "software AES (" + h.AESDriver + ")"
	if h.AESHardware {
		aes = "hardware AES (" + h.AESDriver + ")"
	}
	switch requested {
	case LayerFscrypt:
		if h.Fscrypt != nil {
			return Choice{}, fmt.Errorf("--volume-layer fscrypt: this host cannot make fscrypt volumes: %w", h.Fscrypt)
		}
		return Choice{LayerFscrypt, "requested; the kernel encrypts with " + aes}, nil
	case LayerGocryptfs:
		if h.Gocryptfs != nil {
			return Choice{}, fmt.Errorf("--volume-layer gocryptfs: %w", h.Gocryptfs)
		}
		return Choice{LayerGocryptfs, "requested"}, nil
	case LayerAuto, "":
		if h.Fscrypt == nil {
			return Choice{LayerFscrypt, "the kernel's fscrypt works here (encrypting with " + aes + "); it costs less than a FUSE layer"}, nil
		}
		if h.Gocryptfs == nil {
			return Choice{LayerGocryptfs, "fscrypt is not available here (" + h.Fscrypt.Error() + "); gocryptfs is"}, nil
		}
		return Choice{}, fmt.Errorf("no encrypting volume layer works on this host: fscrypt: %v; gocryptfs: %v", h.Fscrypt, h.Gocryptfs)
	}
	return Choice{}, fmt.Errorf("--volume-layer %q: choose auto, %s or %s", requested, LayerFscrypt, LayerGocryptfs)
}

// ProbeHost gathers HostFacts for a request of layer requested, making a throwaway fscrypt
// volume under scratch unless gocryptfs is requested.
func ProbeHost(ctx context.Context, scratch, requested string) HostFacts {
	h := HostFacts{Gocryptfs: (&Gocryptfs{}).Available()}
	if requested == LayerGocryptfs {
		h.Fscrypt = errors.New("not probed: gocryptfs was requested")
	} else {
		h.Fscrypt = (&Fscrypt{}).Probe(ctx, scratch)
	}
	if f, err := os.Open("/proc/crypto"); err == nil {
		h.AESDriver, h.AESHardware = xtsAESDriver(f)
		f.Close()
	}
	return h
}

// xtsAESDriver reads /proc/crypto for the highest-priority xts(aes) driver (the one the kernel
// uses) and whether it runs on the CPU's AES instructions (aesni, vaes on x86; -ce on arm64).
func xtsAESDriver(r io.Reader) (string, bool) {
	var best string
	bestPrio := -1
	var name, driver string
	prio := 0
	flush := func() {
		if name == "xts(aes)" && prio > bestPrio {
			best, bestPrio = driver, prio
		}
		name, driver, prio = "", "", 0
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			flush()
			continue
		}
		switch strings.TrimSpace(k) {
		case "name":
			name = strings.TrimSpace(v)
		case "driver":
			driver = strings.TrimSpace(v)
		case "priority":
			fmt.Sscan(strings.TrimSpace(v), &prio)
		}
	}
	flush()
	hw := false
	for _, mark := range []string{"aesni", "vaes", "-ce"} {
		if strings.Contains(best, mark) {
			hw = true
		}
	}
	return best, hw
}
