// Package store is pgflex's state store: a small transactional key-value interface with one
// implementation on bbolt, so that a distributed store can take its place later.
//
// Keys are '/'-separated strings; each owning package keeps its keys under its own prefix
// (for example "rg/{subscription}/{group}"). Every write happens inside a transaction, and bbolt
// commits a transaction atomically with fsync, so a kill -9 at any moment leaves either the old
// or the new state on disk.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNotFound is returned by Get when a key is absent.
var ErrNotFound = errors.New("not found")

// KV is one entry returned by List.
type KV struct {
	Key   string
	Value []byte
}

// Tx is one transaction. Values returned by Get and List are copies the caller may keep.
type Tx interface {
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// List returns the entries whose key starts with prefix, in key order.
	List(prefix string) ([]KV, error)
}

// Store runs transactions. Update transactions are serialised; a function that returns an error
// rolls its transaction back.
type Store interface {
	View(ctx context.Context, fn func(Tx) error) error
	Update(ctx context.Context, fn func(Tx) error) error
	Close() error
}

// GetJSON reads key into v.
func GetJSON(tx Tx, key string, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// PutJSON writes v as JSON under key.
func PutJSON(tx Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return tx.Put(key, b)
}

// ListJSON decodes every value under prefix with newItem/appending through add.
func ListJSON[T any](tx Tx, prefix string) ([]T, error) {
	kvs, err := tx.List(prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}
