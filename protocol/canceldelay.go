package protocol

// CodeCancelDelay (ours; QMQ has none) asks a delay master to withdraw a
// scheduled, undelivered message. The body is signed by the metaserver with
// delay.admin.secret (services/delay/delayadmin): broker.port is open to
// unauthenticated clients, so the request carries its own proof. The answer
// is SUCCESS with a u8 (1 cancelled, 0 not found) or BROKER_REJECT with an
// error body. A server without the handler answers UNKNOWN_CODE.
const CodeCancelDelay int16 = 1050

func init() { requestNames[CodeCancelDelay] = "CANCEL_DELAY" }
