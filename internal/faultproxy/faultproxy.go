package faultproxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards one listening port to a target for the fault tests.
// cut makes it a black hole (what a network partition looks like to both
// ends: silence, no reset): bytes already in flight and new connections
// are swallowed until heal, which resets the swallowed connections and
// forwards new ones again. delay slows every chunk in both directions
// (a slow link).
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	delay time.Duration
	conns map[*proxyConn]struct{}
	wg    sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	holed          bool // swallowed by a cut: closed at heal
}

func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Port is the proxy's listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		pc := &proxyConn{client: c}
		p.mu.Lock()
		holed := p.cut
		p.mu.Unlock()
		if !holed {
			s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			pc.server = s
		}
		p.mu.Lock()
		if p.cut && pc.server != nil {
			holed = true
		}
		pc.holed = holed
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.pipe(pc, pc.client, pc.server) }()
		if pc.server != nil {
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(pc, pc.server, pc.client) }()
		}
	}
}

// pipe copies from → to, dropping the bytes while the connection is holed.
func (p *Proxy) pipe(pc *proxyConn, from, to net.Conn) {
	defer p.drop(pc)
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			holed, delay := pc.holed, p.delay
			p.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			if !holed && to != nil {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) drop(pc *proxyConn) {
	p.mu.Lock()
	holed := pc.holed
	if !holed {
		delete(p.conns, pc)
	}
	p.mu.Unlock()
	if holed {
		return // a partition: the other side hears nothing until heal
	}
	_ = pc.client.Close()
	if pc.server != nil {
		_ = pc.server.Close()
	}
}

// Partition starts swallowing traffic.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for pc := range p.conns {
		pc.holed = true
	}
}

// Heal resets the swallowed connections and forwards again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	var holed []*proxyConn
	for pc := range p.conns {
		if pc.holed {
			holed = append(holed, pc)
			delete(p.conns, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range holed {
		_ = pc.client.Close()
		if pc.server != nil {
			_ = pc.server.Close()
		}
	}
}

func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for pc := range p.conns {
		_ = pc.client.Close()
		if pc.server != nil {
			_ = pc.server.Close()
		}
	}
	p.conns = map[*proxyConn]struct{}{}
	p.mu.Unlock()
	p.wg.Wait()
}
