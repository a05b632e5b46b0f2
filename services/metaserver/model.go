package metaserver

import (
	"fmt"

	"github.com/qmq-go/qmq/services/metaserver/store"
)

// The JSON shapes below follow QMQ's Jackson output field for field and in
// the same order, so scripts written against tools.sh keep working.

// actionResult is QMQ's ActionResult: status 0 ok, -1 error.
type actionResult struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

func ok(data any) actionResult { return actionResult{Status: 0, Message: "", Data: data} }

func fail(format string, args ...any) actionResult {
	return actionResult{Status: -1, Message: fmt.Sprintf(format, args...), Data: nil}
}

// brokerMeta is QMQ's BrokerMeta.
type brokerMeta struct {
	Group     string `json:"group"`
	Role      string `json:"role"`
	Hostname  string `json:"hostname"`
	IP        string `json:"ip"`
	ServePort int    `json:"servePort"`
	SyncPort  int    `json:"syncPort"`
}

func toBrokerMeta(b store.Broker) brokerMeta {
	return brokerMeta{Group: b.Group, Role: roleName(b.Role), Hostname: b.Hostname, IP: b.IP, ServePort: b.ServePort, SyncPort: b.SyncPort}
}

// brokerGroupJSON is QMQ's BrokerGroup.
type brokerGroupJSON struct {
	GroupName   string            `json:"groupName"`
	Master      string            `json:"master"`
	Slaves      []string          `json:"slaves"`
	UpdateTime  int64             `json:"updateTime"`
	BrokerState string            `json:"brokerState"`
	Tag         string            `json:"tag"`
	Kind        string            `json:"kind"`
	Ext         map[string]string `json:"ext"`
}

// subjectRouteJSON is QMQ's SubjectRoute.
type subjectRouteJSON struct {
	Subject      string   `json:"subject"`
	BrokerGroups []string `json:"brokerGroups"`
	Version      int      `json:"version"`
	UpdateTime   int64    `json:"updateTime"`
}

func toRouteJSON(r store.SubjectRoute) subjectRouteJSON {
	groups := r.BrokerGroups
	if groups == nil {
		groups = []string{}
	}
	return subjectRouteJSON{Subject: r.Subject, BrokerGroups: groups, Version: r.Version, UpdateTime: r.UpdateTime.UnixMilli()}
}

// subjectInfoJSON is QMQ's SubjectInfo.
type subjectInfoJSON struct {
	Name       string `json:"name"`
	Tag        string `json:"tag"`
	UpdateTime int64  `json:"updateTime"`
}

var roleNames = map[int]string{
	store.RoleMaster: "MASTER", store.RoleSlave: "SLAVE", store.RoleStandby: "STANDBY", store.RoleDelay: "DELAY",
	store.RoleBackup: "BACKUP", store.RoleDelayMaster: "DELAY_MASTER", store.RoleDelaySlave: "DELAY_SLAVE",
	store.RoleDelayBackup: "DELAY_BACKUP",
}

func roleName(r int) string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", r)
}

// roleKind is the group kind a role belongs to: NORMAL for 0/1/2/4, DELAY for 3/5/6/7.
func roleKind(r int) int {
	switch r {
	case store.RoleDelay, store.RoleDelayMaster, store.RoleDelaySlave, store.RoleDelayBackup:
		return store.KindDelay
	}
	return store.KindNormal
}

func isMasterRole(r int) bool {
	return r == store.RoleMaster || r == store.RoleDelay || r == store.RoleDelayMaster
}

func stateName(s int) string {
	switch s {
	case store.StateRW:
		return "RW"
	case store.StateR:
		return "R"
	case store.StateW:
		return "W"
	case store.StateNRW:
		return "NRW"
	}
	return fmt.Sprintf("UNKNOWN(%d)", s)
}

func kindName(k int) string {
	switch k {
	case store.KindNormal:
		return "NORMAL"
	case store.KindDelay:
		return "DELAY"
	}
	return fmt.Sprintf("UNKNOWN(%d)", k)
}
