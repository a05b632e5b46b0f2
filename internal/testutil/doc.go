// Package testutil holds the waiting and port helpers every package's tests
// need, so that each test file does not carry its own copy of
// eventually/waitFor/freePorts with its own poll interval and its own
// failure message.
//
// It is a leaf: it imports the standard library only, so any package's
// tests (storage, protocol, services, client, cmd, jobs) can use it without
// an import cycle.
package testutil
