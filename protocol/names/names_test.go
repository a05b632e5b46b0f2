package names

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNames(t *testing.T) {
	max := strings.Repeat("a", MaxLen)
	for _, c := range []struct {
		name string
		ok   bool
		pos  int    // expected position of the illegal character, 0 for none
		msg  string // expected in the error
	}{
		{"order", true, 0, ""},
		{"order.created", true, 0, ""},
		{"Order_Created-v2.0", true, 0, ""},
		{"0", true, 0, ""},
		{"...", true, 0, ""},
		{max, true, 0, ""},
		{"", false, 0, "it is empty"},
		{" ", false, 1, "a space (U+0020) at position 1"},
		{"order created", false, 6, "a space (U+0020) at position 6"},
		{"order\t", false, 6, `character '\t' (U+0009) at position 6`},
		{"a\x00b", false, 2, `character '\x00' (U+0000) at position 2`},
		{"*", false, 1, `character '*' (U+002A) at position 1`},
		{"a%b", false, 2, "'%'"},
		{"a;drop table", false, 2, "';'"},
		{`a'b`, false, 2, `'\''`},
		{`a"b`, false, 2, `'"'`},
		{"a/b", false, 2, "'/'"},
		{`a\b`, false, 2, `'\\'`},
		{"a:b", false, 2, "':'"},
		{"a@b", false, 2, "'@'"},
		{"订单", false, 1, "'订' (U+8BA2) at position 1"},
		{"ab订", false, 3, "at position 3"},
		{"ab\xff", false, 3, "a byte that is not UTF-8 at position 3"},
		{max + "a", false, 0, "101 characters long, over the limit of 100"},
	} {
		for _, kind := range []string{kindSubject, kindGroup} {
			check := Subject
			if kind == kindGroup {
				check = Group
			}
			err := check(c.name)
			if (err == nil) != c.ok {
				t.Errorf("%s %q: error %v, want ok=%v", kind, c.name, err, c.ok)
				continue
			}
			if err == nil {
				continue
			}
			var e *Error
			if !errors.As(err, &e) || e.Pos != c.pos || e.Kind != kind {
				t.Errorf("%s %q: got %#v, want an *Error of kind %s with Pos %d", kind, c.name, err, kind, c.pos)
			}
			msg := err.Error()
			for _, want := range []string{c.msg, "illegal " + kind, Alphabet, "1 to 100 characters"} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s %q: message %q lacks %q", kind, c.name, msg, want)
				}
			}
		}
	}
}

func TestReservedPrefixes(t *testing.T) {
	for _, s := range []string{"%RETRY%order%g", "%DEAD_RETRY%order%g", "%RETRY%"} {
		err := Subject(s)
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("Subject(%q) = %v, want a reserved-prefix refusal", s, err)
		}
		if !Decorated(s) {
			t.Errorf("Decorated(%q) = false", s)
		}
	}
	// A consumer group may not carry the separator either.
	if err := Group("%RETRY%g"); err == nil {
		t.Errorf("Group(%q) accepted", "%RETRY%g")
	}
}

func TestWireSubject(t *testing.T) {
	max := strings.Repeat("s", MaxLen)
	maxG := strings.Repeat("g", MaxLen)
	for _, c := range []struct {
		s   string
		ok  bool
		pos int
		msg string
	}{
		{"order.created", true, 0, ""},
		{RetryPrefix + "order.created%group-1", true, 0, ""},
		{DeadRetryPrefix + "order%g", true, 0, ""},
		{"%RETRY%%DEAD_RETRY%order%g%reader", true, 0, ""},
		{RetryPrefix + max + "%" + maxG, true, 0, ""},
		{DeadRetryPrefix + max + "%" + maxG, true, 0, ""},
		{"%RETRY%order", false, 0, "1 prefixes but 1 '%'-separated parts"},
		{"%RETRY%order%g%h", false, 0, "1 prefixes but 3"},
		{"%RETRY%%g", false, 0, "its subject (from position 8) is empty"},
		{"%RETRY%order%", false, 0, "its consumer group (from position 14) is empty"},
		{"%RETRY%or der%g", false, 10, "a space (U+0020) at position 10"},
		{"%RETRY%order%g*", false, 15, "'*' (U+002A) at position 15"},
		{"%RETRY%" + max + "x%g", false, 0, "101 characters long"},
		{"%RETRY%%DEAD_RETRY%" + max + "%" + maxG + "%" + maxG, false, 0, "over the limit of 255"},
		{"%RETRYorder", false, 1, "'%' (U+0025) at position 1"},
		{" ", false, 1, "a space"},
		{"", false, 0, "empty"},
	} {
		err := WireSubject(c.s)
		if (err == nil) != c.ok {
			t.Errorf("WireSubject(%q) = %v, want ok=%v", c.s, err, c.ok)
			continue
		}
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Pos != c.pos || e.Name != c.s {
			t.Errorf("WireSubject(%q) = %#v, want Pos %d and the whole name", c.s, err, c.pos)
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("WireSubject(%q) = %q, want it to contain %q", c.s, err, c.msg)
		}
	}
}

var reference = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// FuzzNames: the checks never panic, accept exactly the alphabet (checked
// against a regular expression), point at a character that really is
// illegal, and accept every retry subject built from legal parts.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"order", "", " ", "a b", "%RETRY%a%b", "%DEAD_RETRY%a%b", "%RETRY%%DEAD_RETRY%a%b%c", "订单", "\xff", strings.Repeat("x", 101)} {
		f.Add(s, "g")
	}
	f.Fuzz(func(t *testing.T, s, g string) {
		for _, check := range []func(string) error{Subject, Group} {
			err := check(s)
			if want := reference.MatchString(s); (err == nil) != want {
				t.Fatalf("%q: error %v, reference says legal=%v", s, err, want)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Pos < 0 || e.Pos > utf8.RuneCountInString(s)) {
				t.Fatalf("%q: error %#v has a position outside the name", s, err)
			}
			if err != nil && e.Pos > 0 {
				r := []rune(s)[e.Pos-1]
				if r < utf8.RuneSelf && legal(byte(r)) {
					t.Fatalf("%q: position %d points at legal %q", s, e.Pos, r)
				}
			}
		}
		werr := WireSubject(s)
		if !Decorated(s) && (werr == nil) != (Subject(s) == nil) {
			t.Fatalf("%q: WireSubject %v but Subject %v", s, werr, Subject(s))
		}
		if werr != nil {
			_ = werr.Error() // formatting never panics either
		}
		if Subject(s) == nil && Group(g) == nil {
			for _, d := range []string{RetryPrefix + s + "%" + g, DeadRetryPrefix + s + "%" + g} {
				if err := WireSubject(d); err != nil {
					t.Fatalf("%q from legal parts refused: %v", d, err)
				}
			}
		}
	})
}

// BenchmarkWireSubject: the broker checks every message's subject.
func BenchmarkWireSubject(b *testing.B) {
	for _, s := range []string{"order.created", RetryPrefix + "order.created%payment-worker"} {
		b.Run(s, func(b *testing.B) {
			for b.Loop() {
				if WireSubject(s) != nil {
					b.Fatal(s)
				}
			}
		})
	}
}
