package postgres

import (
	"encoding/base64"
	"errors"
	"regexp"
	"testing"
)

func TestScramVerifier(t *testing.T) {
	// Expected values from an independent implementation (Python's
	// hashlib.pbkdf2_hmac and hmac) with RFC 7677's example salt.
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	tests := []struct {
		name     string
		password string
		want     string
		wantErr  error
	}{
		{
			name:     "RFC 7677 example password",
			password: "pencil",
			want:     "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		},
		{name: "non-ASCII refused", password: "pässword", wantErr: ErrPasswordCharset},
		{name: "control character refused", password: "a\nb", wantErr: ErrPasswordCharset},
		{name: "empty refused", password: "", wantErr: errors.New("empty password")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scramVerifier([]byte(tt.password), salt, 4096)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted %q", tt.password)
				}
				if errors.Is(tt.wantErr, ErrPasswordCharset) && !errors.Is(err, ErrPasswordCharset) {
					t.Errorf("err = %v, want ErrPasswordCharset", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verifier\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestScramVerifierSaltsDiffer(t *testing.T) {
	shape := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$`)
	a, err := ScramVerifier([]byte("Secret-Passw0rd"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ScramVerifier([]byte("Secret-Passw0rd"))
	if err != nil {
		t.Fatal(err)
	}
	if !shape.MatchString(a) {
		t.Errorf("verifier %q has the wrong shape", a)
	}
	if a == b {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
}
