package client

import (
	"maps"
	"strconv"
	"time"
)

// This file serves code that keeps messages outside the producer for a
// while, such as the transactional-message table of package client/tx: it
// must refuse a message before storing it (a stored message that can never
// be sent would sit in the table forever), and rebuild a stored message
// with its original id so that a re-send is recognised as the same message.

// Validate reports whether Producer.Send would accept m, without sending
// it: a legal subject of the application's own (not a retry or dead-letter
// subject), an id, at most 10 tags, properties that are valid UTF-8 and
// short enough for the wire. The error says what is wrong.
func (m *Message) Validate() error {
	_, err := producerOutgoing(m, time.Now())
	return err
}

// RestoreMessage rebuilds a message that was stored earlier, keeping its
// subject, id, properties and tags, so that sending it again is sending
// the same message (consumers see the same id). qmq_createTime in props is
// the creation time (now if absent or not a number); qmq_scheduleReceiveTime
// makes it a delay message, as SetDelayUntil does. props is copied.
func RestoreMessage(subject, id string, props map[string]string, tags []string) *Message {
	now := time.Now()
	m := &Message{subject: subject, id: id, createdAt: now, props: make(map[string]string, len(props)), pullOffset: -1}
	maps.Copy(m.props, props)
	if ms, err := strconv.ParseInt(props[PropScheduleReceive], 10, 64); err == nil {
		m.scheduleAt = time.UnixMilli(ms)
	}
	for _, t := range tags {
		m.AddTag(t)
	}
	return m
}
