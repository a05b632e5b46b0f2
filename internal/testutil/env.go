package testutil

import (
	"os"
	"strconv"
	"testing"
)

// EnvInt reads a non-negative integer knob of a test (a perf test's count,
// rate or duration) from the environment, def when unset; a bad value
// fails the test naming the variable.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}
