package admin

import "time"

// Role is a broker's role code in the broker table, as AddBroker takes it.
type Role int

// QMQ's role codes. 2 (standby), 3 (delay) and 7 (delay backup) exist in
// QMQ's enum but cannot be registered.
const (
	RoleMaster      Role = 0
	RoleSlave       Role = 1
	RoleBackup      Role = 4
	RoleDelayMaster Role = 5
	RoleDelaySlave  Role = 6
)

// Broker is a row of the broker table (QMQ's BrokerMeta). Role is its name
// as the metaserver prints it: MASTER, SLAVE, BACKUP, DELAY_MASTER, …
type Broker struct {
	Group     string `json:"group"`
	Role      string `json:"role"`
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	ServePort int    `json:"servePort"`
	SyncPort  int    `json:"syncPort"`
}

// BrokerSpec is a broker to register (AddBroker) or to put in a role's place
// (ReplaceBroker): what an operator passes to `qmq tools AddBroker`.
type BrokerSpec struct {
	Group     string // --brokerGroup; master and slave share it
	Role      Role
	Hostname  string // the broker's hostname (what it sends in BROKER_ACQUIRE_META)
	IP        string // the IPv4 address clients and the slave reach it at
	ServePort int    // its broker.port
	SyncPort  int    // its sync.port
	// IfAbsent (ours; AddBroker only): succeed without change when
	// Hostname:ServePort is already this group's member with this IP and
	// SyncPort, whatever its role now.
	IfAbsent bool
}

// Swap is SwapMasterSlave's answer: the group's rows after the swap.
type Swap struct {
	Master Broker `json:"master"`
	Slave  Broker `json:"slave"`
}

// BrokerGroup is a broker group's state (QMQ's BrokerGroup). BrokerState is
// RW, R (read-only), W or NRW (no master online).
type BrokerGroup struct {
	GroupName   string            `json:"groupName"`
	Master      string            `json:"master"`
	Slaves      []string          `json:"slaves"`
	UpdateTime  int64             `json:"updateTime"`
	BrokerState string            `json:"brokerState"`
	Tag         string            `json:"tag"`
	Kind        string            `json:"kind"`
	Ext         map[string]string `json:"ext"`
}

// SubjectRoute is the broker groups a subject is spread over (QMQ's
// SubjectRoute).
type SubjectRoute struct {
	Subject      string   `json:"subject"`
	BrokerGroups []string `json:"brokerGroups"`
	Version      int      `json:"version"`
	UpdateTime   int64    `json:"updateTime"`
}

// SubjectInfo is a declared subject and its routing tag (QMQ's SubjectInfo).
type SubjectInfo struct {
	Name       string `json:"name"`
	Tag        string `json:"tag"`
	UpdateTime int64  `json:"updateTime"`
}

// ResetCode says where ResetOffset moves a consumer group.
type ResetCode int

// QMQ's codes 1 and 2, and ours, 3.
const (
	ResetLatest    ResetCode = 1
	ResetEarliest  ResetCode = 2
	ResetTimestamp ResetCode = 3 // the first message stored at or after ResetSpec.At (qmq-go brokers only)
)

// ResetSpec is a ResetOffset request.
type ResetSpec struct {
	Subject string // the subject, or its retry subject %RETRY%<subject>%<group>
	Group   string // the consumer group
	Code    ResetCode
	At      time.Time // with ResetTimestamp; the zero time sends none (refused)
}

// ResetResult is ResetOffset's answer. Groups is filled for ResetTimestamp
// only: where each broker group's cursor now is.
type ResetResult struct {
	Message string
	Groups  []ResetGroup
}

// ResetGroup is one broker group's cursor after a reset to a time.
type ResetGroup struct {
	BrokerGroup  string `json:"brokerGroup"`
	NextSequence int64  `json:"nextSequence"`          // the consumer-log sequence the group pulls next
	MessageTime  string `json:"messageTime,omitempty"` // when that message was stored (RFC 3339); "": none yet
}
