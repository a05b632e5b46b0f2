package storage

import (
	"fmt"

	"github.com/qmq-go/qmq/storage/checkpoint"
	"github.com/qmq-go/qmq/storage/segment"
	"github.com/qmq-go/qmq/storage/vfs"
)

// TruncateLogs cuts the message log at messageEnd and the action log at
// actionEnd (record boundaries) in the store under cfg.Root, which must not
// be open. It is for a former master rejoining its group as a slave after
// a failover: the bytes past the new master's takeover point were never
// replicated (and never acknowledged, with wait.slave.wrote), and the new
// master has written other records at those offsets since.
//
// A log that already ends at or before its offset is left alone. When a
// log is cut, the checkpoints that may describe the cut bytes are reset:
// the message checkpoint (the next Open rebuilds every consumer log from
// the message log) and, if it lies past actionEnd, the action checkpoint
// (the pull-log table is replayed from the action log's first segment; a
// replica installs its master's table after its handshake anyway). It
// returns the ends before the cut.
func TruncateLogs(cfg Config, messageEnd, actionEnd int64) (oldMessageEnd, oldActionEnd int64, err error) {
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default()
	}
	cpDir := cfg.dir("checkpoint")
	cutMsg, oldMessageEnd, err := truncateSegments(fs, cfg.dir("messagelog"), cfg.MessageSegmentSize, messageEnd, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("truncate the message log at %d: %w", messageEnd, err)
	}
	cutAct, oldActionEnd, err := truncateSegments(fs, cfg.dir("actionlog"), cfg.ActionSegmentSize, actionEnd, cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("truncate the action log at %d: %w", actionEnd, err)
	}
	if cutMsg {
		mcp, found, err := checkpoint.LoadMessage(fs, cpDir)
		if err != nil {
			return 0, 0, fmt.Errorf("load message checkpoint: %w", err)
		}
		if found {
			// An empty checkpoint: recovery drops every consumer log and
			// replays the message log from its first retained record.
			if err := checkpoint.SaveMessage(fs, cpDir, checkpoint.MessageCheckpoint{Offset: 0}, 2); err != nil {
				return 0, 0, fmt.Errorf("reset message checkpoint (was at %d): %w", mcp.Offset, err)
			}
		}
	}
	if cutAct {
		acp, found, err := checkpoint.LoadAction(fs, cpDir)
		if err != nil {
			return 0, 0, fmt.Errorf("load action checkpoint: %w", err)
		}
		if found && acp.Offset > actionEnd {
			start, err := logStart(fs, cfg.dir("actionlog"), cfg.ActionSegmentSize)
			if err != nil {
				return 0, 0, err
			}
			if err := checkpoint.SaveAction(fs, cpDir, checkpoint.ActionCheckpoint{Offset: start}, 2); err != nil {
				return 0, 0, fmt.Errorf("reset action checkpoint (was at %d): %w", acp.Offset, err)
			}
		}
	}
	return oldMessageEnd, oldActionEnd, nil
}

// truncateSegments cuts the segment log in dir at end when its records may
// reach past it (the segments' capacity ends after end). It reports whether
// anything was cut and the capacity end before.
func truncateSegments(fs vfs.FS, dir string, size, end int64, cfg Config) (bool, int64, error) {
	l, err := segment.Open(segment.Config{FS: fs, Dir: dir, SegmentSize: size, Filler: func([]byte) {}, Logger: cfg.Logger})
	if err != nil {
		return false, 0, err
	}
	defer l.Close()
	old := l.WrotePosition() // the capacity end: Open does not scan records
	if l.SegmentCount() == 0 || old <= end {
		return false, old, nil
	}
	if end < l.MinOffset() {
		return false, old, fmt.Errorf("offset %d is before the log's first segment (%d): retention deleted it; wipe store.root instead and let the slave copy its master", end, l.MinOffset())
	}
	if err := l.Truncate(end); err != nil {
		return false, old, err
	}
	if err := l.Flush(); err != nil {
		return false, old, err
	}
	return true, old, nil
}

func logStart(fs vfs.FS, dir string, size int64) (int64, error) {
	l, err := segment.Open(segment.Config{FS: fs, Dir: dir, SegmentSize: size, Filler: func([]byte) {}})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.MinOffset(), nil
}
