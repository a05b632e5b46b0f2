package diskspace

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/qmq-go/qmq/storage/vfs"
)

func TestWrap(t *testing.T) {
	fs := vfs.NewUsageFS(vfs.Default(), func(string) (vfs.Usage, error) { return vfs.Usage{Total: 64 << 20, Free: 12 << 20}, nil })
	other := errors.New("boom")
	if got := Wrap(fs, other, "/data", 1, "x"); got != other {
		t.Fatalf("Wrap changed an unrelated error: %v", got)
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		cause := fmt.Errorf("preallocate: %w", &os.PathError{Op: "fallocate", Path: "/data/x", Err: errno})
		err := Wrap(fs, cause, "/data/messagelog", 1<<30, "a new segment (messagelog.segment.size)")
		var fe *FullError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFull) || !errors.Is(err, errno) {
			t.Fatalf("%v: got %v", errno, err)
		}
		want := "disk full: /data/messagelog has 12.0 MiB free of 64.0 MiB, needs 1.0 GiB for a new segment (messagelog.segment.size); " +
			"the whole file system is smaller than that: lower the setting or give the store a larger volume"
		if err.Error() != want {
			t.Fatalf("message\n got  %s\n want %s", err, want)
		}
		if again := Wrap(fs, fmt.Errorf("outer: %w", err), "/elsewhere", 1, "y"); !errors.As(again, &fe) || fe.Path != "/data/messagelog" {
			t.Fatalf("Wrap of a wrapped FullError: %v", again)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{-1: "?", 0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 1 << 30: "1.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
