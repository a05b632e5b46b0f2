package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/storage/diskspace"
	"github.com/qmq-go/qmq/storage/vfs"
)

// ErrDiskFull matches, with errors.Is, the errors of writes refused because
// the disk is full; errors.As finds the *DiskFullError with the details.
var ErrDiskFull = diskspace.ErrFull

// DiskFullError says which directory ran out of space, how much was free
// and how much was needed.
type DiskFullError = diskspace.FullError

// reserveWhat explains disk.free.min.bytes in a refusal.
const reserveWhat = "the broker's reserve (disk.free.min.bytes), kept free so that the logs of the messages already stored can still be written"

// diskGuard decides whether the store takes new messages: not while the
// free space of store.root is below disk.free.min.bytes (the low
// watermark), and not after a log was refused space (a segment it could not
// allocate) until that much is free again on top of the reserve. It checks
// the free space every disk.check.interval.ms, so the store recovers by
// itself once an operator frees space; the next append then retries the
// allocation.
type diskGuard struct {
	fs      vfs.FS
	root    string
	reserve int64
	log     hclog.Logger
	m       *metrics

	mu      sync.Mutex
	full    *DiskFullError // nil: writes are taken
	needed  int64          // what the last refused allocation needs free (0: none)
	changed chan struct{}  // closed and replaced when full changes
	usageOK bool           // false after a failed Usage (logged once)
	// A refused write is not retried before holdUntil, however much space
	// the file system reports: when it reports enough and still refuses (a
	// quota, no inodes left), retries back off from a second to a minute
	// instead of flapping every check. refusals counts them; a write that
	// succeeds resets it (wrote).
	holdUntil time.Time
	refusals  int
	refused   atomic.Bool // refusals > 0, read without mu on every append
}

// Retries of a refused write back off between these.
const (
	minDiskHold = time.Second
	maxDiskHold = time.Minute
)

func newDiskGuard(fs vfs.FS, root string, reserve int64, log hclog.Logger, m *metrics) *diskGuard {
	return &diskGuard{fs: fs, root: root, reserve: reserve, log: log, m: m, changed: make(chan struct{}), usageOK: true}
}

// state is the reason writes are refused, nil when they are taken.
func (g *diskGuard) state() *DiskFullError {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.full
}

// changes returns a channel closed at the next change of state.
func (g *diskGuard) changes() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.changed
}

// observe records a write error: a full disk refuses new messages from now
// until check finds the space the write needed.
func (g *diskGuard) observe(err error) {
	var fe *DiskFullError
	if !errors.As(err, &fe) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.needed = fe.Needed
	g.refusals++
	g.refused.Store(true)
	g.holdUntil = time.Now().Add(min(minDiskHold<<min(g.refusals-1, 10), maxDiskHold))
	g.set(fe)
}

// wrote records a successful write: the next refusal is held the shortest time.
func (g *diskGuard) wrote() {
	if !g.refused.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refusals = 0
	g.refused.Store(false)
}

// check measures the free space and updates the state.
func (g *diskGuard) check() {
	u, err := g.fs.Usage(g.root)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		// Without a measurement the reserve is not enforced, and a refused
		// write is retried when its hold ends: the next append's own
		// allocation decides.
		if g.usageOK && !errors.Is(err, errors.ErrUnsupported) {
			g.log.Warn("cannot measure the free space of store.root; disk.free.min.bytes is not enforced until it can be", "store.root", g.root, "error", err)
		}
		g.usageOK = false
		if g.full != nil && !time.Now().Before(g.holdUntil) {
			g.needed = 0
			g.set(nil)
		}
		return
	}
	if !g.usageOK {
		g.log.Info("free space of store.root measurable again", "store.root", g.root)
		g.usageOK = true
	}
	g.m.diskFree.Set(float64(u.Free))
	switch {
	case u.Free < g.reserve:
		g.set(&DiskFullError{Path: g.root, Free: u.Free, Total: u.Total, Needed: g.reserve, What: reserveWhat})
	case g.needed > 0 && (u.Free < g.needed+g.reserve || time.Now().Before(g.holdUntil)):
		if g.full != nil {
			fe := *g.full // keep the refused write's reason, with the space free now
			fe.Free, fe.Total = u.Free, u.Total
			g.full = &fe
		}
	default:
		g.needed = 0
		g.set(nil)
	}
}

// set changes the state (mu held), logging and signalling transitions.
func (g *diskGuard) set(full *DiskFullError) {
	was := g.full
	g.full = full
	if (was == nil) == (full == nil) {
		return
	}
	close(g.changed)
	g.changed = make(chan struct{})
	if full != nil {
		g.m.diskFull.Set(1)
		g.log.Error("disk full: refusing new messages until space is freed (producers are told why and go to other broker groups)", "reason", full.Error())
	} else {
		g.m.diskFull.Set(0)
		g.log.Info("disk space available again: taking new messages", "store.root", g.root, "disk.free.min.bytes", g.reserve)
	}
}

// run checks the free space every interval until ctx ends.
func (g *diskGuard) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.check()
		}
	}
}
