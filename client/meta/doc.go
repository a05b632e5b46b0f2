// Package meta talks to the metaserver on behalf of brokers and clients: it
// finds the metaserver from a QMQ meta.server.endpoint (an
// http://host:port/meta/address URL, consul://<service>, or host:port), and
// sends BROKER_ACQUIRE_META, BROKER_REGISTER and CLIENT_REGISTER.
//
// Failures come back as errors meant to be logged as one line: the
// metaserver's own explanation (for an unregistered broker, the hostname and
// port sent, similar registered brokers and the `qmq tools AddBroker` command
// that fixes it) rather than a decoding stack trace.
package meta
