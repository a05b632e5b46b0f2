// Package protocol implements QMQ's TCP wire format: frame framing, the
// field codec, and the bodies of the requests this project serves or sends
// (SEND_MESSAGE, the metaserver requests, CONSUME_MANAGE). It is
// byte-compatible with QMQ's Java clients and servers. All integers are
// big-endian.
//
// # Frames
//
//	total i32 (bytes after this field) | headerSize i16 | header | body
//	header (18 bytes): magic i32 0xDEC10ADE | code i16 | version i16 |
//	                   opaque i32 | flag i32 (0 request, 1 response) | requestCode i16
//
// In a request, code is the request code; in a response it is the status and
// requestCode names the request answered. The opaque pairs a response with its
// request; responses echo the request's version.
//
// ReadFrame validates everything before trusting it and grows the body buffer
// only as bytes arrive, so a hostile length costs at most what the peer sends.
// A clean end of stream yields io.EOF; a protocol violation or a truncated
// frame yields a *FrameError.
//
// # Fields
//
// str16 = i16 length + bytes; bytes32 = i32 length + bytes. Decoder reads
// fields from a slice with bounds checks; its first error sticks and names
// the offset and what was short. Counts read from the wire are checked
// against the remaining bytes before anything is allocated for them.
//
// # Where QMQ's reference description is incomplete or wrong
//
// Checked against the Java source (qmq-remoting, qmq-server, qmq-metaserver,
// qmq-delay-server):
//
//   - Message tags are present exactly when the message flag has bit 4; the
//     header version plays no part. The Java broker reads tags by flag alone,
//     and the Java delay server forwards stored (possibly tagged) messages to
//     brokers in frames of version 7. DecodeMessages therefore ignores its
//     version argument for the layout.
//   - The tag count is read by Java as a signed byte; counts above 127 are
//     rejected here. Producers are limited to 10 tags (MaxTags).
//   - Message attribute values: the Java producer writes the length of any
//     value as (short) length, and the Java consumer adds 65536 to a negative
//     length, so values of 32768..65535 bytes work between Java peers. The
//     decoder here accepts them; AppendMessage only writes values up to 32767
//     bytes, which every reader understands.
//   - The Java broker does not verify a message's CRC on receipt (it stores
//     the sender's CRC and checks it only when recovering its log).
//     DecodeMessages verifies it; Java producers always compute it correctly
//     (CRC-32/IEEE of the bytes after the CRC, held in an i64).
//   - Header flag bit 1 means "one-way" in the Java code, but nothing sets it;
//     flags other than 0 and 1 are rejected.
//   - A headerSize above 18 is accepted and the extra header bytes skipped
//     (the Java decoder would misread such a frame).
//   - CLIENT_REGISTER's string map is i16 count + (key str16, value str16)
//     pairs in HashMap order; clientLDC is sent only when non-empty; integer
//     values are decimal strings and a bad clientTypeCode/requestType reads
//     as OTHER(3)/ONLINE(1).
//   - The SEND_MESSAGE response lists failed messages only, as the doc says;
//     BROKER_REGISTER is answered with an empty SUCCESS body.
//   - HEARTBEAT (100) is defined but no Java component sends it or registers
//     a processor for it (a Java server would answer UNKNOWN_CODE); consumer
//     heartbeats travel as ACK_REQUEST with begin < 0. Our servers answer it
//     with an empty SUCCESS.
//   - Java requests carry version 9 (the delay server's forwarded
//     SEND_MESSAGE uses 7); Java servers force every response's opaque,
//     version and request code to the request's, which remoting.Server does
//     too.
//
// # Our additions
//
//   - BROKER_ACQUIRE_META may carry a trailing syncPort i32 after the port
//     (Java metaservers ignore trailing bytes, Java brokers never send it).
//   - Our servers answer failures with a non-success status and a body of one
//     str16 human-readable message (AppendErrorBody / DecodeErrorBody); Java
//     servers send an empty body, which DecodeErrorBody reads as "".
//   - Decoders of fixed layouts ignore trailing bytes, as Java's do.
package protocol
