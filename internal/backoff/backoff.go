package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential retry schedule with jitter: set Min and Max,
// call Next (or Wait) after each failure and Reset after a success.
type Backoff struct {
	// Min is the first delay (before jitter); at most 0: no waiting.
	Min time.Duration
	// Max caps the delays; below Min it counts as Min.
	Max time.Duration

	step time.Duration // the un-jittered delay Next returns next; 0: Min
}

// Next returns the next delay, drawn from [d/2, d] where d doubles from Min
// at each call up to Max.
func (b *Backoff) Next() time.Duration {
	if b.Min <= 0 {
		return 0
	}
	top := max(b.Max, b.Min)
	if b.step <= 0 {
		b.step = b.Min
	}
	d := min(b.step, top)
	if b.step > top/2 {
		b.step = top // doubling would pass Max (or overflow)
	} else {
		b.step *= 2
	}
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}

// Reset starts the schedule again at Min (after a success).
func (b *Backoff) Reset() { b.step = 0 }

// Wait sleeps for Next() or until ctx ends; it returns ctx's error then.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits d, or until ctx ends and then returns ctx.Err(). It returns
// ctx.Err() at once if ctx has already ended, even for d ≤ 0.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
