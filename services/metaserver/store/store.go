package store

import (
	"context"
	"errors"
	"time"
)

// Broker roles (QMQ's BrokerRole codes).
const (
	RoleMaster      = 0
	RoleSlave       = 1
	RoleStandby     = 2
	RoleDelay       = 3
	RoleBackup      = 4
	RoleDelayMaster = 5
	RoleDelaySlave  = 6
	RoleDelayBackup = 7
)

// Broker group kinds (QMQ's BrokerGroupKind codes).
const (
	KindNormal = 1
	KindDelay  = 2
)

// Broker group states (QMQ's BrokerState codes).
const (
	StateRW  = 1
	StateR   = 2
	StateW   = 3
	StateNRW = 4
)

// ErrDuplicate is returned (wrapped) when an insert hits a unique key.
var ErrDuplicate = errors.New("duplicate key")

// ErrNotFound is returned (wrapped) when a row that must exist does not.
var ErrNotFound = errors.New("not found")

// Broker is a row of the static topology table `broker`, written by AddBroker/ReplaceBroker.
type Broker struct {
	Group     string
	Role      int
	Hostname  string
	IP        string // dotted IPv4; stored as INT UNSIGNED like QMQ's INET_ATON
	ServePort int
	SyncPort  int
}

// BrokerGroup is a row of `broker_group`, written by the master's ONLINE/heartbeat/OFFLINE.
type BrokerGroup struct {
	Name          string
	Kind          int
	MasterAddress string
	State         int
	Tag           string
	UpdateTime    time.Time
}

// SubjectInfo is a row of `subject_info` (AddNewSubject).
type SubjectInfo struct {
	Name       string
	Tag        string
	UpdateTime time.Time
}

// SubjectRoute is a row of `subject_route`; BrokerGroups is stored as a JSON array.
type SubjectRoute struct {
	Subject      string
	BrokerGroups []string
	Version      int
	UpdateTime   time.Time
}

// ClientMeta is a row of `client_meta_info`, the subscription registry.
type ClientMeta struct {
	Subject       string
	ClientType    int
	ConsumerGroup string
	ClientID      string
	AppCode       string
	Room          string
	UpdateTime    time.Time
}

// OfflineState is a row of `client_offline_state` (0 online, 1 offline).
type OfflineState struct {
	ClientID      string
	Subject       string
	ConsumerGroup string
	State         int
}

// ReadonlySetting is a row of `readonly_broker_group_setting`; Subject may be "*".
type ReadonlySetting struct {
	Subject     string
	BrokerGroup string
}

// ClientDB is a row of `datasource_config` (AddDb), a client database the watchdog scans.
type ClientDB struct {
	URL      string // "<type>://host:port"
	User     string
	Password string
	Status   int
	Room     string
}

// Store is the metaserver's persistence. MySQL and embedded SQLite implement it with the same schema.
// Every method is safe for concurrent use. Errors from a down database are returned as is (wrapped).
// Lists are ordered by id (insertion order) and are nil when empty. Times are read back in UTC,
// truncated to seconds; a zero time to be written means now (see the package documentation).
type Store interface {
	Ping(ctx context.Context) error
	Close() error

	// broker: static topology. Lists are ordered by id (insertion order), as QMQ prints them.
	InsertBroker(ctx context.Context, b Broker) error // ErrDuplicate on (hostname, serve_port) or (group, role)
	// ReplaceBroker replaces the row of (b.Group, b.Role) and returns the old row; ErrNotFound if none.
	ReplaceBroker(ctx context.Context, b Broker) (Broker, error)
	ListBrokers(ctx context.Context) ([]Broker, error)

	// broker_group
	ListBrokerGroups(ctx context.Context) ([]BrokerGroup, error)
	// UpsertBrokerGroup inserts or updates kind, master_address, broker_state and update_time of the group
	// (tag is left alone on update).
	UpsertBrokerGroup(ctx context.Context, g BrokerGroup) error
	// UpdateBrokerGroupState sets broker_state and update_time=now; returns rows affected.
	UpdateBrokerGroupState(ctx context.Context, group string, state int, now time.Time) (int64, error)
	// MarkBrokerGroupNRWIfStale sets NRW only when update_time < staleBefore (so a fresher heartbeat
	// seen by another metaserver wins); returns rows affected.
	MarkBrokerGroupNRWIfStale(ctx context.Context, group string, staleBefore, now time.Time) (int64, error)

	// subject_info
	ListSubjectInfos(ctx context.Context) ([]SubjectInfo, error)
	GetSubjectInfo(ctx context.Context, subject string) (SubjectInfo, bool, error)
	InsertSubjectInfo(ctx context.Context, s SubjectInfo) error // ErrDuplicate

	// subject_route
	ListSubjectRoutes(ctx context.Context) ([]SubjectRoute, error)
	GetSubjectRoute(ctx context.Context, subject string) (SubjectRoute, bool, error)
	InsertSubjectRoute(ctx context.Context, subject string, groups []string) error // version 1; ErrDuplicate
	// UpdateSubjectRoute sets groups and version=version+1 WHERE version=oldVersion; returns rows affected.
	UpdateSubjectRoute(ctx context.Context, subject string, oldVersion int, groups []string) (int64, error)

	// client_meta_info
	InsertClientMeta(ctx context.Context, c ClientMeta) error // INSERT IGNORE semantics: duplicates are not an error
	ListClientMeta(ctx context.Context, subject string) ([]ClientMeta, error)

	// client_offline_state
	ListOfflineStates(ctx context.Context) ([]OfflineState, error)
	UpsertOfflineState(ctx context.Context, s OfflineState) error

	// readonly_broker_group_setting
	ListReadonlySettings(ctx context.Context) ([]ReadonlySetting, error)
	InsertReadonlySetting(ctx context.Context, s ReadonlySetting) error // duplicates are not an error
	DeleteReadonlySetting(ctx context.Context, s ReadonlySetting) (int64, error)

	// datasource_config
	InsertClientDB(ctx context.Context, d ClientDB) error // ErrDuplicate on url
	// ListClientDBs lists the client databases of room (all rooms if room is ""), in insertion order,
	// whatever their status.
	ListClientDBs(ctx context.Context, room string) ([]ClientDB, error)

	// broker roles swap and broker_epoch (ours, failover.go)
	FailoverStore
}
