package delay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// A former master's logs may hold a tail its slave never copied: messages
// it stored but did not acknowledge, dispatch records written after the
// slave's last copy. The new master writes other bytes at those offsets,
// so such a store must not replicate from it: copying would continue from
// an offset inside the new master's records. A DELAY_MASTER therefore
// records its term in store.root (masterFile); a store started as
// DELAY_SLAVE with that record copies only if its ends are within the
// takeover point of the next term (the metaserver's epochs, written by a
// lease promotion), and otherwise stops with the recovery: delete
// store.root. The broker cuts such a tail instead (services/broker,
// failover.go); the delay store has no truncation yet.

// masterFile, in store.root, says this store was a DELAY_MASTER's.
const masterFile = "delay-master-term.json"

type masterTerm struct {
	Group string `json:"group"`
	Epoch int64  `json:"epoch"` // the lease's term (0: no lease)
}

func (s *Server) masterTermPath() string { return filepath.Join(s.settings.Store.Root, masterFile) }

// recordMasterTerm notes that this store serves as the group's master.
func (s *Server) recordMasterTerm(group string, epoch int64) {
	b, _ := json.Marshal(masterTerm{Group: group, Epoch: epoch})
	path := s.masterTermPath()
	f, err := s.fs.OpenFile(path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.Write(b)
		err = errors.Join(err, f.Sync(), f.Close())
	}
	if err == nil {
		err = s.fs.Rename(path+".tmp", path)
	}
	if err != nil {
		s.log.Warn("cannot record in store.root that this store is the delay group's master; were it ever to rejoin as slave, the check of its tail would be skipped", "path", path, "error", err)
	}
}

func (s *Server) readMasterTerm() (masterTerm, bool) {
	f, err := s.fs.OpenFile(s.masterTermPath(), os.O_RDONLY, 0)
	if err != nil {
		return masterTerm{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	var t masterTerm
	if err != nil || json.Unmarshal(b, &t) != nil {
		return masterTerm{}, false
	}
	return t, true
}

// checkRejoin runs before a DELAY_SLAVE copies: a store that was a master's
// may copy only if its logs end within the next term's takeover point.
func (r *registrar) checkRejoin(ctx context.Context) error {
	s := r.s
	t, ok := s.readMasterTerm()
	msgEnd, dispEnd := s.ds.LogEnd(delaystore.MessageLog), s.ds.LogEnd(delaystore.DispatchLog)
	if !ok || (msgEnd == 0 && dispEnd == 0) {
		return nil
	}
	l := &leaser{s: s, group: r.group, addr: r.brokerA}
	defer l.close()
	resp, _, err := l.call(ctx, protocol.LeaseStatus)
	var next *protocol.LeaseEpoch
	if err == nil && t.Group == r.group {
		for i, e := range resp.Epochs {
			if e.Epoch > t.Epoch {
				next = &resp.Epochs[i]
				break
			}
		}
	}
	if next != nil && msgEnd <= next.MessageOffset && dispEnd <= next.ActionOffset {
		s.log.Info("this store was the delay group's master; its logs end within the new master's takeover point, so it rejoins as slave",
			"term", t.Epoch, "new_term", next.Epoch, "message_log_end", msgEnd, "takeover_message_offset", next.MessageOffset,
			"dispatch_log_end", dispEnd, "takeover_dispatch_offset", next.ActionOffset)
		if err := s.fs.Remove(s.masterTermPath()); err != nil {
			s.log.Warn("cannot remove the master term record", "error", err)
		}
		return nil
	}
	why := "the metaserver records no takeover point after its term (a manual swap, or a metaserver without BROKER_LEASE)"
	if err != nil {
		why = "the metaserver's terms cannot be read (" + explain(err) + ")"
	} else if next != nil {
		why = fmt.Sprintf("term %d (%s) took over at message-log offset %d and dispatch-log offset %d, and this store goes on to %d and %d",
			next.Epoch, next.Holder, next.MessageOffset, next.ActionOffset, msgEnd, dispEnd)
	}
	return &fatalError{fmt.Errorf("this store (%s) was the DELAY_MASTER of group %s and may hold messages or dispatch records the new master never had: %s. "+
		"To rejoin as slave, stop this server, delete its store.root and start it again: it copies the new master's logs (what it held and acknowledged is on the new master)",
		s.settings.Store.Root, t.Group, why)}
}
