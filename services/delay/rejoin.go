package delay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/lease"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// A former master's logs may hold a tail its slave never copied: messages
// it stored but did not acknowledge, dispatch records written after the
// slave's last copy. The new master writes other bytes at those offsets,
// so such a store must not replicate from it: copying would continue from
// an offset inside the new master's records. A DELAY_MASTER therefore
// records its term in store.root (masterFile); a store started as
// DELAY_SLAVE with that record compares its ends with the takeover point
// of the next term (the metaserver's epochs, written by a lease
// promotion). Within it, it copies. Past it, the tail is cut like the
// broker's (services/broker, failover.go): registrar.run ends with a
// rejoinCut, Run closes the store, delaystore.TruncateLogs cuts both logs
// at the takeover point (and the schedule records and checkpoint marks
// that derive from the tail), and the server stops asking to be started
// again; started again, its ends are within the takeover point and it
// copies the new master. A master that learns it lost the group (lease
// refused, swapped row) asks for the takeover point on its way out
// (cutOnDemotion) and cuts then, so that one restart suffices. What is cut was never acknowledged with
// wait.slave.wrote (the new master has everything acknowledged), and its
// dispatch records are of deliveries the new master makes again.
//
// A manual swap records no takeover point by itself, and the new master's
// current ends do not tell where the two logs part (the old master may
// have written records at offsets the new master has filled since with
// others). So a DELAY_MASTER without failover.enable still records its
// term once at start (recordTerm: one BROKER_LEASE claim, never renewed):
// the metaserver keeps the term with this store's ends then, which for a
// slave promoted by a swap are exactly where its copy ends, the takeover
// point; the former master then rejoins as after a lease promotion. Only
// when no later term was recorded (a metaserver without BROKER_LEASE, or
// a claim refused) does such a store stop and ask for its store.root to be
// deleted.

// rejoinCut ends registrar.run: Run cuts the store's logs at messageEnd and
// dispatchEnd once the store is closed, then stops for a restart.
type rejoinCut struct {
	reason                  string
	messageEnd, dispatchEnd int64
}

func (e *rejoinCut) Error() string {
	return "rejoin as slave: " + e.reason + "; start the server again to copy the new master"
}

// cutTail runs after Close: the store must not be open.
func (s *Server) cutTail(c *rejoinCut) error {
	scfg := s.settings.Store
	scfg.Logger = s.log.Named("store")
	scfg.FS = s.fs
	scfg.MaxMessageSize = s.settings.MaxMessageSize
	begin := time.Now()
	oldMsg, oldDisp, err := delaystore.TruncateLogs(scfg, c.messageEnd, c.dispatchEnd)
	if err != nil {
		return fmt.Errorf("cut the unreplicated tail of this former master's logs: %w; to recover, stop this server, delete its store.root and start it: it copies the group's master", err)
	}
	s.log.Warn("cut the tail this former master never replicated",
		"message_log_end", c.messageEnd, "message_log_was", oldMsg, "message_bytes_cut", max(oldMsg-c.messageEnd, 0),
		"dispatch_log_end", c.dispatchEnd, "dispatch_log_was", oldDisp, "dispatch_bytes_cut", max(oldDisp-c.dispatchEnd, 0),
		"took", time.Since(begin))
	return nil
}

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
// may copy only if its logs end within the next term's takeover point; a
// rejoinCut asks for the cut when they go past it.
func (r *registrar) checkRejoin(ctx context.Context) error {
	s := r.s
	t, ok := s.readMasterTerm()
	msgEnd, dispEnd := s.ds.LogEnd(delaystore.MessageLog), s.ds.LogEnd(delaystore.DispatchLog)
	if !ok || (msgEnd == 0 && dispEnd == 0) {
		return nil
	}
	c := s.newLeaseClient()
	defer c.Close()
	resp, err := r.leaseCall(c)(ctx, protocol.LeaseStatus)
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
	if next != nil {
		return &rejoinCut{
			reason: fmt.Sprintf("this store was the DELAY_MASTER of group %s in term %d; term %d (%s) took over at message-log offset %d and dispatch-log offset %d, and this store goes on to %d and %d: the tail was never replicated and is cut",
				t.Group, t.Epoch, next.Epoch, next.Holder, next.MessageOffset, next.ActionOffset, msgEnd, dispEnd),
			messageEnd: min(msgEnd, next.MessageOffset), dispatchEnd: min(dispEnd, next.ActionOffset),
		}
	}
	why := "the metaserver records no takeover point after its term (a manual swap, or a metaserver without BROKER_LEASE)"
	if err != nil {
		why = "the metaserver's terms cannot be read (" + explain(err) + ")"
	}
	return &fatalError{fmt.Errorf("this store (%s) was the DELAY_MASTER of group %s and may hold messages or dispatch records the new master never had: %s. "+
		"To rejoin as slave, stop this server, delete its store.root and start it again: it copies the new master's logs (what it held and acknowledged is on the new master)",
		s.settings.Store.Root, t.Group, why)}
}

// cutOnDemotion turns the error that stops a demoted master into a
// rejoinCut when a later term recorded a takeover point: the cut then
// happens as the server stops, and the next start copies at once. Without
// one (a manual swap, the metaserver out of reach) the error is returned
// as is and the next start decides (checkRejoin).
func (r *registrar) cutOnDemotion(ctx context.Context, demoted error) error {
	s := r.s
	if r.epoch == 0 {
		return demoted // this master's term is unknown: the next start decides
	}
	c := s.newLeaseClient()
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.leaseCall(c)(cctx, protocol.LeaseStatus)
	if err != nil {
		s.log.Warn("cannot read the group's terms on the way out; the next start checks this store's tail", "error", explain(err))
		return demoted
	}
	for _, e := range resp.Epochs {
		if e.Epoch <= r.epoch {
			continue
		}
		// The takeover point is the slave's ends then: copies of this
		// store's bytes, so never past this store's ends; a log that ends
		// there already is left alone by the cut.
		return &rejoinCut{
			reason: fmt.Sprintf("%v; term %d (%s) took over at message-log offset %d and dispatch-log offset %d: what this store holds past them was never replicated and is cut",
				demoted, e.Epoch, e.Holder, e.MessageOffset, e.ActionOffset),
			messageEnd: e.MessageOffset, dispatchEnd: e.ActionOffset,
		}
	}
	return demoted
}

// recordTerm records this master's term at the metaserver without
// failover.enable (one claim of the lease, which nobody renews): the
// term's takeover point, this store's ends now, is where a former master
// cuts its tail after a manual swap (see above). Failing is not fatal:
// such a former master then asks for its store.root to be deleted.
func (r *registrar) recordTerm(ctx context.Context) {
	s := r.s
	c := s.newLeaseClient()
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := r.leaseRequest(protocol.LeaseClaim)
	// This master does not fence itself (no lease renewals): the term
	// says it is not safe to promote its slave automatically, so a slave
	// configured with failover.enable by mistake is refused a takeover
	// while this master may still be serving.
	req.WaitSlaveWrote = false
	resp, err := c.Call(cctx, req, 2*time.Second)
	switch {
	case err == nil:
		r.epoch = resp.Current().Epoch
		s.log.Info("master term recorded at the metaserver (for a former master's rejoin after a manual swap)", "group", r.group, "epoch", r.epoch,
			"message_log_end", s.ds.LogEnd(delaystore.MessageLog), "dispatch_log_end", s.ds.LogEnd(delaystore.DispatchLog))
	case errors.Is(err, lease.ErrUnsupported) || ctx.Err() != nil:
	default:
		s.log.Warn("cannot record this master's term at the metaserver; should this server be swapped out by hand, its rejoin as slave will need its store.root deleted",
			"group", r.group, "error", explain(err))
	}
}
