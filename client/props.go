package client

import (
	"maps"
	"strconv"

	"github.com/qmq-go/qmq/protocol"
)

// A message's properties take one of two forms. Messages created by this
// package, and received messages once modified, use the map props. A
// received message keeps the attribute list decoded from the wire, attrs
// (non-nil, possibly empty), for as long as it is only read: building a
// map for every received message was the largest cost of delivering it,
// and a linear scan of a handful of properties is as fast as a map
// lookup. Keys may repeat in attrs; the last one counts, as when the wire
// form is read into a map. Two properties the consumer adds are kept
// beside the list rather than appended to it: qmq_pullOffset (pullOffset)
// and qmq_consumerGroupName (group, when not "").

// prop looks a property up.
func (m *Message) prop(key string) (string, bool) {
	if m.attrs == nil {
		v, ok := m.props[key]
		return v, ok
	}
	switch key {
	case PropPullOffset:
		return strconv.FormatInt(m.pullOffset, 10), true
	case PropConsumerGroup:
		if m.group != "" {
			return m.group, true
		}
	}
	for i := len(m.attrs) - 1; i >= 0; i-- {
		if m.attrs[i].Key == key {
			return m.attrs[i].Value, true
		}
	}
	return "", false
}

// writable switches the message to the map form and returns the map.
func (m *Message) writable() map[string]string {
	if m.attrs != nil {
		m.props, m.attrs, m.group = m.cloneProps(), nil, ""
	} else if m.props == nil {
		m.props = make(map[string]string)
	}
	return m.props
}

func (m *Message) setProp(key, value string) { m.writable()[key] = value }

func (m *Message) delProp(key string) {
	if m.attrs != nil || m.props != nil {
		delete(m.writable(), key)
	}
}

// cloneProps returns the properties as a new map (nil if there are none
// and never were).
func (m *Message) cloneProps() map[string]string {
	if m.attrs == nil {
		return maps.Clone(m.props)
	}
	p := make(map[string]string, len(m.attrs)+2)
	for _, a := range m.attrs {
		p[a.Key] = a.Value
	}
	p[PropPullOffset] = strconv.FormatInt(m.pullOffset, 10)
	if m.group != "" {
		p[PropConsumerGroup] = m.group
	}
	return p
}

// setGroup sets qmq_consumerGroupName of a received message.
func (m *Message) setGroup(group string) {
	if m.attrs == nil {
		m.setProp(PropConsumerGroup, group)
		return
	}
	m.group = group
}

// setPulledAttrs puts a received message in the attribute-list form.
func (m *Message) setPulledAttrs(attrs []protocol.Attr, pullOffset int64) {
	if attrs == nil {
		attrs = []protocol.Attr{}
	}
	m.props, m.attrs, m.pullOffset = nil, attrs, pullOffset
}
