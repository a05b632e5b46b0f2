package replication

import (
	"context"
	"sync"
	"sync/atomic"
)

// slaveWaiters implements Master.WaitSlaveWrote (QMQ's wait.slave.wrote):
// callers wait until a sync request of the slave reports a message-log
// offset at or past their end.
//
// Waiters are grouped: every waiter arriving between two reports joins the
// same open group, whose end is the largest of its members'; a report seals
// the open group (later waiters start a new one) and completes every group
// whose end it reaches. A group costs one allocation and one channel however
// many waiters it has, a report wakes only the groups it completes, and no
// goroutine is started per waiter. Groups are few: at most one per report
// still outstanding.
type slaveWaiters struct {
	reported atomic.Int64 // the latest report (-1: none); the fast path reads it
	waiting  atomic.Int64 // callers blocked now (metrics)

	mu     sync.Mutex
	groups []*waitGroup // unfinished groups, oldest first; the last one may be open
	open   *waitGroup   // nil once sealed by a report
	closed chan struct{}
}

type waitGroup struct {
	end  int64
	done chan struct{}
}

func newSlaveWaiters() *slaveWaiters {
	w := &slaveWaiters{closed: make(chan struct{})}
	w.reported.Store(-1)
	return w
}

// wait blocks until a report reaches end (nil), ctx ends (ctx.Err()) or the
// waiters are closed (errClosed).
func (w *slaveWaiters) wait(ctx context.Context, end int64) error {
	if w.reported.Load() >= end {
		return nil
	}
	w.mu.Lock()
	select {
	case <-w.closed:
		w.mu.Unlock()
		return errClosed
	default:
	}
	if w.reported.Load() >= end {
		w.mu.Unlock()
		return nil
	}
	g := w.open
	if g == nil {
		g = &waitGroup{end: end, done: make(chan struct{})}
		w.open = g
		w.groups = append(w.groups, g)
	} else if end > g.end {
		g.end = end
	}
	w.mu.Unlock()
	w.waiting.Add(1)
	defer w.waiting.Add(-1)
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.closed:
		return errClosed
	}
}

// report records the slave's message-log offset: it seals the open group
// and completes every group whose end it reaches. Offsets may go down (a
// wiped slave starts again).
func (w *slaveWaiters) report(offset int64) {
	w.reported.Store(offset)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open = nil
	if len(w.groups) == 0 {
		return
	}
	kept := w.groups[:0]
	for _, g := range w.groups {
		if g.end <= offset {
			close(g.done)
		} else {
			kept = append(kept, g)
		}
	}
	clear(w.groups[len(kept):])
	w.groups = kept
}

// close fails every current and future wait with errClosed.
func (w *slaveWaiters) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.closed:
	default:
		close(w.closed)
	}
}
