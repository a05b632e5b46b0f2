package consumerlog

import (
	"sync"
	"sync/atomic"
)

// notifier hands out a channel that is closed at the next fire. Waiters
// share one channel, so a long-poll costs no goroutine and no allocation
// beyond the channel; fire replaces it by nil and the next wait makes a new
// one.
//
// fire is on the Put path and skips the mutex when nobody waits. That is
// safe because the writer publishes the new max sequence before loading ch,
// and a waiter stores ch before re-reading the max sequence (both atomics,
// sequentially consistent): either fire sees the channel, or the waiter sees
// the new sequence.
type notifier struct {
	mu     sync.Mutex
	ch     atomic.Pointer[chan struct{}]
	closed bool // after shutdown every wait gets a closed channel
}

func (n *notifier) wait() <-chan struct{} {
	if p := n.ch.Load(); p != nil {
		return *p
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		c := make(chan struct{})
		close(c)
		return c
	}
	if p := n.ch.Load(); p != nil {
		return *p
	}
	c := make(chan struct{})
	n.ch.Store(&c)
	return c
}

func (n *notifier) fire() {
	if n.ch.Load() == nil {
		return
	}
	n.mu.Lock()
	if p := n.ch.Swap(nil); p != nil {
		close(*p)
	}
	n.mu.Unlock()
}

// shutdown wakes every waiter and makes later waits return at once.
func (n *notifier) shutdown() {
	n.mu.Lock()
	n.closed = true
	if p := n.ch.Swap(nil); p != nil {
		close(*p)
	}
	n.mu.Unlock()
}
