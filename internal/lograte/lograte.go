package lograte

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultInterval is the period of a Limiter whose Interval is zero.
const DefaultInterval = 10 * time.Second

// SuppressedKey is the log field that counts the lines held back since the
// previous one.
const SuppressedKey = "similar_lines_suppressed"

// Limiter lets one line through per Interval. The zero value is ready
// (DefaultInterval) and safe for concurrent use.
type Limiter struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether to log at now, and how many lines were held back
// since the last one let through.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	interval := l.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < interval {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// Log writes msg at level through log if the limiter allows it now, adding
// SuppressedKey when lines were held back.
func (l *Limiter) Log(log hclog.Logger, level hclog.Level, msg string, args ...any) {
	ok, n := l.Allow(time.Now())
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, SuppressedKey, n)
	}
	log.Log(level, msg, args...)
}

// Warn is Log at WARN.
func (l *Limiter) Warn(log hclog.Logger, msg string, args ...any) {
	l.Log(log, hclog.Warn, msg, args...)
}

// Error is Log at ERROR.
func (l *Limiter) Error(log hclog.Logger, msg string, args ...any) {
	l.Log(log, hclog.Error, msg, args...)
}
