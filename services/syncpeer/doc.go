// Package syncpeer decides whether a connection to a master's sync.port
// comes from its group's registered slave: the check a broker master and a
// delay master both give services/replication (MasterConfig.CheckSlave).
//
// The slave's IP must be the IP of the metaserver's broker-table row of
// the group's slave (BROKER_ACQUIRE_META's trailing slave address). The
// row is learnt with the master's meta at start and asked again, at most
// every RefreshEvery, when a connection does not match: after a failover
// or a ReplaceBroker the row has changed. Without the check any process
// that reaches sync.port could pose as the slave and, with
// wait.slave.wrote, make the master acknowledge sends no slave holds
// (sync.secret, package syncauth, is the other half).
package syncpeer
