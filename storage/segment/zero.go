package segment

import "bytes"

var zeroPage [4096]byte

// clearNonZero zeroes b, writing only the pages that are not zero already
// (reading a clean page is much cheaper than dirtying it).
func clearNonZero(b []byte) {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			clear(b[:n])
		}
		b = b[n:]
	}
}
