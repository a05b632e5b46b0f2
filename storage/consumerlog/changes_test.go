package consumerlog

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// TestEachChangedMaxSequence: each call reports the ends moved since the
// previous one — puts, including to a log released meanwhile, and
// truncations — once each; ResetChanges forgets them.
func TestEachChangedMaxSequence(t *testing.T) {
	m, err := Open(Config{FS: vfs.Default(), Dir: filepath.Join(t.TempDir(), "consumerlog"), UnitsPerSegment: testUnits, MaxOpenLogs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	changed := func() map[string]int64 {
		got := map[string]int64{}
		m.EachChangedMaxSequence(func(s string, seq int64) {
			if _, dup := got[s]; dup {
				t.Fatalf("%s reported twice", s)
			}
			got[s] = seq
		})
		return got
	}
	put := func(subject string, seq int64) {
		t.Helper()
		if err := m.Put(subject, seq, entryFor(subject, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		s := fmt.Sprintf("s%d", i)
		put(s, 0)
		put(s, 1)
	}
	if got, want := changed(), map[string]int64{"s0": 1, "s1": 1, "s2": 1, "s3": 1, "s4": 1}; !maps.Equal(got, want) {
		t.Fatalf("after the first puts: %v, want %v", got, want)
	}
	if got := changed(); len(got) != 0 {
		t.Fatalf("nothing moved, reported %v", got)
	}
	put("s0", 2) // s0 was released (two open at most): reopened
	put("s3", 5) // a gap: the end still moves
	put("s3", 4) // below the end: ignored
	if got, want := changed(), map[string]int64{"s0": 2, "s3": 5}; !maps.Equal(got, want) {
		t.Fatalf("after puts to s0, s3: %v, want %v", got, want)
	}
	if err := m.TruncateAfter("s3", 3); err != nil {
		t.Fatal(err)
	}
	if got, want := changed(), map[string]int64{"s3": 3}; !maps.Equal(got, want) {
		t.Fatalf("after truncating s3: %v, want %v", got, want)
	}
	put("s1", 2)
	m.ResetChanges()
	if got := changed(); len(got) != 0 {
		t.Fatalf("after ResetChanges: %v", got)
	}
	put("s1", 3)
	if got, want := changed(), map[string]int64{"s1": 3}; !maps.Equal(got, want) {
		t.Fatalf("after a put following ResetChanges: %v, want %v", got, want)
	}
}
