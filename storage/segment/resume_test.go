package segment

import (
	"math/rand"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

// TestCloseUnsyncedResume: a log closed without a sync names the segment
// files holding unsynced bytes (and its directory, after a new segment);
// opened again and resumed at its exact end it reads everything and
// appends right after it; a crash after SyncFile on those files keeps
// every record. Resume refuses an end outside the last segment.
func TestCloseUnsyncedResume(t *testing.T) {
	dir := t.TempDir()
	cfs := vfs.NewCrashFS(vfs.Default())
	l := openLog(t, cfs, dir)
	var offs []int64
	for range 30 {
		offs = append(offs, appendRecord(t, l, 1000))
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 100 { // past a segment end (testSegSize): a new file
		offs = append(offs, appendRecord(t, l, 1000))
	}
	end := l.WrotePosition()
	u := l.CloseUnsynced()
	if len(u.Files) < 2 || u.Dir != dir {
		t.Fatalf("CloseUnsynced owes %+v, want the two newest segment files and the directory %s", u, dir)
	}

	l = openLog(t, cfs, dir)
	if err := l.Resume(end); err != nil {
		t.Fatal(err)
	}
	if l.WrotePosition() != end || l.FlushedPosition() != end {
		t.Fatalf("resumed at %d: wrote %d, flushed %d", end, l.WrotePosition(), l.FlushedPosition())
	}
	for _, off := range offs {
		checkRecord(t, l, off, 1000)
	}
	if off := appendRecord(t, l, 100); off != end {
		t.Fatalf("append after Resume at %d, want %d", off, end)
	}
	if err := l.Resume(0); err == nil {
		t.Fatal("Resume before the last segment succeeded")
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, f := range u.Files {
		if err := SyncFile(cfs, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfs.SyncDir(u.Dir); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := cfs.Crash(rand.New(rand.NewSource(1)), vfs.CrashOptions{}); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, cfs, dir)
	defer l.Close()
	for _, off := range offs {
		checkRecord(t, l, off, 1000)
	}
	checkRecord(t, l, end, 100)
}
