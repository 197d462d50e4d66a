package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestBoltTransactions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	if err := s.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"a/2", "a/1", "b/1", "a"} {
			if err := tx.Put(k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A failing update leaves nothing behind.
	boom := errors.New("boom")
	if err := s.Update(ctx, func(tx Tx) error {
		if err := tx.Put("a/3", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("a/1"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}

	tests := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/1", "a/2"}},
		{"a", []string{"a", "a/1", "a/2"}},
		{"b/", []string{"b/1"}},
		{"c/", nil},
	}
	for _, tc := range tests {
		var got []string
		if err := s.View(ctx, func(tx Tx) error {
			kvs, err := tx.List(tc.prefix)
			for _, kv := range kvs {
				got = append(got, kv.Key)
				if string(kv.Value) != "v"+kv.Key {
					t.Errorf("value of %s = %q", kv.Key, kv.Value)
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
			}
		}
	}

	if err := s.View(ctx, func(tx Tx) error {
		_, err := tx.Get("missing")
		return err
	}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}

	// Reopen: committed state persists.
	s.Close()
	s2, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var n int
	s2.View(ctx, func(tx Tx) error { kvs, _ := tx.List(""); n = len(kvs); return nil })
	if n != 4 {
		t.Fatalf("after reopen %d keys, want 4", n)
	}
}

func TestJSONHelpers(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type item struct{ N int }
	s.Update(ctx, func(tx Tx) error {
		PutJSON(tx, "i/1", item{1})
		PutJSON(tx, "i/2", item{2})
		return tx.Put("i/3", []byte("{bad"))
	})
	s.View(ctx, func(tx Tx) error {
		var it item
		if err := GetJSON(tx, "i/2", &it); err != nil || it.N != 2 {
			t.Errorf("GetJSON = %v %v", it, err)
		}
		if _, err := ListJSON[item](tx, "i/"); err == nil {
			t.Error("ListJSON over a corrupt value must fail")
		}
		return nil
	})
}
