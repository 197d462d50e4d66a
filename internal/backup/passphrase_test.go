package backup

import (
	"bytes"
	"testing"
)

func TestPassphrase(t *testing.T) {
	dek := bytes.Repeat([]byte{0x42}, DEKSize)
	tests := []struct {
		name    string
		dek     []byte
		stanza  string
		want    string // "" when an error is expected
		wantErr bool
	}{
		// Vectors pin the derivation (computed independently with
		// Python's hmac: HKDF-Extract then one Expand block): changing
		// it would make every existing repository unreadable.
		{"vector", dek, "s1", "amInAOuDC59fu7KNZ9KE7Ir7XqpAq7QvyUZw67hddC4", false},
		{"vector other stanza", dek, "0e8c2d1a-7c55-4c7e-9b1e-2a7d5f1c9e00", "", false},
		{"short dek", dek[:31], "s1", "", true},
		{"long dek", append(bytes.Clone(dek), 0), "s1", "", true},
		{"bad stanza", dek, "s 1", "", true},
		{"empty stanza", dek, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Passphrase(tt.dek, tt.stanza)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Passphrase = %q, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 43 {
				t.Errorf("length %d, want 43", len(got))
			}
			if tt.want != "" && string(got) != tt.want {
				t.Errorf("Passphrase = %s, want %s", got, tt.want)
			}
		})
	}
	a, _ := Passphrase(dek, "s1")
	b, _ := Passphrase(dek, "s2")
	if bytes.Equal(a, b) {
		t.Error("two stanzas share a passphrase under one DEK")
	}
}

func TestPassphrasesWipe(t *testing.T) {
	p1 := []byte("secret-one")
	pp := Passphrases{1: p1}
	c := pp.clone()
	pp.Wipe()
	if len(pp) != 0 || !bytes.Equal(p1, make([]byte, len(p1))) {
		t.Errorf("not wiped: %v %q", pp, p1)
	}
	if string(c[1]) != "secret-one" {
		t.Errorf("clone shared memory with the original: %q", c[1])
	}
}
