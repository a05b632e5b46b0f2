//go:build unix

package consumerlog

import "syscall"

// fileLimit is the process's file descriptor limit (the soft limit, which
// Go raises to the hard one at start).
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 4096
	}
	return int(l.Cur)
}
