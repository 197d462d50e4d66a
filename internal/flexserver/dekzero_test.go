package flexserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/pgflex/pgflex/internal/arm"
	"github.com/pgflex/pgflex/internal/dataenc"
	"github.com/pgflex/pgflex/internal/resources"
	"github.com/pgflex/pgflex/internal/store"
)

// recordingDataPlane is a test double of the data plane (which needs FUSE and PostgreSQL): it
// keeps the very slice the provider hands it, so the test can see whether the provider zeroed
// it afterwards.
type recordingDataPlane struct {
	DataPlane
	startKey []byte
	keyCopy  []byte
}

func (r *recordingDataPlane) Status(context.Context, Instance) (Status, error) { return Status{}, nil }
func (r *recordingDataPlane) Start(_ context.Context, _ Instance, dek []byte) error {
	r.startKey = dek
	r.keyCopy = bytes.Clone(dek)
	return nil
}

// rsaServiceKeys wraps with an in-memory RSA key, standing in for the key store.
type rsaServiceKeys struct{ key *rsa.PrivateKey }

func (k rsaServiceKeys) WrapWithServiceKey(_ context.Context, _ string, dek []byte) (string, []byte, error) {
	w, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.key.PublicKey, dek, nil)
	return "https://svc.vault.localhost/keys/smk/0123456789abcdef0123456789abcdef", w, err
}

func (k rsaServiceKeys) UnwrapWithServiceKey(_ context.Context, _ string, wrapped []byte) ([]byte, error) {
	return rsa.DecryptOAEP(sha256.New(), rand.Reader, k.key, wrapped, nil)
}

// TestBringUpZeroesTheDEK: the plaintext DEK exists only for the mount; once the data plane
// holds it (in the FUSE process) the provider's copy is zeroed, so no structure of the daemon
// keeps it — which is also why a revoked key leaves nothing to wipe but the mount.
func TestBringUpZeroesTheDEK(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	ops := arm.NewOperations(ctx, st, log)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	dp := &recordingDataPlane{}
	s := New(Config{}, Deps{Store: st, Operations: ops, Groups: resources.New(st, ops, log), DataPlane: dp,
		ServiceKeys: rsaServiceKeys{key}, Log: log})
	dek, _ := dataenc.NewDEK()
	want := bytes.Clone(dek)
	env, err := dataenc.ServiceManaged{Keys: rsaServiceKeys{key}, Region: "eastus"}.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Name: "s", UID: "u", Location: "eastus", Encryption: Encryption{Type: EncSystemManaged}, Envelope: env}
	if err := s.bringUp(ctx, srv); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dp.keyCopy, want) {
		t.Fatal("the data plane did not receive the DEK the envelope wraps")
	}
	if !bytes.Equal(dp.startKey, make([]byte, len(dp.startKey))) {
		t.Fatal("the provider kept the DEK in plaintext after the mount")
	}
}
