package dic

import (
	"context"
	"strconv"
	"sync"
)

// KV is the ordered key-value store a KV dictionary keeps its entries in.
type KV interface {
	// Get returns the value of key; ok is false if it has none.
	Get(key []byte) (value []byte, ok bool, err error)
	// PutSync writes the pairs atomically and durably (a name's id must
	// survive a crash before any row key using it is written).
	PutSync(pairs [][2][]byte) error
}

// Key prefixes of a KV dictionary's entries, under whatever prefix the KV
// gives the dictionary.
const (
	kvNamePrefix = "n" // n<name> → 6-digit id
	kvIDPrefix   = "i" // i<6-digit id> → name
)

// kvBackend keeps both directions in kv; one mutex makes the check for a
// taken id and the insert atomic, which is enough because one process owns
// an embedded store.
type kvBackend struct {
	kv KV
	mu sync.Mutex
}

// NewKV is a Dictionary kept in kv, for a store that has no SQL database.
func NewKV(kv KV, where string) Dictionary {
	return newCached(&kvBackend{kv: kv}, "the dictionary in "+where)
}

func (b *kvBackend) idOf(_ context.Context, name string) (int, bool, error) {
	v, ok, err := b.kv.Get([]byte(kvNamePrefix + name))
	if err != nil || !ok {
		return 0, false, err
	}
	id, err := strconv.Atoi(string(v))
	return id, err == nil, err
}

func (b *kvBackend) nameOf(_ context.Context, id int) (string, bool, error) {
	v, ok, err := b.kv.Get([]byte(kvIDPrefix + format(id)))
	if err != nil || !ok {
		return "", false, err
	}
	return string(v), true, nil
}

func (b *kvBackend) insert(_ context.Context, id int, name string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	idKey := []byte(kvIDPrefix + format(id))
	if _, taken, err := b.kv.Get(idKey); err != nil || taken {
		return taken, err
	}
	nameKey := []byte(kvNamePrefix + name)
	if _, taken, err := b.kv.Get(nameKey); err != nil || taken {
		return taken, err
	}
	return false, b.kv.PutSync([][2][]byte{{idKey, []byte(name)}, {nameKey, []byte(format(id))}})
}
