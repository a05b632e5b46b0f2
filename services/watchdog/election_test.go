package watchdog

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// leaderWatch samples which watchdogs lead, every few milliseconds, and
// records any moment when two did at once.
type leaderWatch struct {
	overlaps atomic.Int64
	stop     chan struct{}
	done     sync.WaitGroup
}

func watchLeaders(ws ...*watchdog) *leaderWatch {
	lw := &leaderWatch{stop: make(chan struct{})}
	lw.done.Add(1)
	go func() {
		defer lw.done.Done()
		for {
			select {
			case <-lw.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n := 0
			for _, w := range ws {
				if w.Leading() {
					n++
				}
			}
			if n > 1 {
				lw.overlaps.Add(1)
			}
		}
	}()
	return lw
}

func (lw *leaderWatch) end() int64 { close(lw.stop); lw.done.Wait(); return lw.overlaps.Load() }

func leaderOf(ws ...*watchdog) *watchdog {
	for _, w := range ws {
		if w.Leading() {
			return w
		}
	}
	return nil
}

// Two watchdogs with QMQ's timings (lease 5 s, renewal every second): one
// leads and sends; the leader killed (it stops without giving the lead
// up, as with kill -9), the other takes over within lease + one interval
// and sends what is left; never do both lead at once.
func TestTakeoverAfterLeaderKilled(t *testing.T) {
	testTakeover(t, true, "")
}

// A leader stopped cleanly gives the lead up: the other takes over at its
// next attempt.
func TestTakeoverAfterLeaderStopped(t *testing.T) {
	testTakeover(t, false, "")
}

// testTakeover runs two watchdogs and stops (or kills) the leader: on the
// leader_election table, or on the Consul lock when consulAddr is set.
// It returns how long the takeover took.
func testTakeover(t *testing.T, kill bool, consulAddr string) time.Duration {
	e := startEnv(t)
	subject := fmt.Sprintf("wd.takeover.%d", time.Now().UnixNano())
	in := e.startInbox(t, subject)
	db := mariaClient(t)
	e.addDB(t, db.url, "root", "")
	s := e.settings()
	s.ElectInterval, s.Lease = DefaultSettings().ElectInterval, DefaultSettings().Lease
	if consulAddr != "" {
		s = consulSettings(t, s, consulAddr)
	}
	a := e.start(t, "wd-a", s)
	b := e.start(t, "wd-b", s)
	lw := watchLeaders(a, b)
	testutil.Eventually(t, 10*time.Second, "one watchdog leads", func() bool { return leaderOf(a, b) != nil })

	var ids []string
	add := func(n int) {
		for range n {
			id := fmt.Sprintf("261207.3.%d", len(ids))
			ids = append(ids, id)
			db.insert(t, javaContent(id, subject, nil, map[string]string{"n": fmt.Sprint(len(ids))}))
		}
	}
	add(20)
	testutil.Eventually(t, 30*time.Second, "the first rows arrive", func() bool { return db.count(t) == 0 && in.get(ids[len(ids)-1]) != nil })
	leader := leaderOf(a, b)
	other := a
	if leader == a {
		other = b
	}
	if leader == nil {
		t.Fatal("no leader after sending")
	}
	if got := other.logs.Count("resent rows left by applications"); got != 0 {
		t.Errorf("the follower %s resent rows", other.node)
	}
	if kill {
		leader.abandon.Store(true)
	}
	stopped := time.Now()
	leader.stop(t)
	add(20)
	testutil.Eventually(t, 15*time.Second, "the other watchdog leads", func() bool { return other.Leading() })
	took := time.Since(stopped)
	// A killed leader's lead is free once its lease (the table's) or its
	// check's TTL and the lock-delay (Consul's) have run out after its
	// last renewal, at most one interval before the kill; the other's
	// next attempt follows within an interval.
	every, free := s.ElectInterval, s.Lease
	if consulAddr != "" {
		every, free = s.ConsulCheckTTL/3, s.ConsulCheckTTL+s.ConsulLockDelay
	}
	limit := every + 500*time.Millisecond
	if kill {
		limit = free + 2*every
	}
	t.Logf("takeover after the leader was %s: %v", map[bool]string{true: "killed", false: "stopped"}[kill], took)
	if took > limit {
		t.Errorf("takeover took %v, want at most %v", took, limit)
	}
	if kill && took < free-every {
		t.Errorf("takeover after %v, before the killed leader's lead (%v after its last renewal) could have expired", took, free)
	}
	testutil.Eventually(t, 30*time.Second, "the rest arrive", func() bool {
		for _, id := range ids {
			if in.get(id) == nil {
				return false
			}
		}
		return db.count(t) == 0
	})
	if n := lw.end(); n != 0 {
		t.Errorf("two watchdogs led at once in %d samples", n)
	}
	if n := in.dups(); n != 0 {
		t.Errorf("%d messages arrived twice", n)
	}
	return took
}
