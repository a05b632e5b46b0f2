package remoting

import (
	"fmt"
	"sync"
	"time"
)

// Defaults of the limits in ServerConfig.
const (
	// DefaultMaxConnections bounds a port's open connections. An idle
	// connection costs about 40 KiB (goroutine and read buffer); QMQ peers
	// keep one connection per client process and server.
	DefaultMaxConnections = 10000
	// DefaultFrameReadTimeout is how long a frame may take to arrive once
	// its first byte did: far above what a 64 MiB frame needs on a LAN, far
	// below the minutes a peer trickling bytes would hold its memory.
	DefaultFrameReadTimeout = 30 * time.Second
	// DefaultMemoryBudget bounds the request body bytes a server holds at
	// once (raised to MaxFrameSize if that is larger).
	DefaultMemoryBudget = 256 << 20
)

// budget bounds the bytes of request bodies read and not yet served, across
// a server's connections. A frame's first buffer (at most what the reader
// has buffered, 32 KiB) is always granted, so that small requests are
// served even when large ones have used the budget up; every further buffer
// waits for room.
type budget struct {
	limit int64

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed (and cleared) by the next release; nil when nobody waits
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// take grants n bytes even beyond the limit.
func (b *budget) take(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// acquire grants n bytes once they fit, or fails at deadline or when done
// is closed.
func (b *budget) acquire(n int64, deadline time.Time, done <-chan struct{}) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		freed, used := b.freed, b.used
		b.mu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return &budgetError{need: n, used: used, limit: b.limit}
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-freed:
		case <-timer.C:
			timer = nil
			b.mu.Lock()
			used = b.used
			b.mu.Unlock()
			return &budgetError{need: n, used: used, limit: b.limit}
		case <-done:
			return errConnClosing
		}
	}
}

func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// budgetError ends a frame that found no room in the memory budget within
// its read timeout.
type budgetError struct {
	need, used, limit int64
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("frame memory budget exhausted: request bodies in flight hold %d of %d bytes and this frame needed %d more within the frame read timeout",
		e.used, e.limit, e.need)
}

var errConnClosing = fmt.Errorf("remoting: connection closing")
