package delay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// Manual failover of a delay group (QMQ's runbook, with our
// SwapMasterSlave): stop the DELAY_MASTER, swap the group's rows (qmq tools
// SwapMasterSlave --brokerGroup=<group>, or client/admin), and the
// DELAY_SLAVE, which asks for its role every broker.heartbeat.interval.ms,
// stops with an error saying it was promoted; its supervisor starts it
// again and it runs as DELAY_MASTER on its copy (the store rebuilds the
// schedule from the copied message log and skips what the copied dispatch
// log says was delivered). A master that finds itself demoted stops the
// same way, without OFFLINE, which would mark its group's new master:
// sends and dispatching end within a heartbeat interval (the fence of a
// swap done while the old master still runs). Started again, it rejoins as
// the slave of the new master if its logs end within the takeover point
// of a lease promotion, cutting its tail first if they go past it
// (rejoin.go); a swap records no takeover point, so a store with logs
// stops and says to delete its store.root.
// Automatic failover with the lease is lease.go.

// followAsSlave keeps a DELAY_SLAVE running until ctx ends or the
// metaserver gives it another role.
func (r *registrar) followAsSlave(ctx context.Context) error {
	var promoted chan error // nil without failover: never ready
	if r.s.settings.Failover.Enable {
		wctx, stop := context.WithCancel(ctx)
		promoted = make(chan error, 1)
		var watcher sync.WaitGroup
		watcher.Go(func() { promoted <- r.watchMaster(wctx) })
		defer func() { stop(); watcher.Wait() }()
	}
	r.tryConsul(ctx)
	t := time.NewTicker(r.s.settings.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-promoted:
			if err != nil {
				return err
			}
			promoted = nil
			continue
		case <-t.C:
		}
		r.tryConsul(ctx)
		if err := r.checkRole(ctx); err != nil {
			if promoted != nil && r.takingOver.Load() {
				// The promotion is the watcher's own takeover, seen
				// between the metaserver's swap and the watcher's return:
				// let it finish (it releases the Consul lock for the
				// restarted master) and report it as a takeover. Bounded:
				// a watcher stuck in its call must not keep a promoted
				// slave running as a slave.
				select {
				case werr := <-promoted:
					if werr != nil {
						return werr
					}
				case <-time.After(10 * time.Second):
				case <-ctx.Done():
				}
			}
			return err
		}
	}
}

// checkRole asks the metaserver for this server's role and returns an
// error, which stops the server, when it changed. Failures to ask are not
// errors: the metaserver may be down for a while.
func (r *registrar) checkRole(ctx context.Context) error {
	s := r.s
	if r.client == nil {
		if err := r.connect(ctx); err != nil {
			return nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.client.AcquireMeta(cctx, s.hostname, s.Port(), s.settings.SyncPort)
	if err != nil {
		r.close()
		return nil
	}
	if resp.Role == r.role && resp.GroupName == r.group {
		if r.role == protocol.RoleDelaySlave && resp.MasterAddress != r.masterSync {
			return fmt.Errorf("the master of delay group %s moved from %s to %s: stopping so that the server is started again and copies the new master",
				r.group, r.masterSync, resp.MasterAddress)
		}
		return nil
	}
	if r.role == protocol.RoleDelayMaster {
		r.demoted.Store(true)
		s.online.Store(false) // no more sends are taken while the server stops
		return fmt.Errorf("the metaserver now registers this delay server as %s of group %q (a SwapMasterSlave?): it stops taking sends and dispatching. "+
			"Start it again to rejoin as the new master's slave (after a lease takeover it cuts the tail of its logs the new master never had; after a manual swap, if its logs may hold such a tail, it says to delete its store.root first)",
			protocol.RoleName(resp.Role), resp.GroupName)
	}
	return fmt.Errorf("the metaserver now registers this delay server as %s of group %q (promoted by SwapMasterSlave?): stopping so that its supervisor starts it again in the new role, where it serves the copy it holds",
		protocol.RoleName(resp.Role), resp.GroupName)
}
