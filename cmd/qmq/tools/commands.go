package tools

import (
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/protocol/names"
)

// flagSpec is one command-line option, named as in QMQ's tools.
type flagSpec struct {
	name     string // flag name, also the form parameter unless param is set
	param    string // form parameter name when it differs (ResetOffset --action -> code)
	required bool
	// mayBeEmpty (ours) lets a required flag be given empty (--password=):
	// it must be written, but "" is a value.
	mayBeEmpty bool
	def        string
	help       string
	// boolean flags (ours) take no value and are sent only when given, as
	// <param>=true: without them the form is exactly QMQ's.
	boolean bool
	// check, if set, refuses a bad value before anything is sent (ours):
	// the metaserver applies the same rule (package protocol/names).
	check func(string) error
}

// orAll lets "*" (all subjects) through check.
func orAll(check func(string) error) func(string) error {
	return func(v string) error {
		if v == "*" {
			return nil
		}
		return check(v)
	}
}

// command is one tools.sh command and the management action it posts
// (package admin names the actions, for its typed client and for us).
type command struct {
	name   string
	action string
	token  bool
	help   string
	flags  []flagSpec
}

var (
	fBrokerGroup = flagSpec{name: "brokerGroup", required: true, help: "broker group name (master and slave share it; real-time and delay groups need different names)"}
	fRole        = flagSpec{name: "role", required: true, help: "0 master, 1 slave, 4 backup, 5 delay master, 6 delay slave"}
	fHostname    = flagSpec{name: "hostname", required: true, help: "the broker machine's hostname, as printed by `hostname` there"}
	fIP          = flagSpec{name: "ip", required: true, help: "the broker machine's IPv4 address (not 127.0.0.1 unless everything runs on one host)"}
	fServePort   = flagSpec{name: "servePort", required: true, help: "the broker's broker.port (20881; delay server 20801)"}
	fSyncPort    = flagSpec{name: "syncPort", required: true, help: "the broker's sync.port (20882; delay server 20802)"}
	fIfAbsent    = flagSpec{name: "ifAbsent", boolean: true, help: "(ours) succeed without changing anything when hostname:servePort is already a member of --brokerGroup with this ip and syncPort, whatever its role now (automatic failover swaps roles): for scripts and Nomad jobs that register a broker before every start"}
)

// commands lists QMQ's tools.sh commands (qmq-tools' Tools.java) in its order.
var commands = []command{
	{name: "AddBroker", action: admin.ActionAddBroker, token: true, help: "register a broker (run before starting it; --ifAbsent to run before every start)",
		flags: []flagSpec{fBrokerGroup, fRole, fHostname, fIP, fServePort, fSyncPort, fIfAbsent}},
	{name: "AddDb", action: admin.ActionAddDB, token: true, help: "register a client database for the watchdog to scan",
		flags: []flagSpec{
			{name: "type", def: "mmm", help: "database type (mmm = MySQL)"},
			{name: "host", required: true, help: "database host"},
			{name: "port", required: true, help: "database port"},
			{name: "username", required: true, help: "database user"},
			{name: "password", required: true, mayBeEmpty: true, help: "database password, stored in clear in datasource_config as QMQ does; --password= (empty) for a database that trusts the watchdog another way (README, Watchdog)"},
			{name: "room", def: "default", help: "watchdog namespace that scans it"},
		}},
	{name: "ReplaceBroker", action: admin.ActionReplaceBroker, token: true, help: "replace the broker of a (group, role), e.g. to move it to a new machine",
		flags: []flagSpec{fBrokerGroup, fRole, fHostname, fIP, fServePort, fSyncPort}},
	{name: "ListBrokers", action: admin.ActionListBrokers, help: "list registered brokers",
		flags: []flagSpec{{name: "brokerGroup", help: "only this group"}}},
	{name: "ListBrokerGroups", action: admin.ActionListBrokerGroups, help: "list broker groups and their state"},
	{name: "ListSubjectRoutes", action: admin.ActionListSubjectRoutes, help: "list subject -> broker group routes"},
	{name: "AddSubjectBrokerGroup", action: admin.ActionAddSubjectBrokerGroup, token: true, help: "add a broker group to a subject's route",
		flags: []flagSpec{fBrokerGroup, {name: "subject", required: true, help: "subject", check: names.Subject}}},
	{name: "RemoveSubjectBrokerGroup", action: admin.ActionRemoveSubjectBrokerGroup, token: true, help: "remove a broker group from a subject's route (or from all, with --subject=*)",
		flags: []flagSpec{fBrokerGroup, {name: "subject", required: true, help: "one subject or *, * means all subjects"}}},
	{name: "AddNewSubject", action: admin.ActionAddNewSubject, token: true, help: "declare a subject with a routing tag",
		flags: []flagSpec{{name: "subject", required: true, help: "subject: 1 to 100 of A-Z a-z 0-9 . _ -", check: names.Subject}, {name: "tag", required: true, help: "routing tag (groups with the same broker_group.tag serve it)"}}},
	{name: "ExtendSubjectRoute", action: admin.ActionExtendSubjectRoute, token: true, help: "add newBrokerGroup to every route that contains relatedBrokerGroup",
		flags: []flagSpec{
			{name: "relatedSubject", required: true, help: "one subject or *, * means all subject", check: orAll(names.Subject)},
			{name: "relatedBrokerGroup", required: true, help: "routes containing this group are extended"},
			{name: "newBrokerGroup", required: true, help: "group to add"},
		}},
	{name: "MarkReadonly", action: admin.ActionMarkReadonly, token: true, help: "stop producers from using a broker group (consumers still drain it)",
		flags: []flagSpec{fBrokerGroup, {name: "subject", def: "*", help: "one subject, or * for all", check: orAll(names.Subject)}}},
	{name: "UnMarkReadonly", action: admin.ActionUnMarkReadonly, token: true, help: "undo MarkReadonly",
		flags: []flagSpec{fBrokerGroup, {name: "subject", def: "*", help: "one subject, or * for all"}}},
	{name: "ResetOffset", action: admin.ActionResetOffset, token: true, help: "move a consumer group to the latest or earliest message, or (ours) to the first message stored at or after a time",
		flags: []flagSpec{
			{name: "subject", required: true, help: "subject (or its retry subject %RETRY%<subject>%<group>)", check: names.WireSubject},
			{name: "group", required: true, help: "consumer group", check: names.Group},
			{name: "action", param: "code", required: true, help: "1 LATEST, 2 EARLIEST, 3 TIMESTAMP (ours: needs --timestamp and qmq-go brokers)"},
			{name: "timestamp", help: "with --action=3: milliseconds since the epoch, or an RFC 3339 time such as 2024-05-01T08:00:00Z"},
		}},
	{name: "SwapMasterSlave", action: admin.ActionSwapMasterSlave, token: true, help: "(ours) manual failover: make the group's slave its master and the master its slave, atomically; stop both brokers first, start them after (see README, High availability)",
		flags: []flagSpec{fBrokerGroup}},
	{name: "CancelDelay", action: admin.ActionCancelDelay, token: true, help: "(ours) withdraw a scheduled delay message before it is due; answers which delay group cancelled it, or \"unknown or already delivered\" (see README, Delay messages)",
		flags: []flagSpec{
			{name: "subject", required: true, help: "the message's subject", check: names.Subject},
			{name: "messageId", required: true, help: "the message's id (the one the producer set or printed)"},
		}},
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}
