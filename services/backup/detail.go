package backup

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/messagelog"
)

// Detail is the query API's DetailSource: the stored bytes of a message
// whose content the store does not keep, read from the group's slave over
// its sync port as a reader, at the message-log offset the follower
// recorded for it.
//
// Why the sync port and not the broker's HTTP (QMQ's backup asks the
// slave's /api/broker/message): the sync port already serves the backup,
// authenticated (sync.secret) and as a reader that never counts as the
// slave; our brokers have no message endpoint on HTTP, and one there would
// need its own authentication. Why the slave and not the master: the same
// reasons the follower reads the slave (docs/backup-follower.md), and the
// offsets are the follower's own, which mean the same on the slave. The
// record read there must be the one asked for (subject and sequence): after
// a failover that cut the master's tail the same offset may hold another
// message, which is answered as not found, never shown.
func (s *Server) Detail(ctx context.Context, req query.DetailRequest) ([]byte, error) {
	t, _ := s.f.target()
	switch {
	case !req.Located:
		// The store has no detail row of it. Rows without an offset come
		// from backups that did not record one (normal messages before
		// detail-from-the-slave, retry copies before their detail rows):
		// re-reading the group's retained logs writes them again with it.
		return nil, fmt.Errorf("message %d of %q in %q: the backup has neither its content nor where the group's message log holds it, so it cannot read it from the slave. "+
			"Either it was indexed before the backup recorded log offsets (by an older backup; retry copies before their details were kept): "+
			"while the group still retains it (messagelog.retention.hours), stop the backup, move %s aside and start it again — it re-reads what the group retains "+
			"and records the offsets (writes are idempotent: nothing doubles); set backup.message.content=true to keep contents beyond the group's retention. "+
			"Or it was never indexed here: a message of another broker group, of a subject in %s, or older than backup.retention.days: %w",
			req.Sequence, req.Subject, req.BrokerGroup, filepath.Join(s.settings.StoreRoot, checkpointName), FileSkip, backup.ErrNotFound)
	case t.addr == "":
		return nil, fmt.Errorf("message %d of %q in %q: the backup does not know the group's slave yet: %w", req.Sequence, req.Subject, req.BrokerGroup, backup.ErrUnavailable)
	case req.BrokerGroup != t.group:
		return nil, fmt.Errorf("message %d of %q is in broker group %q; this backup follows %q and reads only its slave (ask %q's backup): %w",
			req.Sequence, req.Subject, req.BrokerGroup, t.group, req.BrokerGroup, backup.ErrNotFound)
	}
	c, hs, err := dialSlave(ctx, s.settings, t)
	if err != nil {
		return nil, fmt.Errorf("read message %d of %q from the slave: %w: %w", req.Sequence, req.Subject, backup.ErrUnavailable, err)
	}
	defer c.Close()
	if info := hs.Replica; req.LogOffset < info.MessageMinOffset || req.LogOffset >= info.MessageMaxOffset {
		return nil, fmt.Errorf("message %d of %q: the group's message log now holds %d..%d, not %d (deleted by messagelog.retention.hours; keep content with backup.message.content): %w",
			req.Sequence, req.Subject, info.MessageMinOffset, info.MessageMaxOffset, req.LogOffset, backup.ErrNotFound)
	}
	data, err := s.f.fetch(ctx, c, t, protocol.SyncTypeMessage, req.LogOffset)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backup.ErrUnavailable, err)
	}
	rec, _, err := messagelog.DecodeRecord(data)
	if err != nil || rec.Attr != messagelog.AttrMessage || string(rec.Subject) != req.Subject || rec.Sequence != req.Sequence {
		return nil, fmt.Errorf("message %d of %q: the slave's log at %d holds another record (a log cut after a failover?): %w",
			req.Sequence, req.Subject, req.LogOffset, backup.ErrNotFound)
	}
	return append([]byte(nil), rec.Payload...), nil
}
