package delay

import (
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// MaxDelay is the furthest ahead a message may be scheduled: QMQ's delay
// server moves later schedule times to now plus two years (OverDelayFilter).
const MaxDelay = 2 * 365 * 24 * time.Hour

// unflaggedDelay is when a message sent to the delay server without the
// delay flag is due: QMQ treats it as a producer's configuration error and
// sends it on ten seconds after receipt (ReceivedDelayMessageProcessor).
const unflaggedDelay = 10 * time.Second

// scheduleTime is when a received message is due, in unix ms, by QMQ's
// rules: the schedule time the producer wrote in the expire-time slot when
// the delay flag is set; a time in the past (or zero or negative) is now;
// beyond MaxDelay it is now + MaxDelay. The message's bytes keep what the
// producer wrote: only the store's schedule time is adjusted.
func scheduleTime(m *protocol.Message, now time.Time) int64 {
	nowMs := now.UnixMilli()
	if m.Flag&protocol.MessageFlagDelay == 0 {
		return nowMs + unflaggedDelay.Milliseconds()
	}
	at := m.ExpireOrScheduleTime
	switch {
	case at < nowMs:
		return nowMs
	case at > nowMs+MaxDelay.Milliseconds():
		return nowMs + MaxDelay.Milliseconds()
	}
	return at
}
