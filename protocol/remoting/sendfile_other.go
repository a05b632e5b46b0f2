//go:build !linux

package remoting

import (
	"io"
	"net"
)

// sendFile writes head and then t's bytes to nc (a plain copy: sendfile(2)
// is used on Linux).
func sendFile(nc net.Conn, head []byte, t FileTail) error {
	if _, err := nc.Write(head); err != nil {
		return err
	}
	_, err := io.Copy(nc, io.NewSectionReader(t.File, t.Offset, int64(t.Len)))
	return err
}
