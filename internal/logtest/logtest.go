// Package logtest compares the segment files of two stores' logs, for the
// replication tests (storage, services/replication), which otherwise each
// kept a copy. It is for tests only.
package logtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// segmentNameLen is the length of a segment file's name (its base offset,
// zero-padded to 20 digits).
const segmentNameLen = 20

// SegmentFiles reads every segment file of the log directory dir, by name.
func SegmentFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range es {
		if len(e.Name()) != segmentNameLen {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

// SameSegments fails t unless the log directories a and b hold the same
// segment files, byte for byte, and at least one.
func SameSegments(t testing.TB, a, b string) {
	t.Helper()
	fa, fb := SegmentFiles(t, a), SegmentFiles(t, b)
	if len(fa) != len(fb) || len(fa) == 0 {
		t.Fatalf("%s has %d segment files, %s has %d", a, len(fa), b, len(fb))
	}
	for name, data := range fa {
		if !bytes.Equal(data, fb[name]) {
			t.Fatalf("segment %s differs between %s and %s", name, a, b)
		}
	}
}
