package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

func TestMessageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default()
	cp := MessageCheckpoint{Offset: 123456789, MaxSequences: map[string]int64{
		"order.created":      41,
		"a/b/c":              7, // '/' inside a subject: split on the last one
		"%RETRY%order%group": 0,
		"empty.subject":      -1,
	}}
	if err := SaveMessage(fs, dir, cp, 5); err != nil {
		t.Fatal(err)
	}
	got, found, err := LoadMessage(fs, dir)
	if err != nil || !found {
		t.Fatalf("LoadMessage: found=%v err=%v", found, err)
	}
	if !reflect.DeepEqual(got, cp) {
		t.Fatalf("got %+v, want %+v", got, cp)
	}
}

func TestMessageFormatIsQMQs(t *testing.T) {
	data, err := EncodeMessage(MessageCheckpoint{Offset: 10, MaxSequences: map[string]int64{"b": 2, "a/x": 1}})
	if err != nil {
		t.Fatal(err)
	}
	body, crcLine, ok := strings.Cut(string(data), "#crc32:")
	if !ok {
		t.Fatalf("no checksum line in %q", data)
	}
	if body != "2\n10\na/x/1\nb/2\n" {
		t.Fatalf("body %q", body)
	}
	if len(crcLine) != 9 || !strings.HasSuffix(crcLine, "\n") {
		t.Fatalf("checksum line %q", crcLine)
	}
}

func TestLoadQMQMessageCheckpointWithoutChecksum(t *testing.T) {
	dir := t.TempDir()
	// As QMQ writes it: no checksum line, 20-digit version named by offset.
	qmq := "2\n5000\norder.created/17\n%RETRY%order.created%g1/3\n"
	if err := os.WriteFile(filepath.Join(dir, "message-checkpoint.00000000000000005000"), []byte(qmq), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, found, err := LoadMessage(vfs.Default(), dir)
	if err != nil || !found {
		t.Fatalf("found=%v err=%v", found, err)
	}
	want := MessageCheckpoint{Offset: 5000, MaxSequences: map[string]int64{"order.created": 17, "%RETRY%order.created%g1": 3}}
	if !reflect.DeepEqual(cp, want) {
		t.Fatalf("got %+v want %+v", cp, want)
	}
	// The next save must sort after QMQ's file.
	if err := SaveMessage(vfs.Default(), dir, MessageCheckpoint{Offset: 6000}, 5); err != nil {
		t.Fatal(err)
	}
	cp, _, err = LoadMessage(vfs.Default(), dir)
	if err != nil || cp.Offset != 6000 {
		t.Fatalf("after save: %+v %v", cp, err)
	}
}

func TestMessageRejectsLineBreakInSubject(t *testing.T) {
	err := SaveMessage(vfs.Default(), t.TempDir(), MessageCheckpoint{MaxSequences: map[string]int64{"a\nb": 1}}, 5)
	if err == nil {
		t.Fatal("want an error")
	}
}

func TestDecodeMessageRejectsDamage(t *testing.T) {
	good, err := EncodeMessage(MessageCheckpoint{Offset: 99, MaxSequences: map[string]int64{"s1": 1, "s2": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessage(good); err != nil {
		t.Fatal(err)
	}
	// Every single-byte change and every truncation must be caught (the
	// checksum covers the body; damage to the checksum line itself is either
	// a mismatch or an unparsable line, or turns the file into one without
	// a checksum whose body no longer parses).
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x01
		if cp, err := DecodeMessage(bad); err == nil {
			t.Errorf("flip at %d accepted: %+v (%q)", i, cp, bad)
		}
	}
	// Truncations that keep part of the checksum line are caught. Shorter ones
	// look like QMQ's files, which carry no checksum; they are never produced
	// by a save, because the file is synced before it is renamed into place.
	crcAt := strings.Index(string(good), "#crc32:")
	for n := crcAt + 1; n < len(good)-1; n++ {
		if cp, err := DecodeMessage(good[:n]); err == nil {
			t.Errorf("truncation to %d accepted: %+v", n, cp)
		}
	}
	for _, s := range []string{"", "2\n", "1\n5\n", "3\n5\n", "2\nx\n", "2\n-1\n", "2\n5\nnoslash\n", "2\n5\na/x\n", "2\n5\na/1\na/2\n", "2\n5\n\na/1\n"} {
		if _, err := DecodeMessage([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestActionRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default()
	for _, data := range [][]byte{nil, {0}, []byte("pull log table \x00\xff with binary"), make([]byte, 1<<20)} {
		cp := ActionCheckpoint{Offset: int64(len(data)), Data: data}
		if err := SaveAction(fs, dir, cp, 2); err != nil {
			t.Fatal(err)
		}
		got, found, err := LoadAction(fs, dir)
		if err != nil || !found {
			t.Fatalf("found=%v err=%v", found, err)
		}
		if got.Offset != cp.Offset || !slices.Equal(got.Data, cp.Data) || (len(data) == 0 && got.Data != nil) {
			t.Fatalf("round trip of %d bytes: got offset %d, %d bytes", len(data), got.Offset, len(got.Data))
		}
	}
}

func TestActionFormat(t *testing.T) {
	got := string(EncodeAction(ActionCheckpoint{Offset: 7, Data: []byte("hi")}))
	if !strings.HasPrefix(got, "3\n7\naGk=\n#crc32:") {
		t.Fatalf("got %q", got)
	}
	// QMQ's action checkpoint: empty table accepted, anything else rejected.
	if cp, err := DecodeAction([]byte("3\n42\n")); err != nil || cp.Offset != 42 || cp.Data != nil {
		t.Fatalf("empty QMQ action checkpoint: %+v %v", cp, err)
	}
	if _, err := DecodeAction([]byte("3\n42\norder/1\ngroup/0/17/1\nc1/5/4\n")); err == nil {
		t.Fatal("QMQ action checkpoint with progress accepted")
	}
	if _, err := DecodeAction([]byte("3\n42\n!!!notbase64\n")); err == nil {
		t.Fatal("bad base64 accepted")
	}
}

func TestLoadNothing(t *testing.T) {
	fs := vfs.Default()
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		if _, found, err := LoadMessage(fs, dir); found || err != nil {
			t.Fatalf("%s: found=%v err=%v", dir, found, err)
		}
		if _, found, err := LoadAction(fs, dir); found || err != nil {
			t.Fatalf("%s: found=%v err=%v", dir, found, err)
		}
	}
}

func TestLoadFallsBackToOlderValidFile(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default()
	for i := range 3 {
		if err := SaveMessage(fs, dir, MessageCheckpoint{Offset: int64(i)}, 5); err != nil {
			t.Fatal(err)
		}
	}
	names := checkpointFiles(t, dir, MessageKind)
	// Damage the newest: one flipped digit in the offset.
	newest := filepath.Join(dir, names[len(names)-1])
	data, _ := os.ReadFile(newest)
	data[2] = '9'
	if err := os.WriteFile(newest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cp, found, err := LoadMessage(fs, dir)
	if err != nil || !found || cp.Offset != 1 {
		t.Fatalf("got %+v found=%v err=%v, want offset 1", cp, found, err)
	}
	// Damage all: ErrCorrupt.
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := LoadMessage(fs, dir); found || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("found=%v err=%v, want ErrCorrupt", found, err)
	}
}

func TestRetentionKeepsExactlyRetain(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.Default()
	for i := range 12 {
		if err := SaveMessage(fs, dir, MessageCheckpoint{Offset: int64(i)}, 3); err != nil {
			t.Fatal(err)
		}
		if err := SaveAction(fs, dir, ActionCheckpoint{Offset: int64(i)}, 0); err != nil { // 0 → DefaultRetain
			t.Fatal(err)
		}
		if got, want := len(checkpointFiles(t, dir, MessageKind)), min(i+1, 3); got != want {
			t.Fatalf("after save %d: %d message checkpoints, want %d", i, got, want)
		}
		if got, want := len(checkpointFiles(t, dir, ActionKind)), min(i+1, DefaultRetain); got != want {
			t.Fatalf("after save %d: %d action checkpoints, want %d", i, got, want)
		}
	}
	names := checkpointFiles(t, dir, MessageKind)
	want := []string{fileName(MessageKind, 9), fileName(MessageKind, 10), fileName(MessageKind, 11)}
	if !slices.Equal(names, want) {
		t.Fatalf("kept %v, want %v", names, want)
	}
	if _, err := os.Stat(filepath.Join(dir, MessageKind+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	cp, _, err := LoadMessage(fs, dir)
	if err != nil || cp.Offset != 11 {
		t.Fatalf("newest: %+v %v", cp, err)
	}
}

func TestSaveFailuresKeepPreviousCheckpoint(t *testing.T) {
	for _, op := range []string{"open", "write", "sync", "rename", "syncdir"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveMessage(vfs.Default(), dir, MessageCheckpoint{Offset: 1}, 5); err != nil {
				t.Fatal(err)
			}
			injected := fmt.Errorf("injected %s failure", op)
			efs := vfs.NewErrorFS(vfs.Default(), func(o, path string) error {
				if o == op {
					return injected
				}
				return nil
			})
			if err := SaveMessage(efs, dir, MessageCheckpoint{Offset: 2}, 5); !errors.Is(err, injected) {
				t.Fatalf("save: %v, want the injected error", err)
			}
			cp, found, err := LoadMessage(vfs.Default(), dir)
			if err != nil || !found {
				t.Fatalf("found=%v err=%v", found, err)
			}
			// A failed directory sync leaves the renamed file in place (it is
			// complete and synced), so either checkpoint is acceptable then.
			if cp.Offset != 1 && !(op == "syncdir" && cp.Offset == 2) {
				t.Fatalf("loaded offset %d", cp.Offset)
			}
		})
	}
}

func checkpointFiles(t *testing.T, dir, kind string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), kind+".") && !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestEncodeMessageSubjects: a caller's sorted subjects give the same file
// as sorting them here; a list that is out of order, short, repeats or
// names a subject not in the map is not trusted.
func TestEncodeMessageSubjects(t *testing.T) {
	cp := MessageCheckpoint{Offset: 7, MaxSequences: map[string]int64{"a": 1, "b": 2, "c": 3}}
	want, err := EncodeMessage(cp)
	if err != nil {
		t.Fatal(err)
	}
	for _, subjects := range [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"a", "b"}, {"a", "a", "c"}, {"a", "b", "x"}, {}} {
		cp.Subjects = subjects
		got, err := EncodeMessage(cp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("with Subjects %q:\n%s\nwant\n%s", subjects, got, want)
		}
	}
}

// BenchmarkEncodeMessage: a checkpoint of 33,333 subjects, sorted here each
// time and in the order a caller keeps (the store's checkpointer).
func BenchmarkEncodeMessage(b *testing.B) {
	cp := MessageCheckpoint{Offset: 1, MaxSequences: map[string]int64{}}
	for i := range 33_333 {
		cp.MaxSequences["bench.subject.some.prefix."+strconv.Itoa(i*7919%100_000)] = int64(i)
	}
	b.Run("sorting", func(b *testing.B) {
		for range b.N {
			if _, err := EncodeMessage(cp); err != nil {
				b.Fatal(err)
			}
		}
	})
	cp.Subjects = slices.Sorted(maps.Keys(cp.MaxSequences))
	b.Run("kept-order", func(b *testing.B) {
		for range b.N {
			if _, err := EncodeMessage(cp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
