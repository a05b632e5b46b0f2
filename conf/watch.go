package conf

import (
	"context"
	"os"
	"time"
)

// Watch calls reload whenever one of paths changes (size or modification
// time, polled every interval, as QMQ polls its files) or a value arrives on
// hup (wire it to SIGHUP). It returns when ctx is done. A file that appears or
// disappears counts as a change.
func Watch(ctx context.Context, paths []string, interval time.Duration, hup <-chan os.Signal, reload func(reason string)) {
	type stamp struct {
		size int64
		mod  time.Time
		ok   bool
	}
	read := func() map[string]stamp {
		m := make(map[string]stamp, len(paths))
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil {
				m[p] = stamp{fi.Size(), fi.ModTime(), true}
			} else {
				m[p] = stamp{}
			}
		}
		return m
	}
	last := read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last = read()
			reload("SIGHUP")
		case <-t.C:
			now := read()
			for _, p := range paths {
				if now[p] != last[p] {
					last = now
					reload("file changed: " + p)
					break
				}
			}
		}
	}
}
