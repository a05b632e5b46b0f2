//go:build race

package protocol

// raceEnabled: the race detector adds allocations, so allocation counts are not asserted.
const raceEnabled = true
