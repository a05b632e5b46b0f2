// Package procstat reads a process's state, parent, start time and command
// name from /proc/<pid>/stat (Linux). Test harnesses use it to find the
// processes a test binary started and to tell whether they still run; a
// process is named by its PID and start time, so that a PID reused after
// its process ended is not taken for it.
package procstat
