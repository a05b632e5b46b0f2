// Package netlimits reads the connection and memory limits shared by the
// metaserver's and the broker's ports (max.connections,
// tcp.idle.timeout.ms, frame.read.timeout.ms, frame.memory.budget.bytes,
// http.max.connections), applies them to a remoting server and an HTTP
// server, and exports what they refused as Prometheus series.
package netlimits
