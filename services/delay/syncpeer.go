package delay

import (
	"context"
	"net"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/syncpeer"
)

// slavePeer decides whether a sync connection comes from the delay group's
// registered DELAY_SLAVE (replication.MasterConfig.CheckSlave): the check
// a broker master makes too (services/syncpeer), with the delay names.
type slavePeer struct{ c *syncpeer.Checker }

func newSlavePeer(s *Server) *slavePeer {
	return &slavePeer{c: &syncpeer.Checker{Slave: syncpeer.Delay, Group: s.Group, Log: s.log.Named("sync"), RefreshEvery: 2 * time.Second,
		Fetch: func(ctx context.Context) (syncpeer.Row, error) {
			return syncpeer.FetchRow(ctx, syncpeer.Self{MetaEndpoint: s.settings.MetaEndpoint, Hostname: s.hostname,
				Port: s.Port(), SyncPort: s.settings.SyncPort, Role: protocol.RoleDelayMaster, Group: s.Group()})
		}}}
}

// set records the row learnt with the meta at start.
func (p *slavePeer) set(row syncpeer.Row) { p.c.Set(row) }

// check is the CheckSlave of the group's master.
func (p *slavePeer) check(ctx context.Context, remote net.Addr) error { return p.c.Check(ctx, remote) }
