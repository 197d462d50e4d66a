package volume

import (
	"errors"
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	no := errors.New("not here")
	for _, c := range []struct {
		requested string
		facts     HostFacts
		want      string // layer, or "error"
	}{
		{"auto", HostFacts{AESDriver: "xts(ecb(aes-fixed-time))"}, LayerFscrypt},
		{"", HostFacts{AESDriver: "xts-aes-aesni", AESHardware: true}, LayerFscrypt},
		{"auto", HostFacts{Fscrypt: no}, LayerGocryptfs},
		{"auto", HostFacts{Fscrypt: no, Gocryptfs: no}, "error"},
		{"fscrypt", HostFacts{Gocryptfs: no}, LayerFscrypt},
		{"fscrypt", HostFacts{Fscrypt: no}, "error"},
		{"gocryptfs", HostFacts{}, LayerGocryptfs},
		{"gocryptfs", HostFacts{Gocryptfs: no}, "error"},
		{"dm-crypt", HostFacts{}, "error"},
	} {
		got, err := Choose(c.requested, c.facts)
		if c.want == "error" {
			if err == nil {
				t.Errorf("Choose(%q, %+v) = %+v, want an error", c.requested, c.facts, got)
			}
			continue
		}
		if err != nil || got.Layer != c.want || got.Reason == "" {
			t.Errorf("Choose(%q, %+v) = %+v, %v; want %s with a reason", c.requested, c.facts, got, err, c.want)
		}
	}
}

func TestXTSAESDriver(t *testing.T) {
	const crypto = `name         : xts(aes)
driver       : xts(ecb(aes-generic))
priority     : 100

name         : xts(aes)
driver       : xts-aes-aesni
priority     : 401

name         : aes
driver       : aes-generic
priority     : 100
`
	if d, hw := xtsAESDriver(strings.NewReader(crypto)); d != "xts-aes-aesni" || !hw {
		t.Errorf("with AES-NI: %q, %v", d, hw)
	}
	soft := strings.Join(strings.Split(crypto, "\n\n")[0:1], "")
	if d, hw := xtsAESDriver(strings.NewReader(soft)); d != "xts(ecb(aes-generic))" || hw {
		t.Errorf("software only: %q, %v", d, hw)
	}
}
