package pebblestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

var bloom10 = bloom.FilterPolicy(10)

// deleteBatch bounds the rows one retention batch deletes, so the
// retention never holds a huge batch in memory.
const deleteBatch = 10_000

func (t *tables) retentionLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(t.settings.RetentionCheckInterval)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-t.stop:
			case <-ctx.Done():
			}
			cancel()
		}()
		n, err := t.deleteExpired(ctx, time.Now())
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			t.log.Error("deleting expired backup rows failed; trying again at the next check", "error", err, "deleted", n, "next_check", t.settings.RetentionCheckInterval)
		case n > 0:
			t.log.Info("deleted expired backup rows", "rows", n, "retention_days", t.settings.RetentionDays)
		}
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
	}
}

// deleteExpired deletes the rows whose day (UTC) is before now minus the
// retention, with their expiry-log keys.
func (t *tables) deleteExpired(ctx context.Context, now time.Time) (int, error) {
	if t.settings.RetentionDays <= 0 {
		return 0, nil
	}
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	cutoff := now.UTC().AddDate(0, 0, -t.settings.RetentionDays).Format(dayLayout)
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: []byte{expiryPrefix}, UpperBound: append([]byte{expiryPrefix}, cutoff...)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	deleted := 0
	b := t.db.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if b.Empty() {
			return nil
		}
		if err := t.db.Apply(b, pebble.NoSync); err != nil {
			return fmt.Errorf("delete expired rows of the Pebble store in %s: %w", t.settings.Dir, err)
		}
		b.Close()
		b = t.db.NewBatch()
		return nil
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		k := it.Key()
		rest := k[1+len(dayLayout):]
		if len(rest) > 0 && rest[0] == 0 {
			// An expiry list: the keys of one write's rows of that day.
			list, err := it.ValueAndErr()
			if err != nil {
				return deleted, fmt.Errorf("read an expiry list of the Pebble store in %s: %w", t.settings.Dir, err)
			}
			for len(list) > 0 {
				n, w := binary.Uvarint(list)
				if w <= 0 || uint64(len(list)-w) < n {
					// A list this code did not write: skip it rather than
					// delete what it cannot name; the rows stay.
					t.log.Error("an expiry list of the backup store is corrupt; its remaining rows are kept", "key", fmt.Sprintf("%x", k))
					break
				}
				if err := b.Delete(list[w:w+int(n)], nil); err != nil {
					return deleted, err
				}
				list = list[w+int(n):]
				deleted++
			}
		} else {
			// A key per row (stores written before the lists).
			if err := b.Delete(rest, nil); err != nil {
				return deleted, err
			}
			deleted++
		}
		if err := b.Delete(k, nil); err != nil {
			return deleted, err
		}
		if int(b.Count()) >= 2*deleteBatch {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return deleted, err
	}
	return deleted, flush()
}
