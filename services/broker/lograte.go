package broker

import (
	"sync"
	"time"
)

// logEvery is the period of a rate-limited log line (logLimiter).
const logEvery = 10 * time.Second

// logLimiter lets one log line through per logEvery and counts the ones it
// holds back, so that an error every request makes (a full disk refusing
// every send while producers retry) is one line per period with a count
// instead of a flood. The zero value is ready.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many lines were held back since
// the last one that was let through.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
