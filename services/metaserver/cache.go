package metaserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// snapshot is one consistent read of the store. It is never modified after
// it is published; local changes publish a modified copy.
type snapshot struct {
	brokers  []store.Broker
	groups   map[string]store.BrokerGroup
	routes   routeTable
	subjects map[string]store.SubjectInfo
	readonly map[string]map[string]bool // subject (or "*") -> broker groups
	offline  map[offlineKey]int
	loadedAt time.Time
}

type offlineKey struct{ clientID, subject, group string }

// cache serves the metaserver's reads from memory and refreshes them from the
// store every refresh period. A failed refresh keeps the previous snapshot:
// that is what lets existing routes survive a database outage.
type cache struct {
	store store.Store
	log   hclog.Logger
	m     *metrics

	mu       sync.RWMutex
	snap     *snapshot
	healthy  bool      // last refresh succeeded
	lastErr  error     // last refresh error
	lastOKAt time.Time // when the last refresh succeeded

	// A refresh reads the store without the lock, so local changes published
	// meanwhile (update) would be lost when it publishes what it read: a
	// broker's ONLINE, say, read as NRW until the next refresh. Changes made
	// while any refresh loads are kept, numbered, and replayed onto what each
	// refresh read; a refresh that started before the one last published is
	// dropped, since it read older data.
	loads      int                 // refreshes loading now
	changes    []func(s *snapshot) // local changes since changeBase, while loads > 0
	changeBase uint64              // number of changes[0]
	changeNext uint64              // number the next change gets
	tickets    uint64              // refreshes started
	published  uint64              // ticket of the refresh whose read is published
}

func newCache(st store.Store, log hclog.Logger, m *metrics) *cache {
	return &cache{store: st, log: log, m: m, snap: emptySnapshot()}
}

func emptySnapshot() *snapshot {
	return &snapshot{
		groups:   map[string]store.BrokerGroup{},
		subjects: map[string]store.SubjectInfo{},
		readonly: map[string]map[string]bool{},
		offline:  map[offlineKey]int{},
	}
}

func (c *cache) get() *snapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.snap
}

// status reports whether the store answered the last refresh.
func (c *cache) status() (healthy bool, lastOK time.Time, lastErr error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.healthy, c.lastOKAt, c.lastErr
}

// refresh reads everything from the store and publishes it. On failure the old
// snapshot stays; the transition to and from failure is logged once each.
func (c *cache) refresh(ctx context.Context) error {
	c.mu.Lock()
	c.tickets++
	ticket, firstChange := c.tickets, c.changeNext
	c.loads++
	c.mu.Unlock()
	s, err := c.load(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		for n := max(firstChange, c.changeBase); n < c.changeNext; n++ {
			c.changes[n-c.changeBase](s)
		}
	}
	if c.loads--; c.loads == 0 {
		c.changes, c.changeBase = nil, c.changeNext
	}
	if err != nil {
		if c.healthy || c.lastOKAt.IsZero() {
			c.log.Error("cannot refresh metadata from the database; serving the last good copy (existing subjects and consumers keep working, new subjects and brokers cannot be added until it is back)",
				"error", err, "last_good", c.lastOKAt)
		}
		c.healthy, c.lastErr = false, err
		c.m.refreshFailures.Inc()
		return err
	}
	if !c.healthy && !c.lastOKAt.IsZero() {
		c.log.Info("database reachable again; metadata refreshed", "down_since", c.lastOKAt)
	}
	c.healthy, c.lastErr = true, nil
	if s.loadedAt.After(c.lastOKAt) {
		c.lastOKAt = s.loadedAt
	}
	c.m.lastRefresh.SetToCurrentTime()
	if ticket > c.published {
		c.snap, c.published = s, ticket
	}
	return nil
}

func (c *cache) load(ctx context.Context) (*snapshot, error) {
	s := emptySnapshot()
	var err error
	if s.brokers, err = c.store.ListBrokers(ctx); err != nil {
		return nil, err
	}
	groups, err := c.store.ListBrokerGroups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		s.groups[g.Name] = g
	}
	routes, err := c.store.ListSubjectRoutes(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]store.SubjectRoute, len(routes))
	for _, r := range routes {
		byName[r.Subject] = r
	}
	s.routes = newRouteTable(byName)
	infos, err := c.store.ListSubjectInfos(ctx)
	if err != nil {
		return nil, err
	}
	for _, i := range infos {
		s.subjects[i.Name] = i
	}
	ro, err := c.store.ListReadonlySettings(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range ro {
		if s.readonly[r.Subject] == nil {
			s.readonly[r.Subject] = map[string]bool{}
		}
		s.readonly[r.Subject][r.BrokerGroup] = true
	}
	off, err := c.store.ListOfflineStates(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range off {
		s.offline[offlineKey{o.ClientID, o.Subject, o.ConsumerGroup}] = o.State
	}
	s.loadedAt = time.Now()
	return s, nil
}

// update publishes a copy of the snapshot changed by fn. Used after a local
// write so that the change is visible before the next refresh.
// fn must only set entries (a refresh in flight replays it onto the
// snapshot it read).
func (c *cache) update(fn func(s *snapshot)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := *c.snap
	n.groups = cloneMap(c.snap.groups)
	n.routes = c.snap.routes.copy()
	n.offline = cloneMap(c.snap.offline)
	fn(&n)
	c.snap = &n
	if c.loads > 0 {
		c.changes = append(c.changes, fn)
		c.changeNext++
	}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// run refreshes every period until ctx is done.
func (c *cache) run(ctx context.Context, period func() time.Duration) {
	t := time.NewTimer(period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, period()+5*time.Second)
			_ = c.refresh(rctx)
			cancel()
			t.Reset(period())
		}
	}
}

func (s *snapshot) String() string {
	return fmt.Sprintf("%d brokers, %d groups, %d routes", len(s.brokers), len(s.groups), s.routes.len())
}
