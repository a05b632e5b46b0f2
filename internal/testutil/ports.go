package testutil

import (
	"net"
	"sync"
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
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for tries := 0; len(ports) < n; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		listeners = append(listeners, l) // held: the next Listen gets another
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut[port] {
			if tries > 1000 {
				t.Fatalf("find a free port: %d of the loopback ports handed out already", len(handedOut))
			}
			continue
		}
		handedOut[port] = true
		ports = append(ports, port)
	}
	return ports
}

// handedOut are the ports FreePorts returned in this test binary: never
// returned twice, so that servers whose ports are all picked before any of
// them starts (a cluster, a master and its slave) cannot be given the same
// one (tests/framework's brokers collided: "address already in use"). Ports
// are a resource of the whole process, hence a package-level set.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)
