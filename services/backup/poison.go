package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/internal/backoff"
)

// refusedTries: a batch the store refuses this many times in a row, for a
// reason other than being unavailable or slow, is written entry by entry.
const refusedTries = 3

// writeBatch writes entries with put. While the store is unavailable it
// retries forever (write). When it keeps refusing the batch for another
// reason, the batch is written entry by entry: an entry the store refuses
// while it takes others (a poison entry, such as a name longer than the
// dictionary holds) is skipped — logged with the store's reason and counted
// in qmq_backup_skipped_entries_total — so that one entry cannot stop the
// backup for good. If it refuses every entry of a batch of several, the
// store is at fault, not the entries: the batch is tried again after a
// pause, nothing skipped. It fails only when ctx ends.
func writeBatch[T any](f *follower, ctx context.Context, entries []T, put func(context.Context, []T) error, describe func(T) string) error {
	pause := backoff.Backoff{Min: f.settings.StoreRetryMin, Max: f.settings.StoreRetryMax}
	for {
		err := f.writeTries(ctx, refusedTries, func(ctx context.Context) error { return put(ctx, entries) })
		var ref *refusedError
		if !errors.As(err, &ref) {
			return err
		}
		var refused []int
		var reasons []error
		for i := range entries {
			err := f.writeTries(ctx, refusedTries, func(ctx context.Context) error { return put(ctx, entries[i:i+1]) })
			if errors.As(err, &ref) {
				refused, reasons = append(refused, i), append(reasons, ref.err)
				continue
			}
			if err != nil {
				return err
			}
		}
		if len(refused) < len(entries) || len(entries) == 1 {
			for n, i := range refused {
				f.m.skippedEntries.Inc()
				f.log.Error("the store refuses this entry while it takes others; skipped (it is not in the backup)",
					"entry", describe(entries[i]), "error", reasons[n])
			}
			if len(refused) > 0 {
				f.setStoreErr(nil)
			}
			return nil
		}
		f.log.Error("the store refuses every entry of a batch; retrying the batch (nothing skipped)", "entries", len(entries), "error", reasons[0])
		if pause.Wait(ctx) != nil {
			return ctx.Err()
		}
	}
}

func describeMessage(m backup.Message) string {
	return fmt.Sprintf("message %s of subject %q (kind %d, group %q) at %s:%d", m.MessageID, m.Subject, m.Kind, m.ConsumerGroup, m.BrokerGroup, m.Sequence)
}

func describeRecord(r backup.Record) string {
	return fmt.Sprintf("record (action %d) of %s/%s on %q at %s:%d", r.Action, r.ConsumerGroup, r.ConsumerID, r.Subject, r.BrokerGroup, r.Sequence)
}
