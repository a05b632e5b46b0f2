package remoting

import (
	"fmt"
	"io"
	"net"
	"syscall"
)

// sendFile writes t's bytes to nc.
func sendFile(nc net.Conn, t FileTail) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		_, err := io.Copy(nc, io.NewSectionReader(t.File, t.Offset, int64(t.Len)))
		return err
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	src, err := t.File.SyscallConn()
	if err != nil {
		return err
	}
	off, left := t.Offset, t.Len
	var sendErr error
	ctlErr := src.Control(func(in uintptr) {
		werr := dst.Write(func(out uintptr) bool {
			for left > 0 {
				n, err := syscall.Sendfile(int(out), int(in), &off, left)
				if n > 0 {
					left -= n
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until the socket is writable
				case err == syscall.EINTR:
				case err != nil:
					sendErr = fmt.Errorf("sendfile %s at %d: %w", t.File.Name(), off, err)
					return true
				case n == 0:
					sendErr = fmt.Errorf("sendfile %s at %d: %w (%d bytes left)", t.File.Name(), off, io.ErrUnexpectedEOF, left)
					return true
				}
			}
			return true
		})
		if sendErr == nil {
			sendErr = werr
		}
	})
	if ctlErr != nil {
		return ctlErr
	}
	return sendErr
}
