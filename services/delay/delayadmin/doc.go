// Package delayadmin authenticates CANCEL_DELAY, the request that
// withdraws a scheduled message from a delay server (ours; QMQ has none).
//
// Why a shared secret and an HMAC: the delay server's broker.port is open
// to QMQ's clients, which never authenticate, so a request that removes
// messages must carry proof that it comes from the metaserver. Operators
// authenticate to the metaserver with an API token (valid-api-tokens.properties,
// as for every management action); the metaserver then signs the request to
// each delay master with delay.admin.secret, a key only servers hold. The
// secret never crosses the wire: a signature over this one request (target
// group, subject, message id, time, nonce) does, compared in constant time.
// A sync.secret was not reused: it is per group (the metaserver would need
// every group's), and it guards a different door (who may copy the logs).
//
// A signature is accepted within MaxSkew of the delay server's clock.
// Replaying one in that window can only cancel the same message again,
// which finds nothing the second time, so no nonce cache is kept.
package delayadmin
