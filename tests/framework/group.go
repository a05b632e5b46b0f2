package framework

import (
	"fmt"
)

// Group is a broker group: a master and, with ClusterOptions.Slaves, a
// slave. Master and Slave are the roles the framework last gave them
// (SwapMasterSlave exchanges them); after an automatic failover, ask
// Broker.Health which is which.
type Group struct {
	c      *Cluster
	Name   string
	Master *Broker
	Slave  *Broker // nil without ClusterOptions.Slaves
}

// WaitOnline waits until the group's master is online, if it is running.
func (g *Group) WaitOnline() {
	g.c.t.Helper()
	m := g.Master
	if !m.Running() {
		return
	}
	waitHealth(g.c, fmt.Sprintf("group %s's master %s online", g.Name, m), func() (bool, string) {
		h, err := m.Health()
		if err != nil {
			return false, err.Error()
		}
		return h.Role == "MASTER" && h.Online, h.String()
	})
}

// WaitSlaveCaughtUp waits until the group's slave is connected to its
// master and has both of its logs up to the master's ends, as their
// /health pages say.
func (g *Group) WaitSlaveCaughtUp() {
	g.c.t.Helper()
	m, s := g.Master, g.Slave
	if s == nil {
		g.c.t.Fatalf("framework: group %s has no slave (ClusterOptions.Slaves)", g.Name)
	}
	waitHealth(g.c, fmt.Sprintf("group %s's slave %s caught up with %s", g.Name, s, m), func() (bool, string) {
		mh, err := m.Health()
		if err != nil {
			return false, "master: " + err.Error()
		}
		sh, err := s.Health()
		if err != nil {
			return false, "slave: " + err.Error()
		}
		ok := mh.Role == "MASTER" && mh.Slave != "" && sh.Role == "SLAVE" && sh.MasterConnected != nil && *sh.MasterConnected &&
			sh.MessageLogEnd == mh.MessageLogEnd && sh.ActionLogEnd == mh.ActionLogEnd
		return ok, fmt.Sprintf("master %s; slave %s", mh, sh)
	})
}

// SwapMasterSlave is the manual failover runbook (README, High
// availability): stop both brokers, SwapMasterSlave through the management
// API, start both, and wait until the new master is online and the new
// slave has caught up. Master and Slave are exchanged.
func (g *Group) SwapMasterSlave() {
	t := g.c.t
	t.Helper()
	if g.Slave == nil {
		t.Fatalf("framework: group %s has no slave to swap with (ClusterOptions.Slaves)", g.Name)
	}
	g.Master.Stop()
	g.Slave.Stop()
	ctx, cancel := g.c.ctx()
	defer cancel()
	if _, err := g.c.admin.SwapMasterSlave(ctx, g.Name); err != nil {
		t.Fatalf("framework: swap group %s: %v", g.Name, err)
	}
	g.Master, g.Slave = g.Slave, g.Master
	g.Master.Start()
	g.Slave.Start()
	g.WaitOnline()
	g.WaitSlaveCaughtUp()
}
