package broker

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/protocol"
)

// slaveRow is what the metaserver says about the group's slave.
type slaveRow struct {
	addr  string // ip:sync.port of the group's slave row ("" if the group has none)
	known bool   // the metaserver said (a Java metaserver does not)
}

// slavePeer decides whether a sync connection comes from the group's
// registered slave (replication.MasterConfig.CheckSlave): its IP must be
// the IP of the broker table's slave row for this group. The row is learnt
// with the broker's meta at start (BROKER_ACQUIRE_META's trailing slave
// address) and asked again, at most every refreshEvery, when a connection
// does not match: after a failover or ReplaceBroker the row has changed.
type slavePeer struct {
	fetch        func(ctx context.Context) (slaveRow, error)
	group        func() string
	log          hclog.Logger
	refreshEvery time.Duration

	mu            sync.Mutex
	row           slaveRow
	fetched       time.Time // when row was last asked for (zero: never)
	warnedUnknown bool
}

// set records the row learnt with the broker's meta.
func (p *slavePeer) set(row slaveRow) {
	p.mu.Lock()
	p.row, p.fetched = row, time.Now()
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
	if p.fetched.IsZero() || time.Since(p.fetched) >= p.refreshEvery {
		row, err := p.fetch(ctx)
		if err != nil {
			return fmt.Errorf("sync connection from %s refused for now: cannot ask the metaserver whether it is the registered slave of group %s (%v); the slave is let in once the metaserver answers",
				host, p.group(), err)
		}
		p.row, p.fetched = row, time.Now()
		if p.matches(ip) {
			return nil
		}
	}
	switch {
	case !p.row.known:
		if !p.warnedUnknown {
			p.warnedUnknown = true
			p.log.Warn("the metaserver does not say where the group's slave is registered (a Java metaserver?): the sync port cannot check the slave's address, only sync.secret protects it",
				"group", p.group(), "slave", host)
		}
		return nil
	case p.row.addr == "":
		return fmt.Errorf("sync connection from %s refused: group %s has no slave in the metaserver's broker table; register the slave (qmq tools AddBroker --role=1) and it is let in",
			host, p.group())
	}
	return fmt.Errorf("sync connection from %s refused: the metaserver registers the slave of group %s at %s, and only that IP may replicate from this master; if the slave moved, update its row (qmq tools ReplaceBroker)",
		host, p.group(), p.row.addr)
}

func (p *slavePeer) matches(ip net.IP) bool {
	if !p.row.known || p.row.addr == "" || ip == nil {
		return false
	}
	host, _, err := net.SplitHostPort(p.row.addr)
	if err != nil {
		host = p.row.addr
	}
	return ip.Equal(net.ParseIP(host))
}

// fetchSlaveRow asks the metaserver for this broker's meta again, on a
// connection of its own (the registrar's belongs to its goroutine), and
// returns its group's slave row.
func (s *instance) fetchSlaveRow(ctx context.Context) (slaveRow, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, s.settings.MetaEndpoint)
	if err != nil {
		return slaveRow{}, err
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		return slaveRow{}, err
	}
	defer c.Close()
	resp, err := c.AcquireMeta(ctx, s.hostname, s.Port(), s.settings.SyncPort)
	if err != nil {
		return slaveRow{}, err
	}
	if resp.Role != protocol.RoleMaster || resp.GroupName != s.Group() {
		return slaveRow{}, fmt.Errorf("the metaserver now registers this broker as %s of group %s, not as the master of group %s", roleName(resp.Role), resp.GroupName, s.Group())
	}
	return slaveRow{addr: resp.SlaveAddress, known: resp.SlaveKnown}, nil
}
