package delay

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/protocol"
)

// slavePeer decides whether a sync connection comes from the delay group's
// registered DELAY_SLAVE (replication.MasterConfig.CheckSlave), as the
// broker's does: its IP must be the IP of the broker table's DELAY_SLAVE
// row. The row is learnt with the meta at start and asked again, at most
// every refreshEvery, when a connection does not match (a ReplaceBroker or
// a swap changed it). Without the check, any process that reaches
// sync.port could pose as the slave and make wait.slave.wrote acknowledge
// sends no slave holds.
type slavePeer struct {
	s            *Server
	refreshEvery time.Duration

	mu      sync.Mutex
	addr    string // ip:sync.port of the DELAY_SLAVE row ("" if the group has none)
	known   bool   // the metaserver said (a Java metaserver does not)
	fetched time.Time
}

func (p *slavePeer) set(addr string, known bool) {
	p.mu.Lock()
	p.addr, p.known, p.fetched = addr, known, time.Now()
	p.mu.Unlock()
}

// check is the CheckSlave of the group's master.
func (p *slavePeer) check(ctx context.Context, remote net.Addr) error {
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return fmt.Errorf("sync connection from %s refused: cannot read its IP: %w", remote, err)
	}
	ip := net.ParseIP(host)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.matches(ip) {
		return nil
	}
	if time.Since(p.fetched) >= p.refreshEvery {
		addr, known, err := p.fetch(ctx)
		if err != nil {
			return fmt.Errorf("sync connection from %s refused for now: cannot ask the metaserver whether it is the registered slave of delay group %s (%v); it is let in once the metaserver answers",
				host, p.s.Group(), err)
		}
		p.addr, p.known, p.fetched = addr, known, time.Now()
		if p.matches(ip) {
			return nil
		}
	}
	switch {
	case !p.known:
		return nil // a metaserver that does not say: only sync.secret protects the port
	case p.addr == "":
		return fmt.Errorf("sync connection from %s refused: delay group %s has no DELAY_SLAVE in the metaserver's broker table; register the slave (qmq tools AddBroker --role=6) and it is let in",
			host, p.s.Group())
	}
	return fmt.Errorf("sync connection from %s refused: the metaserver registers the DELAY_SLAVE of delay group %s at %s, and only that IP may replicate from this master; if the slave moved, update its row (qmq tools ReplaceBroker)",
		host, p.s.Group(), p.addr)
}

func (p *slavePeer) matches(ip net.IP) bool {
	if !p.known || p.addr == "" || ip == nil {
		return false
	}
	host, _, err := net.SplitHostPort(p.addr)
	if err != nil {
		host = p.addr
	}
	return ip.Equal(net.ParseIP(host))
}

// fetch asks the metaserver for this server's meta again, on a connection
// of its own, and returns the group's DELAY_SLAVE row.
func (p *slavePeer) fetch(ctx context.Context) (string, bool, error) {
	s := p.s
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, s.settings.MetaEndpoint)
	if err != nil {
		return "", false, err
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	resp, err := c.AcquireMeta(ctx, s.hostname, s.Port(), s.settings.SyncPort)
	if err != nil {
		return "", false, err
	}
	if resp.Role != protocol.RoleDelayMaster || resp.GroupName != s.Group() {
		return "", false, fmt.Errorf("the metaserver now registers this server as %s of group %s, not as the DELAY_MASTER of %s",
			protocol.RoleName(resp.Role), resp.GroupName, s.Group())
	}
	return resp.SlaveAddress, resp.SlaveKnown, nil
}
