package metaserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// pausingStore stops a refresh after it has read the broker groups, until
// the test lets it go: what a slow database read looks like to the cache.
type pausingStore struct {
	store.Store
	paused  chan struct{} // receives once a paused read has been made
	release chan struct{}
	pause   bool
}

func (p *pausingStore) ListBrokerGroups(ctx context.Context) ([]store.BrokerGroup, error) {
	gs, err := p.Store.ListBrokerGroups(ctx)
	if p.pause {
		p.pause = false
		p.paused <- struct{}{}
		<-p.release
	}
	return gs, err
}

func newPausingCache(t *testing.T) (*cache, *pausingStore) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.UpsertBrokerGroup(ctx, store.BrokerGroup{Name: "g1", MasterAddress: "127.0.0.1:1", State: store.StateNRW, UpdateTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p := &pausingStore{Store: st, paused: make(chan struct{}), release: make(chan struct{})}
	c := newCache(p, hclog.NewNullLogger(), newMetrics())
	if err := c.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return c, p
}

// pausedRefresh starts a refresh that stops after reading the groups; the
// returned channel yields its error once the test has closed p.release.
func pausedRefresh(p *pausingStore, c *cache) <-chan error {
	p.pause = true
	done := make(chan error, 1)
	go func() { done <- c.refresh(context.Background()) }()
	<-p.paused
	return done
}

func groupState(c *cache) int { return c.get().groups["g1"].State }

// A broker's ONLINE that lands while a refresh is reading the database must
// survive that refresh: the refresh read the group as NRW, and publishing
// only that kept the group out of routing until the next refresh (seen as
// "none is live (g=NRW)" for seconds after the broker said it was online).
func TestCacheRefreshKeepsChangesMadeWhileItLoads(t *testing.T) {
	c, p := newPausingCache(t)
	done := pausedRefresh(p, c)

	g := store.BrokerGroup{Name: "g1", MasterAddress: "127.0.0.1:1", State: store.StateRW, UpdateTime: time.Now()}
	if err := p.UpsertBrokerGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	c.update(func(sn *snapshot) { sn.groups[g.Name] = g }) // what heartbeats.record does for ONLINE
	if got := groupState(c); got != store.StateRW {
		t.Fatalf("state right after the update = %d, want RW (%d)", got, store.StateRW)
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := groupState(c); got != store.StateRW {
		t.Fatalf("state after a refresh that read the database before the ONLINE = %d, want RW (%d): the ONLINE was lost", got, store.StateRW)
	}
}

// A refresh that started before another one that has already published read
// older data, and must not replace it.
func TestCacheDropsARefreshOlderThanThePublishedOne(t *testing.T) {
	c, p := newPausingCache(t)
	slow := pausedRefresh(p, c)

	// A management write, published by a refresh of its own (as
	// management.go does), while the slow refresh holds what it read before.
	g := store.BrokerGroup{Name: "g1", MasterAddress: "127.0.0.1:1", State: store.StateRW, UpdateTime: time.Now()}
	if err := p.UpsertBrokerGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if err := c.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := groupState(c); got != store.StateRW {
		t.Fatalf("state after the second refresh = %d, want RW (%d)", got, store.StateRW)
	}
	close(p.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if got := groupState(c); got != store.StateRW {
		t.Fatalf("state after the older refresh finished = %d, want RW (%d): it published its older read", got, store.StateRW)
	}
}
