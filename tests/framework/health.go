package framework

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/qmq-go/qmq/internal/testutil"
)

// Health is a broker's /health page (services/broker/http.go), the fields
// the framework and tests read: what an operator's runbook reads too.
type Health struct {
	Status           string   `json:"status"` // ok, starting, degraded
	Group            string   `json:"group"`
	Role             string   `json:"role"` // MASTER, SLAVE
	Online           bool     `json:"online"`
	State            string   `json:"state"`
	Readonly         bool     `json:"readonly"`
	ReadonlySubjects []string `json:"readonlySubjects"`
	MessageLogEnd    int64    `json:"messageLogEnd"`
	ActionLogEnd     int64    `json:"actionLogEnd"`
	Slave            string   `json:"slave"`
	SlaveLagBytes    *int64   `json:"slaveLagBytes"`
	Master           string   `json:"master"`
	MasterConnected  *bool    `json:"masterConnected"`
	BehindBytes      *int64   `json:"behindBytes"`
	LastError        string   `json:"lastError"`
	DiskFull         string   `json:"diskFull"`
}

// String is the page in brief, for wait-failure messages.
func (h Health) String() string {
	s := fmt.Sprintf("{%s %s online=%v logs=%d/%d", h.Status, h.Role, h.Online, h.MessageLogEnd, h.ActionLogEnd)
	if h.Slave != "" {
		s += " slave=" + h.Slave
	}
	if h.MasterConnected != nil {
		s += fmt.Sprintf(" master=%s connected=%v", h.Master, *h.MasterConnected)
	}
	if h.LastError != "" {
		s += " lastError=" + h.LastError
	}
	return s + "}"
}

// Health reads the broker's /health page (on a 503 too: a starting or
// degraded broker says why there).
func (b *Broker) Health() (Health, error) {
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(b.settings.HTTPPort)) + "/health"
	resp, err := b.c.http.Get(url)
	if err != nil {
		return Health{}, fmt.Errorf("broker %s /health: %w", b, err)
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return Health{}, fmt.Errorf("broker %s /health (HTTP %s): %w", b, resp.Status, err)
	}
	return h, nil
}

// waitHealth waits for cond, which reads /health pages, for the cluster's
// wait timeout.
func waitHealth(c *Cluster, what string, cond func() (bool, string)) {
	c.t.Helper()
	testutil.EventuallyState(c.t, c.opts.WaitTimeout, what, cond)
}
