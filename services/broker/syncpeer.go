package broker

import (
	"context"
	"net"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/syncpeer"
)

// slavePeer decides whether a sync connection comes from the group's
// registered slave (replication.MasterConfig.CheckSlave): the shared
// check of services/syncpeer, with the broker's names.
type slavePeer struct{ c *syncpeer.Checker }

func newSlavePeer(s *instance) *slavePeer {
	return &slavePeer{c: &syncpeer.Checker{Fetch: s.fetchSlaveRow, Group: s.Group, Slave: syncpeer.Broker,
		Log: s.log.Named("sync"), RefreshEvery: 2 * time.Second}}
}

// set records the row learnt with the broker's meta.
func (p *slavePeer) set(row syncpeer.Row) { p.c.Set(row) }

// check is the CheckSlave of the group's master.
func (p *slavePeer) check(ctx context.Context, remote net.Addr) error { return p.c.Check(ctx, remote) }

// fetchSlaveRow asks the metaserver for this broker's meta again and
// returns its group's slave row.
func (s *instance) fetchSlaveRow(ctx context.Context) (syncpeer.Row, error) {
	return syncpeer.FetchRow(ctx, syncpeer.Self{MetaEndpoint: s.settings.MetaEndpoint, Hostname: s.hostname,
		Port: s.Port(), SyncPort: s.settings.SyncPort, Role: protocol.RoleMaster, Group: s.Group()})
}
