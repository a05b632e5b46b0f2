package testutil

import (
	"net"
	"testing"
)

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago. All n listeners are open at once, so the ports differ; they are
// closed before FreePorts returns, so something else may take a port
// before the test binds it. Use it only where a port must be known before
// the server starts (a slave's ports registered with the metaserver, a
// child process's flags); otherwise listen on port 0.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
