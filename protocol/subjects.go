package protocol

import (
	"strings"

	"github.com/qmq-go/qmq/protocol/names"
)

// QMQ's subject decorations: a consumer group's failed messages go to
// %RETRY%<subject>%<group>, and after the last retry to
// %DEAD_RETRY%<subject>%<group>. Which names may be decorated is
// package names' rule (names.WireSubject).
const (
	RetryPrefix     = names.RetryPrefix
	DeadRetryPrefix = names.DeadRetryPrefix
)

// RetrySubject is %RETRY%<subject>%<group>.
func RetrySubject(subject, group string) string { return RetryPrefix + subject + "%" + group }

// DeadRetrySubject is %DEAD_RETRY%<subject>%<group>.
func DeadRetrySubject(subject, group string) string { return DeadRetryPrefix + subject + "%" + group }

// RealSubject strips the decorations the way QMQ routes them:
// "%RETRY%order%group" is "order", and nested ones too (a dead-letter
// reader's own retry subject is "%RETRY%%DEAD_RETRY%order%g%reader").
// Undecorated subjects are returned as they are.
func RealSubject(subject string) string {
	rest, stripped := subject, false
	for {
		if r, ok := strings.CutPrefix(rest, RetryPrefix); ok {
			rest, stripped = r, true
		} else if r, ok := strings.CutPrefix(rest, DeadRetryPrefix); ok {
			rest, stripped = r, true
		} else {
			break
		}
	}
	if !stripped {
		return subject
	}
	if i := strings.IndexByte(rest, '%'); i >= 0 {
		return rest[:i]
	}
	return rest
}
