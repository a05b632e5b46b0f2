package metaserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/store"
)

// heartbeats tracks broker masters. ONLINE upserts the group as RW, each
// HEARTBEAT refreshes update_time (and the state, when the broker reports a
// different one, e.g. R on slave lag), OFFLINE sets NRW. A sweeper marks a
// group NRW when neither this metaserver nor the database (written by
// whichever metaserver the broker talks to) has seen a heartbeat for
// heartbeat.timeout.ms.
type heartbeats struct {
	s        *Server
	mu       sync.Mutex
	lastSeen map[string]time.Time
}

func newHeartbeats(s *Server) *heartbeats {
	return &heartbeats{s: s, lastSeen: map[string]time.Time{}}
}

func (h *heartbeats) record(ctx context.Context, r protocol.BrokerRegisterRequest) error {
	now := time.Now()
	state := int(r.State)
	if state < store.StateRW || state > store.StateNRW {
		state = store.StateRW
	}
	g := store.BrokerGroup{Name: r.GroupName, Kind: roleKind(int(r.Role)), MasterAddress: r.BrokerAddress, UpdateTime: now}
	var err error
	switch r.RequestType {
	case protocol.BrokerRequestOnline:
		g.State = store.StateRW
		h.s.log.Info("broker master online", "group", r.GroupName, "address", r.BrokerAddress, "role", roleName(int(r.Role)))
		err = h.s.store.UpsertBrokerGroup(ctx, g)
	case protocol.BrokerRequestHeartbeat:
		g.State = state
		prev, known := h.s.cache.get().groups[r.GroupName]
		if !known || prev.MasterAddress != r.BrokerAddress || prev.Kind != g.Kind {
			err = h.s.store.UpsertBrokerGroup(ctx, g) // a group we have not seen online (e.g. meta restarted)
		} else {
			if prev.State != state {
				h.s.log.Info("broker group state changed by heartbeat", "group", r.GroupName, "from", stateName(prev.State), "to", stateName(state))
			}
			_, err = h.s.store.UpdateBrokerGroupState(ctx, r.GroupName, state, now)
		}
	case protocol.BrokerRequestOffline:
		g.State = store.StateNRW
		h.s.log.Info("broker master offline", "group", r.GroupName, "address", r.BrokerAddress)
		_, err = h.s.store.UpdateBrokerGroupState(ctx, r.GroupName, store.StateNRW, now)
	}
	h.mu.Lock()
	if r.RequestType == protocol.BrokerRequestOffline {
		delete(h.lastSeen, r.GroupName)
	} else {
		h.lastSeen[r.GroupName] = now
	}
	h.mu.Unlock()
	// Serve the new state at once, even if the database write failed: a broker
	// must not drop out of routing because MySQL is briefly away.
	h.s.cache.update(func(sn *snapshot) {
		if old, ok := sn.groups[g.Name]; ok {
			g.Tag = old.Tag
		}
		sn.groups[g.Name] = g
	})
	if err != nil {
		h.s.log.Warn("cannot save broker group state; serving it from memory", "group", r.GroupName, "error", err)
		if r.RequestType == protocol.BrokerRequestOnline {
			return fmt.Errorf("metaserver cannot save ONLINE of group %s to its database: %v; the broker should retry", r.GroupName, err)
		}
	}
	return nil
}

// sweep marks groups NRW whose last heartbeat is older than the timeout. It
// runs only while the database answers: with the database away we cannot
// see heartbeats that reach other metaservers, and must not drop live groups.
func (h *heartbeats) sweep(ctx context.Context) {
	healthy, _, _ := h.s.cache.status()
	if !healthy {
		return
	}
	timeout := h.s.dynamic().HeartbeatTimeout
	now := time.Now()
	cutoff := now.Add(-timeout)
	for _, g := range h.s.cache.get().groups {
		if g.State == store.StateNRW {
			continue
		}
		h.mu.Lock()
		last, seen := h.lastSeen[g.Name]
		h.mu.Unlock()
		if g.UpdateTime.After(last) {
			last = g.UpdateTime
		}
		if !seen && last.IsZero() || last.After(cutoff) {
			continue
		}
		n, err := h.s.store.MarkBrokerGroupNRWIfStale(ctx, g.Name, cutoff, now)
		if err != nil {
			h.s.log.Warn("cannot mark broker group NRW", "group", g.Name, "error", err)
			continue
		}
		if n == 0 {
			continue // someone saw a fresher heartbeat; the next refresh brings it
		}
		h.s.m.heartbeatExpiry.Inc()
		h.s.log.Warn("broker group missed heartbeats; marked NRW (clients stop using it)", "group", g.Name, "master", g.MasterAddress, "last_heartbeat", last, "heartbeat.timeout.ms", timeout.Milliseconds())
		name := g.Name
		h.s.cache.update(func(sn *snapshot) {
			ng := sn.groups[name]
			ng.State = store.StateNRW
			ng.UpdateTime = now
			sn.groups[name] = ng
		})
	}
}

func (h *heartbeats) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.sweep(ctx)
		}
	}
}
