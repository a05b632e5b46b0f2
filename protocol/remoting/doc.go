// Package remoting carries QMQ protocol frames over TCP: a Server that
// dispatches request frames to handlers by request code, and a Client that
// multiplexes calls over one connection by opaque. It is the equivalent of
// QMQ's Netty server and client and interoperates with Java peers.
//
// # Server
//
// Each connection has one reader goroutine. Requests are handled
// concurrently (up to ServerConfig.MaxConcurrentRequests per connection; the
// reader stops reading while that many are in flight), and responses are
// written under a per-connection mutex, so they may leave in a different
// order than the requests arrived; peers match them by opaque. The server
// sets the opaque, flag, version and request code of every response from the
// request, so a handler only chooses the status and body.
//
// Built in:
//   - HEARTBEAT (100) is answered with an empty SUCCESS unless a handler is
//     registered for it;
//   - an unregistered request code is answered with UNKNOWN_CODE and an error
//     body naming the code;
//   - response frames sent to the server are ignored;
//   - a handler panic is recovered, logged once with its stack, and answered
//     with BROKER_ERROR;
//   - a malformed frame (bad magic, bad lengths, oversize) is logged once at
//     WARN with the remote address, reported to OnBadFrame, and the
//     connection is closed; the server keeps running.
//
// Limits, so that no peer can make the server hold memory or connections
// without bound (each logged at WARN, rate-limited, and counted in
// ServerStats):
//   - MaxConnections: one more connection is closed as soon as accepted;
//   - FrameReadTimeout: a frame must arrive in full within it once its
//     first byte did (a peer trickling bytes is cut off);
//   - IdleTimeout: a connection silent that long with no request in
//     flight is closed;
//   - MemoryBudget: request bodies are read into buffers that grow with the
//     bytes that arrived (protocol.ReadFrameWith) and are counted until their
//     handler returns; a frame that finds no room waits, and is cut off at
//     its read timeout. A frame's first buffer (up to the 32 KiB read buffer)
//     is always granted, so small requests are served while large ones wait.
//
// Goroutine ownership: Serve's caller owns the accept loop; the Server owns
// one reader goroutine per connection and one goroutine per request in
// flight. Close (or cancelling Serve's context) closes the listener and every
// connection, cancels the contexts passed to handlers, and waits for all of
// them. Handlers must return once their context is done.
//
// # Client
//
// A Client owns one connection and one reader goroutine. Call assigns an
// opaque, writes the request and waits for the matching response or the
// context; a connection failure fails every pending call and the Client stays
// failed (Done is closed, Err says why): dial a new one.
package remoting
