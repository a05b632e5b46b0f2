// Package syncauth authenticates connections to a sync port (ours; QMQ's
// replication has no authentication): a broker master serves its logs, and
// counts the offsets a peer reports towards wait.slave.wrote, only on a
// connection whose peer proved it holds the group's shared secret
// (sync.secret or sync.secret.file). Without it any process that reaches
// sync.port could pose as the slave, echo the master's log end in
// heartbeats and make the master acknowledge sends that no slave wrote.
// The delay server and the backup are to use the same handshake on their
// sync ports.
//
// # Handshake (protocol.CodeSyncAuth, the peer's first frames)
//
//  1. The client (the replicating peer) sends a hello: whether it has a
//     secret, its group and role, and a fresh 32-byte random client nonce.
//     The server answers with whether it has a secret and a fresh 32-byte
//     random server nonce, kept for this connection only.
//  2. When both have a secret, the client sends
//     HMAC-SHA256(secret, "client" | serverNonce | clientNonce | group | role)
//     and the server compares it with its own computation in constant time
//     (hmac.Equal). It answers with the same MAC labelled "server", which
//     the client checks: each side knows the other holds the secret.
//
// Replay: a proof binds both nonces, and the server's nonce is new for every
// connection and usable once (a failed proof ends the connection), so a
// proof recorded on one connection is worth nothing on another. The secret
// never crosses the wire. Group and role are in the MAC, so a proof for
// another group or role does not verify either (groups sharing one secret
// cannot pose as each other's slaves).
//
// Mismatches are refused on both sides with one message: a secret on one
// side only, or different secrets ("sync auth failed: secrets differ; set
// the same sync.secret on master and slave of group X"). With no secret on
// either side the hello alone succeeds (QMQ compatibility): the broker logs
// a WARN at start, since such a sync port is open to anyone who reaches it.
//
// The handshake authenticates; it does not encrypt. Log bytes still travel
// in clear text: keep sync ports on a private network.
package syncauth
