package consumerlog

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUnitRoundTrip(t *testing.T) {
	for _, e := range []Entry{
		{Timestamp: 1700000000123, Offset: 0, Size: 1, HeaderSize: 1},
		{Timestamp: math.MaxInt64, Offset: math.MaxInt64, Size: math.MaxInt32 - 1, HeaderSize: math.MaxInt16},
		{Timestamp: 0, Offset: 0, Size: 60, HeaderSize: 60},
		{Timestamp: -5, Offset: 1 << 40, Size: 1024, HeaderSize: 60},
	} {
		var b [UnitSize]byte
		encodeUnit(b[:], e)
		if got := decodeUnit(b[:]); got != e {
			t.Fatalf("got %+v want %+v", got, e)
		}
		if !isEntry(e) || validateEntry(e) != nil || isZero(b[:]) || isBlank(b[:]) {
			t.Fatalf("%+v not recognised as an entry", e)
		}
	}
}

func TestUnitKinds(t *testing.T) {
	var blank, zero, qmqBlank, torn [UnitSize]byte
	fillBlank(blank[:])
	encodeUnit(qmqBlank[:], Entry{Timestamp: time.Now().UnixMilli(), Offset: 0, Size: math.MaxInt32, HeaderSize: 0})
	encodeUnit(torn[:], Entry{Timestamp: 1700000000000, Offset: 4096, Size: 300, HeaderSize: 40})
	clear(torn[12:]) // crash kept only a prefix

	for name, c := range map[string]struct {
		b                 [UnitSize]byte
		entry, plausibleB bool
	}{
		"blank":     {blank, false, true},
		"zero":      {zero, false, false},
		"qmq blank": {qmqBlank, false, true},
		"torn":      {torn, false, false},
	} {
		if got := isEntry(decodeUnit(c.b[:])); got != c.entry {
			t.Errorf("%s: isEntry=%v", name, got)
		}
		if got := plausible(c.b[:]); got != c.plausibleB {
			t.Errorf("%s: plausible=%v", name, got)
		}
	}
	// A crash that keeps any proper prefix of a unit is recognised, as long
	// as the header is below 256 bytes (it always is for real messages
	// whose subject is short).
	good := Entry{Timestamp: 1700000000000, Offset: 1 << 33, Size: 0x01000000, HeaderSize: 255}
	for p := 0; p < UnitSize; p++ {
		var b [UnitSize]byte
		encodeUnit(b[:], good)
		clear(b[p:])
		if plausible(b[:]) {
			t.Errorf("unit cut after %d bytes looks complete: %+v", p, decodeUnit(b[:]))
		}
		fillBlank(b[:])
		clear(b[p:])
		if plausible(b[:]) {
			t.Errorf("blank cut after %d bytes looks complete", p)
		}
	}
	for _, bad := range []Entry{{Size: 0}, {Size: -1, Offset: -1, HeaderSize: -1, Timestamp: -1}, {Size: math.MaxInt32}, {Size: 10, Offset: -1}, {Size: 10, HeaderSize: -1}, {Size: 10, HeaderSize: 0}, {Size: 10, HeaderSize: 11}} {
		if validateEntry(bad) == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestEscapeSubject(t *testing.T) {
	cases := map[string]string{
		"order.created":           "order.created",
		"%RETRY%order.created%g1": "%RETRY%order.created%g1",
		"%DEAD_RETRY%a%b":         "%DEAD_RETRY%a%b",
		"a/b":                     "a~2Fb",
		"~":                       "~7E",
		".":                       "~2E",
		"..":                      "~2E.",
		".hidden":                 "~2Ehidden",
		"a b\x00\n":               "a~20b~00~0A",
		"订单":                      "订单",
		"bad\xffutf8":             "bad~FFutf8",
	}
	for subject, want := range cases {
		got, err := escapeSubject(subject)
		if err != nil || got != want {
			t.Errorf("escape(%q) = %q, %v; want %q", subject, got, err, want)
			continue
		}
		back, ok := unescapeSubject(got)
		if !ok || back != subject {
			t.Errorf("unescape(%q) = %q, %v", got, back, ok)
		}
	}
	if _, err := escapeSubject(""); err == nil {
		t.Error("empty subject accepted")
	}
	if _, err := escapeSubject(strings.Repeat("/", 100)); err == nil {
		t.Error("over-long escaped name accepted")
	}
	for _, name := range []string{"~", "~2", "~2f", "~41", "a~ZZ", "~2E~2E", ".x"} {
		if s, ok := unescapeSubject(name); ok {
			t.Errorf("non-canonical name %q accepted as %q", name, s)
		}
	}
}

func FuzzEscapeSubject(f *testing.F) {
	for _, s := range []string{"a", "%RETRY%a%b", "a/b", "~", ".", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		name, err := escapeSubject(subject)
		if err != nil {
			return
		}
		if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
			t.Fatalf("unsafe name %q for %q", name, subject)
		}
		back, ok := unescapeSubject(name)
		if !ok || back != subject {
			t.Fatalf("round trip %q -> %q -> %q %v", subject, name, back, ok)
		}
	})
}

func TestNotifier(t *testing.T) {
	var n notifier
	n.fire() // nobody waits: nothing to do
	a, b := n.wait(), n.wait()
	if a != b {
		t.Fatal("waiters before a fire must share a channel")
	}
	select {
	case <-a:
		t.Fatal("closed before fire")
	default:
	}
	n.fire()
	<-a
	c := n.wait()
	select {
	case <-c:
		t.Fatal("a new wait after fire must get a fresh channel")
	default:
	}

	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-n.wait()
		}()
	}
	// Waiters that arrive after this fire wait for the shutdown.
	n.fire()
	n.shutdown()
	wg.Wait()
	<-n.wait()
}
