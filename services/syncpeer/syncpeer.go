package syncpeer

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

// Row is what the metaserver says about a group's slave.
type Row struct {
	Addr  string // ip:sync.port of the group's slave row ("" if the group has none)
	Known bool   // the metaserver said (a Java metaserver does not)
}

// Checker is the CheckSlave of a group's master. Set the fields before
// the first Check; Check and Set may then be called concurrently.
type Checker struct {
	// Fetch asks the metaserver for the group's slave row again.
	Fetch func(ctx context.Context) (Row, error)
	// Group returns the master's group, for messages.
	Group func() string
	// Slave names the slave in messages and says how to register it:
	// Broker or Delay.
	Slave SlaveKind
	Log   hclog.Logger
	// RefreshEvery bounds how often a connection that does not match
	// makes Check ask the metaserver.
	RefreshEvery time.Duration

	mu            sync.Mutex
	row           Row
	fetched       time.Time // when row was last asked for (zero: never)
	warnedUnknown bool
}

// SlaveKind names a kind of slave in the refusals.
type SlaveKind struct {
	Group string // "group", "delay group"
	Name  string // "slave", "DELAY_SLAVE"
	Role  int32  // its role for qmq tools AddBroker --role
}

// The kinds of slave.
var (
	Broker = SlaveKind{Group: "group", Name: "slave", Role: protocol.RoleSlave}
	Delay  = SlaveKind{Group: "delay group", Name: "DELAY_SLAVE", Role: protocol.RoleDelaySlave}
)

// Set records the row learnt with the master's meta.
func (c *Checker) Set(row Row) {
	c.mu.Lock()
	c.row, c.fetched = row, time.Now()
	c.mu.Unlock()
}

// Check returns nil if remote may replicate from this master, else an
// error for the peer saying why and what to do.
func (c *Checker) Check(ctx context.Context, remote net.Addr) error {
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return fmt.Errorf("sync connection from %s refused: cannot read its IP: %w", remote, err)
	}
	ip := net.ParseIP(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.matches(ip) {
		return nil
	}
	k := c.Slave
	if c.fetched.IsZero() || time.Since(c.fetched) >= c.RefreshEvery {
		row, err := c.Fetch(ctx)
		if err != nil {
			return fmt.Errorf("sync connection from %s refused for now: cannot ask the metaserver whether it is the registered %s of %s %s (%v); it is let in once the metaserver answers",
				host, k.Name, k.Group, c.Group(), err)
		}
		c.row, c.fetched = row, time.Now()
		if c.matches(ip) {
			return nil
		}
	}
	switch {
	case !c.row.Known:
		if !c.warnedUnknown && c.Log != nil {
			c.warnedUnknown = true
			c.Log.Warn("the metaserver does not say where the group's slave is registered (a Java metaserver?): the sync port cannot check the slave's address, only sync.secret protects it",
				"group", c.Group(), "slave", host)
		}
		return nil
	case c.row.Addr == "":
		return fmt.Errorf("sync connection from %s refused: %s %s has no %s in the metaserver's broker table; register the slave (qmq tools AddBroker --role=%d) and it is let in",
			host, k.Group, c.Group(), k.Name, k.Role)
	}
	return fmt.Errorf("sync connection from %s refused: the metaserver registers the %s of %s %s at %s, and only that IP may replicate from this master; if the slave moved, update its row (qmq tools ReplaceBroker)",
		host, k.Name, k.Group, c.Group(), c.row.Addr)
}

func (c *Checker) matches(ip net.IP) bool {
	if !c.row.Known || c.row.Addr == "" || ip == nil {
		return false
	}
	host, _, err := net.SplitHostPort(c.row.Addr)
	if err != nil {
		host = c.row.Addr
	}
	return ip.Equal(net.ParseIP(host))
}

// Self identifies a master to the metaserver for FetchRow.
type Self struct {
	MetaEndpoint string // meta.server.endpoint
	Hostname     string
	Port         int   // broker.port
	SyncPort     int   // sync.port
	Role         int32 // the master role it must still have (protocol.RoleMaster, RoleDelayMaster)
	Group        string
}

// FetchRow asks the metaserver for self's meta again, on a connection of
// its own (a registrar's belongs to its goroutine), and returns the
// group's slave row. An error says so if self is no longer the group's
// master.
func FetchRow(ctx context.Context, self Self) (Row, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, self.MetaEndpoint)
	if err != nil {
		return Row{}, err
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	resp, err := c.AcquireMeta(ctx, self.Hostname, self.Port, self.SyncPort)
	if err != nil {
		return Row{}, err
	}
	if resp.Role != self.Role || resp.GroupName != self.Group {
		return Row{}, fmt.Errorf("the metaserver now registers this server as %s of group %s, not as the %s of group %s",
			protocol.RoleName(resp.Role), resp.GroupName, protocol.RoleName(self.Role), self.Group)
	}
	return Row{Addr: resp.SlaveAddress, Known: resp.SlaveKnown}, nil
}
