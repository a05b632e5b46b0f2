package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// httpGet fetches a metaserver HTTP path (endpoint is its /meta/address URL).
func httpGet(t *testing.T, endpoint, pathAndQuery string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + u.Host + pathAndQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The metaserver forces a consumer offline (QMQ's client_offline_state via
// /onoffline): it stops pulling, and resumes when set online again. The
// consumer's clientLDC reaches the metaserver as its room.
func TestForcedOfflineAndLDC(t *testing.T) {
	endpoint, mc := startMeta(t)
	startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	reg := prometheus.NewRegistry()
	const subject, group = "offl", "grp"
	c := newTestConsumer(t, endpoint, subject, group, WithRouteRefresh(200*time.Millisecond), WithLDC("ldc-east"), WithRegisterer(reg))
	var mu sync.Mutex
	got := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = c.Run(ctx, func(ctx context.Context, m *Message) error {
			mu.Lock()
			got[m.ID()] = true
			mu.Unlock()
			return nil
		})
	}()
	received := func(id string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return got[id] }
	}
	first := sendN(t, p, subject, 1, nil)[0]
	testutil.Eventually(t, 5*time.Second, "first message", received(first))

	if s := httpGet(t, endpoint, "/subject/consumers?subject="+subject); !strings.Contains(s, "room=ldc-east") {
		t.Errorf("/subject/consumers does not show the LDC: %s", s)
	}

	set := func(state string) {
		q := url.Values{"operation": {"update"}, "clientId": {c.ClientID()}, "subject": {subject}, "consumerGroup": {group}, "state": {state}}
		if s := httpGet(t, endpoint, "/onoffline?"+q.Encode()); !strings.Contains(s, `"status":0`) {
			t.Fatalf("/onoffline state=%s: %s", state, s)
		}
	}
	set("1")
	testutil.Eventually(t, 5*time.Second, "consumer offline", func() bool { return !c.Online() })
	if v := mustMetric(t, reg, "qmq_client_consumer_online", "subject", subject, "group", group); v != 0 {
		t.Errorf("online gauge = %v while offline", v)
	}
	time.Sleep(400 * time.Millisecond) // long polls under way end (pull timeout 200 ms)
	second := sendN(t, p, subject, 1, nil)[0]
	time.Sleep(time.Second)
	if received(second)() {
		t.Fatal("an offline consumer received a message")
	}
	set("0")
	testutil.Eventually(t, 5*time.Second, "consumer online", c.Online)
	testutil.Eventually(t, 5*time.Second, "message sent while offline", received(second))
	if v := mustMetric(t, reg, "qmq_client_consumer_online", "subject", subject, "group", group); v != 1 {
		t.Errorf("online gauge = %v when online again", v)
	}
}

// Only the newest answer counts (the Java metaserver answers errors with
// timestamp -2 and OFFLINE), and only for the real subject.
func TestConsumerStateFromRegisterResponses(t *testing.T) {
	r := newRouter("", "", "id", time.Minute, hclog.NewNullLogger())
	var states []bool
	r.onState = func(subject, group string, offline bool) { states = append(states, offline) }
	consumer := routeKey{clientType: protocol.ClientTypeConsumer, subject: "s", group: "g"}
	apply := func(k routeKey, ts int64, state uint8) {
		r.applyState(k, &protocol.ClientRegisterResponse{Timestamp: ts, OnOfflineState: state})
	}
	apply(consumer, -2, protocol.ClientOffline) // error answer before any real one
	apply(consumer, 100, protocol.ClientOffline)
	apply(consumer, -2, protocol.ClientOnline) // stale
	apply(consumer, 99, protocol.ClientOnline) // stale
	apply(routeKey{clientType: protocol.ClientTypeConsumer, subject: RetrySubject("s", "g"), group: "g"}, 200, protocol.ClientOnline)
	apply(routeKey{clientType: protocol.ClientTypeProducer, subject: "s"}, 200, protocol.ClientOnline)
	apply(consumer, 100, protocol.ClientOnline)
	if want := []bool{true, false}; !slices.Equal(states, want) {
		t.Fatalf("offline states passed on: %v, want %v", states, want)
	}
}
