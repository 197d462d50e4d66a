package auth

import (
	"strings"
	"testing"
)

// TestNewSecret: secrets are 40 URL-safe characters, distinct, and never start with "-" (a
// command line would read such a secret as an option; one in 64 would without the rule, so
// 2000 draws all but surely include one).
func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		plain, hash := NewSecret()
		if len(plain) != 40 || strings.Trim(plain, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("secret %q is not 40 URL-safe characters", plain)
		}
		if plain[0] == '-' {
			t.Fatalf("secret %q starts with a hyphen", plain)
		}
		if seen[plain] {
			t.Fatalf("secret %q drawn twice", plain)
		}
		seen[plain] = true
		if p := (&Principal{SecretHash: hash}); !p.checkSecret(plain) || p.checkSecret(plain+"x") {
			t.Fatalf("the hash does not check its secret")
		}
	}
}
