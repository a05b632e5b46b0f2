package client

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/names"
)

// Reserved property keys (QMQ's BaseMessage.keys). Applications should not
// set them; the client does.
const (
	PropCreateTime      = "qmq_createTime"
	PropExpireTime      = "qmq_expireTime"
	PropConsumerGroup   = "qmq_consumerGroupName"
	PropScheduleReceive = "qmq_scheduleReceiveTime"
	PropTimes           = "qmq_times"
	PropMaxRetryNum     = "qmq_maxRetryNum"
	PropAppCode         = "qmq_appCode"
	PropPullOffset      = "qmq_pullOffset"
	PropCorruptData     = "qmq_corruptData"
	PropEnv             = "qmq_env"
	PropSubEnv          = "qmq_subEnv"
)

// BodyKey is the property that SetBody and Body use. QMQ messages have no
// body, only string properties; the body convention of this client is a
// large string (see SetLargeString) under the key "data", which a Java
// consumer reads with message.getLargeString("data").
const BodyKey = "data"

// largeStringPart is QMQ's split size for large strings: 32 KiB / 4 UTF-16
// code units, so a part always fits a str16 field.
const largeStringPart = 32 * 1024 / 4

// Message is one QMQ message. A producer creates it with
// Producer.NewMessage; a consumer receives it from Pull or Run and must
// acknowledge it with Ack (Run does so from the handler's result).
//
// Setters are not safe for concurrent use; a message must not be modified
// after it is handed to Send or SendAsync.
type Message struct {
	subject    string
	id         string
	createdAt  time.Time
	props      map[string]string // see props.go
	attrs      []protocol.Attr   // a received message's properties until modified
	tags       []string
	scheduleAt time.Time // zero: not a delay message

	// Consumer side.
	pullSubject string // subject the message was pulled from (%RETRY%... for retries)
	brokerGroup string
	pullOffset  int64
	group       string    // qmq_consumerGroupName of a received message in attrs form
	entry       *ackEntry // nil: not a received message (Ack does nothing)
	ack         ackEntry  // what entry points to
	acked       atomic.Bool
}

func newMessage(subject, id string, now time.Time) *Message {
	m := &Message{subject: subject, id: id, createdAt: now, props: make(map[string]string, 8), pullOffset: -1}
	m.props[PropCreateTime] = strconv.FormatInt(now.UnixMilli(), 10)
	return m
}

// NewTestMessage returns a message that looks delivered: it has subject,
// id and a copy of props (qmq_createTime set to now unless props has it),
// as a consumer would receive it. It is meant for tests of code that
// handles messages, such as handlers and idempotency checkers; Ack on it
// does nothing. Applications create messages with Producer.NewMessage.
func NewTestMessage(subject, id string, props map[string]string) *Message {
	now := time.Now()
	m := &Message{subject: subject, pullSubject: subject, id: id, createdAt: now, props: make(map[string]string, len(props)+1), pullOffset: -1}
	maps.Copy(m.props, props)
	if _, ok := m.props[PropCreateTime]; !ok {
		m.props[PropCreateTime] = strconv.FormatInt(now.UnixMilli(), 10)
	}
	return m
}

// Subject is the message's subject. A consumer sees the subscribed subject
// even for messages it pulled from the retry subject.
func (m *Message) Subject() string { return m.subject }

// ID is the message id (QMQ format yyMMdd.HHmmss.<ip>.<pid>.<counter>).
func (m *Message) ID() string { return m.id }

// CreatedAt is when the producer created the message (qmq_createTime).
func (m *Message) CreatedAt() time.Time {
	v, _ := m.prop(PropCreateTime)
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms)
	}
	return m.createdAt
}

// Property returns a property's value, "" if absent.
func (m *Message) Property(key string) string {
	v, _ := m.prop(key)
	return v
}

// LookupProperty returns a property's value and whether it is set.
func (m *Message) LookupProperty(key string) (string, bool) { return m.prop(key) }

// Properties returns a copy of all properties, reserved qmq_* keys included.
func (m *Message) Properties() map[string]string { return m.cloneProps() }

// SetProperty sets a string property. QMQ carries every property as a
// string (Java's typed setters write decimal text), so numbers and dates
// should be formatted the same way (dates as epoch milliseconds). Values
// longer than 32767 bytes cannot be sent: use SetLargeString.
func (m *Message) SetProperty(key, value string) *Message {
	m.setProp(key, value)
	return m
}

// SetLargeString stores a string of any length the way QMQ's
// setLargeString does: as is when it has at most 8192 UTF-16 code units,
// else split into properties key#part0, key#part1, ... of at most 8192 code
// units each.
func (m *Message) SetLargeString(key, value string) *Message {
	// Remove what a previous call left.
	m.delProp(key)
	for i := 0; ; i++ {
		k := key + "#part" + strconv.Itoa(i)
		if _, ok := m.prop(k); !ok {
			break
		}
		m.delProp(k)
	}
	if utf16Len(value) <= largeStringPart {
		return m.SetProperty(key, value)
	}
	part, units, start := 0, 0, 0
	for i, r := range value {
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		if units+n > largeStringPart {
			m.SetProperty(key+"#part"+strconv.Itoa(part), value[start:i])
			part, units, start = part+1, 0, i
		}
		units += n
	}
	if start < len(value) {
		m.SetProperty(key+"#part"+strconv.Itoa(part), value[start:])
	}
	return m
}

func utf16Len(s string) int {
	if len(s) <= largeStringPart {
		return len(s) // bytes >= code units
	}
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// LargeString reads a string written by SetLargeString (or Java's
// setLargeString).
func (m *Message) LargeString(key string) string {
	if v, ok := m.prop(key); ok {
		return v
	}
	var b strings.Builder
	for i := 0; ; i++ {
		v, ok := m.prop(key + "#part" + strconv.Itoa(i))
		if !ok {
			break
		}
		b.WriteString(v)
	}
	return b.String()
}

// SetBody stores the message body as the large string BodyKey ("data").
func (m *Message) SetBody(body string) *Message { return m.SetLargeString(BodyKey, body) }

// Body returns the large string BodyKey ("data"), "" if absent.
func (m *Message) Body() string { return m.LargeString(BodyKey) }

// AddTag adds a tag (QMQ allows at most 10 per message; Send rejects more).
// Adding a tag twice has no effect.
func (m *Message) AddTag(tag string) *Message {
	if !slices.Contains(m.tags, tag) {
		m.tags = append(m.tags, tag)
	}
	return m
}

// Tags returns the message's tags.
func (m *Message) Tags() []string { return slices.Clone(m.tags) }

// SetDelay makes this a delay message delivered d from now: sent through a
// delay broker group (Send fails if the metaserver knows none) when it is
// at least MinDelay ahead at Send, else to a real-time group at once.
func (m *Message) SetDelay(d time.Duration) *Message { return m.SetDelayUntil(time.Now().Add(d)) }

// SetDelayUntil makes this a delay message delivered at t.
func (m *Message) SetDelayUntil(t time.Time) *Message {
	m.scheduleAt = t
	m.setProp(PropScheduleReceive, strconv.FormatInt(t.UnixMilli(), 10))
	return m
}

// ScheduledAt is the delivery time of a delay message (zero otherwise).
func (m *Message) ScheduledAt() time.Time { return m.scheduleAt }

// MinDelay is how far ahead a delivery time must be for a message to go
// through a delay group (QMQ's DelayUtil): one due sooner is sent to a
// real-time group at once, as a plain message.
const MinDelay = 500 * time.Millisecond

// isDelay reports whether the message goes through a delay group when sent
// at now: its delivery time is at least MinDelay ahead.
func (m *Message) isDelay(now time.Time) bool {
	return !m.scheduleAt.IsZero() && m.scheduleAt.Sub(now) >= MinDelay
}

// SetMaxRetries overrides, for this message, how often consumers retry it
// before it goes to the dead-letter subject (qmq_maxRetryNum).
func (m *Message) SetMaxRetries(n int) *Message {
	return m.SetProperty(PropMaxRetryNum, strconv.Itoa(n))
}

// Times is how many times the message has been delivered to the consumer
// group: 1 the first time, then qmq_times of the retry copy.
func (m *Message) Times() int {
	if n, err := strconv.Atoi(m.Property(PropTimes)); err == nil && n > 0 {
		return n
	}
	return 1
}

// maxRetries returns qmq_maxRetryNum, or -1 when unset.
func (m *Message) maxRetries() int {
	if n, err := strconv.Atoi(m.Property(PropMaxRetryNum)); err == nil {
		return n
	}
	return -1
}

// String is a short description for logs.
func (m *Message) String() string { return m.subject + "/" + m.id }

// toWire converts the message for the protocol encoder. Properties go in
// map order, as Java's HashMap does: receivers read them into a map, so the
// order carries nothing, and sorting cost a tenth of the send path.
func (m *Message) toWire(now time.Time) (*protocol.Message, error) {
	// Retry and dead-letter subjects are legal here: the consumer sends
	// failed messages to them. Producer.Send refuses them (checkSubject).
	if err := names.WireSubject(m.subject); err != nil {
		return nil, fmt.Errorf("message %s: %w", m.id, err)
	}
	if m.id == "" {
		return nil, errors.New("message has no id")
	}
	if len(m.tags) > protocol.MaxTags {
		return nil, fmt.Errorf("message %s has %d tags; QMQ allows at most %d", m.id, len(m.tags), protocol.MaxTags)
	}
	pm := &protocol.Message{
		CreateTime: m.CreatedAt().UnixMilli(),
		Subject:    m.subject,
		MessageID:  m.id,
		Tags:       m.tags,
	}
	if m.isDelay(now) {
		pm.Flag |= protocol.MessageFlagDelay
		pm.ExpireOrScheduleTime = m.scheduleAt.UnixMilli()
	} else {
		pm.ExpireOrScheduleTime = now.UnixMilli()
	}
	props := m.props
	if m.attrs != nil {
		props = m.cloneProps() // a received message sent on
	}
	pm.Attrs = make([]protocol.Attr, 0, len(props))
	for k, v := range props {
		if len(v) > protocol.MaxString16Len {
			return nil, fmt.Errorf("message %s: property %q is %d bytes, over QMQ's %d-byte limit (use SetLargeString)", m.id, k, len(v), protocol.MaxString16Len)
		}
		if !utf8.ValidString(v) || !utf8.ValidString(k) {
			return nil, fmt.Errorf("message %s: property %q is not valid UTF-8 (QMQ strings are text)", m.id, k)
		}
		pm.Attrs = append(pm.Attrs, protocol.Attr{Key: k, Value: v})
	}
	return pm, nil
}

// setPulled fills a zero Message with a pulled one. It takes over the
// decoded tag and attribute slices.
func (m *Message) setPulled(pm *protocol.PulledMessage) {
	m.subject = pm.Message.Subject
	m.pullSubject = pm.Message.Subject
	m.id = pm.Message.MessageID
	m.createdAt = time.UnixMilli(pm.Message.CreateTime)
	m.setPulledAttrs(pm.Message.Attrs, pm.PullOffset)
	if len(pm.Message.Tags) > 0 {
		m.tags = pm.Message.Tags
	}
	if pm.Message.Flag&protocol.MessageFlagDelay != 0 {
		m.scheduleAt = time.UnixMilli(pm.Message.ExpireOrScheduleTime)
	}
}

// retryCopy is the copy of a consumed message sent to a retry, dead-letter
// or delay subject: same id, tags and properties, qmq_times incremented,
// a fresh qmq_createTime (as QMQ's client sets when sending back).
func (m *Message) retryCopy(subject string, times int, now time.Time) *Message {
	props := m.cloneProps()
	if props == nil {
		props = make(map[string]string, 2)
	}
	c := &Message{subject: subject, id: m.id, createdAt: now, props: props, tags: slices.Clone(m.tags)}
	delete(c.props, PropPullOffset)
	delete(c.props, PropScheduleReceive)
	c.props[PropTimes] = strconv.Itoa(times)
	c.props[PropCreateTime] = strconv.FormatInt(now.UnixMilli(), 10)
	return c
}

// RetrySubject is the subject a consumer group's failed messages of subject
// are re-sent to: %RETRY%<subject>%<group>.
func RetrySubject(subject, group string) string { return protocol.RetrySubject(subject, group) }

// DeadLetterSubject is where messages go after the maximum number of
// retries: %DEAD_RETRY%<subject>%<group>.
func DeadLetterSubject(subject, group string) string {
	return protocol.DeadRetrySubject(subject, group)
}

// RetryAtError asks for a failed message to be retried at a given time
// rather than after the broker's retry delay. Return it from a handler or
// pass it to Message.Ack (see RetryAt).
type RetryAtError struct {
	At    time.Time
	Cause error
}

func (e *RetryAtError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("retry at %s: %v", e.At.Format(time.RFC3339Nano), e.Cause)
	}
	return "retry at " + e.At.Format(time.RFC3339Nano)
}

func (e *RetryAtError) Unwrap() error { return e.Cause }

// RetryAt returns a *RetryAtError: the message is re-sent as a delay
// message scheduled at t (QMQ's NeedRetryException), or retried normally
// when no delay broker group exists.
func RetryAt(t time.Time) error { return &RetryAtError{At: t} }
