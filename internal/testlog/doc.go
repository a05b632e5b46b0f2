// Package testlog gives tests a logger that writes into the test's output
// (and stops when the test ends, so servers outliving it by a moment do not
// panic the test binary) and a goroutine-safe buffer for asserting on logs.
// It is for tests only; the broker, client, metaserver, replication and
// remoting tests share it instead of keeping a copy each.
package testlog
