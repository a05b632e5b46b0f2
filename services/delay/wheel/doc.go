// Package wheel is the delay server's in-memory timing wheel: the scheduled
// entries of the loaded window (the schedule buckets due within
// load-ahead), kept by tick so that the earliest due entries are found
// without sorting.
//
// Layout. Entries live in one arena of fixed-size chunks (32 bytes per
// entry: time, sequence, offset, size and an index link); each tick that
// holds entries is a singly linked list through the arena, found by a map
// from tick number to list, and the ticks form a min-heap so the earliest
// tick is found in O(1) and a new tick costs O(log ticks). Inserting into an
// existing tick is O(1). Freed entries go on a free list and are reused, so
// memory is about 32 bytes per entry plus at most one partly used chunk,
// with per-tick costs (map and heap) shared by every entry of the tick.
//
// Semantics. PopDue never returns an entry whose time is after now; entries
// of one tick come out in no particular order, ticks in ascending order. The
// wheel is not safe for concurrent use: its owner (storage/delaystore)
// serializes access.
package wheel
