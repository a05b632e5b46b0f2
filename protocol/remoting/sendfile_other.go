//go:build !linux

package remoting

import "net"

// sendFile writes head and then t's bytes to nc (a plain copy: sendfile(2)
// is used on Linux).
func sendFile(nc net.Conn, head []byte, t FileTail) error { return copyTail(nc, head, t) }
