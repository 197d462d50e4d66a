package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var rootBucket = []byte("pgflex")

// Bolt is the bbolt implementation of Store.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens (creating if needed, mode 0600) the bbolt file at path.
func OpenBolt(path string) (*Bolt, error) {
	// A timeout instead of blocking forever when another daemon holds the file lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(rootBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state store: %w", err)
	}
	return &Bolt{db: db}, nil
}

// View runs fn in a read-only transaction.
func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx.Bucket(rootBucket)}) })
}

// Update runs fn in a read-write transaction, committed atomically when fn returns nil.
func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx.Bucket(rootBucket)}) })
}

// Close closes the database file.
func (b *Bolt) Close() error { return b.db.Close() }

type boltTx struct{ b *bolt.Bucket }

func (t boltTx) Get(key string) ([]byte, error) {
	v := t.b.Get([]byte(key))
	if v == nil {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (t boltTx) Put(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("empty key")
	}
	return t.b.Put([]byte(key), value)
}

func (t boltTx) Delete(key string) error { return t.b.Delete([]byte(key)) }

func (t boltTx) List(prefix string) ([]KV, error) {
	var out []KV
	c := t.b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		out = append(out, KV{Key: string(k), Value: bytes.Clone(v)})
	}
	return out, nil
}
