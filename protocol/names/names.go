package names

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	// MaxLen is the longest subject or consumer group, in characters.
	MaxLen = 100
	// MaxWireSubjectLen is the longest retry or dead-letter subject, in
	// bytes: the broker names a consumer-log directory after the subject,
	// and file names are at most 255 bytes. A single decoration of the
	// longest subject and group (213 bytes) fits.
	MaxWireSubjectLen = 255

	// RetryPrefix and DeadRetryPrefix start QMQ's retry and dead-letter
	// subjects: %RETRY%<subject>%<group>, %DEAD_RETRY%<subject>%<group>.
	RetryPrefix     = "%RETRY%"
	DeadRetryPrefix = "%DEAD_RETRY%"

	// Alphabet describes the characters a name may use, for messages.
	Alphabet = "ASCII letters A-Z a-z, digits 0-9, '.', '_' and '-'"
)

const (
	kindSubject = "subject"
	kindGroup   = "consumer group"
)

// Error is an illegal name: errors.As finds it in the errors of every
// check here and of the callers that wrap them.
type Error struct {
	Kind string // "subject" or "consumer group"
	Name string // the whole name as given
	// Pos is the 1-based character position in Name of the first illegal
	// character, 0 when the problem is not one character (empty, too long,
	// reserved prefix, malformed retry subject).
	Pos    int
	Char   rune   // the illegal character; utf8.RuneError for a byte that is not UTF-8
	Reason string // what is wrong, when Pos is 0
}

func (e *Error) Error() string {
	what := e.Reason
	if e.Pos > 0 {
		what = describe(e.Char) + fmt.Sprintf(" at position %d is not allowed", e.Pos)
	}
	return fmt.Sprintf("illegal %s %s: %s; %ss are 1 to %d characters of %s", e.Kind, quote(e.Name), what, e.Kind, MaxLen, Alphabet)
}

// describe names a character so that it can be seen in a message even
// when it is a space or invisible.
func describe(r rune) string {
	switch {
	case r == utf8.RuneError:
		return "a byte that is not UTF-8"
	case r == ' ':
		return "a space (U+0020)"
	default:
		return fmt.Sprintf("character %q (%U)", r, r)
	}
}

// quote shows at most 64 bytes of a name: names come from the network and
// can be 32 KB long.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// alphabet marks the legal bytes: the broker checks every message's
// subject, so one lookup per byte.
var alphabet = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			t[c] = true
		}
	}
	return t
}()

// legal reports whether c belongs to the alphabet.
func legal(c byte) bool { return alphabet[c] }

// Subject checks a subject a user names: one to declare (AddNewSubject) or
// to send to. The retry and dead-letter prefixes are refused: those
// subjects are built by consumers and brokers (see WireSubject).
func Subject(s string) error {
	for _, p := range []string{RetryPrefix, DeadRetryPrefix} {
		if strings.HasPrefix(s, p) {
			return &Error{Kind: kindSubject, Name: s, Reason: fmt.Sprintf("the prefix %q is reserved for the subjects consumers and brokers build (%s<subject>%%<consumer group>); name the subject itself", p, p)}
		}
	}
	return check(kindSubject, s)
}

// Group checks a consumer group name.
func Group(g string) error { return check(kindGroup, g) }

// check applies the rule to one plain name.
func check(kind, s string) error {
	if s == "" {
		return &Error{Kind: kind, Name: s, Reason: "it is empty"}
	}
	if pos, r := firstIllegal(s); pos > 0 {
		return &Error{Kind: kind, Name: s, Pos: pos, Char: r}
	}
	// Every legal character is one byte: the byte length is the length.
	if len(s) > MaxLen {
		return &Error{Kind: kind, Name: s, Reason: fmt.Sprintf("it is %d characters long, over the limit of %d", len(s), MaxLen)}
	}
	return nil
}

// firstIllegal returns the 1-based character position and the character
// of the first one outside the alphabet, or 0.
func firstIllegal(s string) (int, rune) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alphabet[c] {
			// Every byte before i is a legal ASCII character: i+1 is
			// the character position.
			if c < utf8.RuneSelf {
				return i + 1, rune(c)
			}
			r, _ := utf8.DecodeRuneInString(s[i:])
			return i + 1, r // never legal: the alphabet is ASCII
		}
	}
	return 0, 0
}

// WireSubject checks a subject received from or sent to the network: a
// legal subject, or a retry or dead-letter subject built from a legal
// subject and legal consumer groups (%RETRY%<subject>%<group>,
// %DEAD_RETRY%<subject>%<group>, nested as consumers of those subjects
// build them), at most MaxWireSubjectLen bytes.
func WireSubject(s string) error {
	rest, depth := s, 0
	for {
		if r, ok := strings.CutPrefix(rest, RetryPrefix); ok {
			rest, depth = r, depth+1
		} else if r, ok := strings.CutPrefix(rest, DeadRetryPrefix); ok {
			rest, depth = r, depth+1
		} else {
			break
		}
	}
	if depth == 0 {
		return check(kindSubject, s)
	}
	parts := strings.Split(rest, "%")
	if len(parts) != depth+1 {
		return &Error{Kind: kindSubject, Name: s, Reason: fmt.Sprintf("a retry or dead-letter subject is %s<subject>%%<consumer group> (or %s<subject>%%<consumer group>, nested once per prefix), and this one has %d prefixes but %d '%%'-separated parts after them", RetryPrefix, DeadRetryPrefix, depth, len(parts))}
	}
	off := len(s) - len(rest) // the prefixes are ASCII: bytes are characters
	for i, p := range parts {
		kind := kindGroup
		if i == 0 {
			kind = kindSubject
		}
		if err := check(kind, p); err != nil {
			e := err.(*Error)
			e.Kind, e.Name = kindSubject, s
			if e.Pos > 0 {
				e.Pos += off // every earlier part passed: one byte per character
			} else {
				e.Reason = fmt.Sprintf("its %s %q (from position %d): %s", kind, p, off+1, e.Reason)
				if p == "" {
					e.Reason = fmt.Sprintf("its %s (from position %d) is empty", kind, off+1)
				}
			}
			return e
		}
		off += len(p) + 1
	}
	if len(s) > MaxWireSubjectLen {
		return &Error{Kind: kindSubject, Name: s, Reason: fmt.Sprintf("it is %d characters long, over the limit of %d for retry and dead-letter subjects", len(s), MaxWireSubjectLen)}
	}
	return nil
}

// Decorated reports whether s starts with a retry or dead-letter prefix.
func Decorated(s string) bool {
	return strings.HasPrefix(s, RetryPrefix) || strings.HasPrefix(s, DeadRetryPrefix)
}
