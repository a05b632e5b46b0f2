package remoting

import (
	"fmt"
	"io"
	"net"
	"syscall"
)

// sendFile writes head and then t's bytes to nc. On TCP the head goes out
// with MSG_MORE, so that it leaves in the same segment as the file's first
// bytes: written alone it would be a segment of its own, and the peer's
// reader would wake once for the head and again for the data.
func sendFile(nc net.Conn, head []byte, t FileTail) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return copyTail(nc, head, t)
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
	more := syscall.MSG_MORE
	if left == 0 {
		more = 0 // nothing follows the head: it must not wait for more
	}
	var sendErr error
	ctlErr := src.Control(func(in uintptr) {
		werr := dst.Write(func(out uintptr) bool {
			for len(head) > 0 {
				n, err := syscall.SendmsgN(int(out), head, nil, nil, more)
				if n > 0 {
					head = head[n:]
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until the socket is writable
				case err == syscall.EINTR:
				case err != nil:
					sendErr = fmt.Errorf("write a frame's head (%d bytes left): %w", len(head), err)
					return true
				}
			}
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
