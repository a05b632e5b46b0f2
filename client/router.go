package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// ErrClosed is returned by calls on a closed Producer or Consumer.
var ErrClosed = errors.New("qmq client: closed")

// ErrNoBroker means the metaserver returned no usable broker group.
var ErrNoBroker = errors.New("qmq client: no broker group available")

// minRefreshGap rate-limits route refreshes triggered by errors.
const minRefreshGap = time.Second

type routeKey struct {
	clientType int32
	subject    string
	group      string
}

type route struct {
	groups []protocol.BrokerGroupInfo
	// withheld says, for the last answer, which groups of the subject's
	// route were left out and why (the metaserver's trailer, and groups this
	// client type cannot use): ErrNoBroker names them.
	withheld  []string
	fetched   time.Time
	online    bool // ONLINE registration done; later ones are HEARTBEAT
	stale     bool // refresh requested
	refreshMu sync.Mutex
}

// router keeps the metaserver connection, the routes of every (client type,
// subject, group) and the broker connections.
type router struct {
	endpoint string
	appCode  string
	clientID string
	log      hclog.Logger
	refresh  time.Duration
	ldc      string // clientLDC ("" not sent)

	// onState, if set, gets the forced online/offline state the metaserver
	// reports for a consumer of a real subject (not %RETRY%…), as QMQ's
	// MetaInfoService: responses older than the newest one seen (such as
	// the metaserver's timestamp -2 error answers) are ignored.
	onState   func(subject, group string, offline bool)
	stateMu   sync.Mutex
	stateTime int64 // timestamp of the newest response applied

	metaMu   sync.Mutex
	metaConn *meta.Client

	mu     sync.Mutex
	routes map[routeKey]*route
	conns  map[string]*remoting.Client
	dialMu map[string]*sync.Mutex
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

func newRouter(endpoint, appCode, clientID string, refresh time.Duration, log hclog.Logger) *router {
	return &router{
		endpoint: endpoint, appCode: appCode, clientID: clientID, log: log, refresh: refresh,
		routes: make(map[routeKey]*route), conns: make(map[string]*remoting.Client), dialMu: make(map[string]*sync.Mutex),
		stop: make(chan struct{}), stateTime: -1,
	}
}

// start runs the periodic refresh (QMQ re-registers every 60 s).
func (r *router) start() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.refresh)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				r.refreshAll()
			}
		}
	}()
}

func (r *router) refreshAll() {
	r.mu.Lock()
	keys := make([]routeKey, 0, len(r.routes))
	for k := range r.routes {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		ctx, cancel := r.stopCtx(10 * time.Second)
		if _, err := r.fetch(ctx, k, true); err != nil {
			r.log.Warn("route refresh failed; keeping the last route", "subject", k.subject, "group", k.group, "client_type", k.clientType, "error", err)
		}
		cancel()
	}
}

// stopCtx is a context cancelled when the router stops or after d.
func (r *router) stopCtx(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (r *router) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.stop)
	conns := r.conns
	r.conns = map[string]*remoting.Client{}
	r.mu.Unlock()
	r.wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	r.metaMu.Lock()
	if r.metaConn != nil {
		r.metaConn.Close()
		r.metaConn = nil
	}
	r.metaMu.Unlock()
}

// groups returns the route's broker groups, fetching it the first time, when
// it is older than the refresh interval, or when marked stale (at most once
// a second).
func (r *router) groups(ctx context.Context, k routeKey) ([]protocol.BrokerGroupInfo, error) {
	r.mu.Lock()
	rt := r.routes[k]
	r.mu.Unlock()
	if rt != nil {
		rt.refreshMu.Lock()
		g, fetched, stale := rt.groups, rt.fetched, rt.stale
		rt.refreshMu.Unlock()
		age := time.Since(fetched)
		if !fetched.IsZero() && (age < r.refresh && !stale || age < minRefreshGap) {
			return g, nil
		}
		if !fetched.IsZero() {
			// Refresh, but fall back to the last route on failure.
			if ng, err := r.fetch(ctx, k, false); err == nil {
				return ng, nil
			}
			return g, nil
		}
	}
	return r.fetch(ctx, k, false)
}

// noBroker is ErrNoBroker for k, saying why the route had no usable group.
func (r *router) noBroker(k routeKey) error {
	r.mu.Lock()
	rt := r.routes[k]
	r.mu.Unlock()
	var withheld []string
	if rt != nil {
		rt.refreshMu.Lock()
		withheld = rt.withheld
		rt.refreshMu.Unlock()
	}
	what := "producing"
	if k.clientType == protocol.ClientTypeDelayProducer {
		what = "delay messages (no delay broker group is online)"
	}
	if len(withheld) == 0 {
		return fmt.Errorf("%w for %s subject %q: the metaserver named no group (is a broker group registered and online? qmq tools ListBrokerGroups)", ErrNoBroker, what, k.subject)
	}
	return fmt.Errorf("%w for %s subject %q: the metaserver left out %s (each broker's /health says why it is read-only: MarkReadonly, a lagging slave or a full disk)",
		ErrNoBroker, what, k.subject, strings.Join(withheld, "; "))
}

func stateName(s uint8) string {
	switch s {
	case protocol.BrokerStateRW:
		return "RW"
	case protocol.BrokerStateR:
		return "R (read-only)"
	case protocol.BrokerStateW:
		return "W (write-only)"
	case protocol.BrokerStateNRW:
		return "NRW (no master online)"
	}
	return fmt.Sprintf("%d (unknown)", s)
}

// invalidate asks for the route to be re-fetched on next use.
func (r *router) invalidate(k routeKey) {
	r.mu.Lock()
	rt := r.routes[k]
	r.mu.Unlock()
	if rt != nil {
		rt.refreshMu.Lock()
		rt.stale = true
		rt.refreshMu.Unlock()
	}
}

func (r *router) fetch(ctx context.Context, k routeKey, periodic bool) ([]protocol.BrokerGroupInfo, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	rt := r.routes[k]
	if rt == nil {
		rt = &route{}
		r.routes[k] = rt
	}
	r.mu.Unlock()
	rt.refreshMu.Lock()
	defer rt.refreshMu.Unlock()
	if !periodic && !rt.fetched.IsZero() && !rt.stale && time.Since(rt.fetched) < r.refresh {
		return rt.groups, nil // someone else refreshed meanwhile
	}
	reqType := protocol.ClientRequestOnline
	if rt.online {
		reqType = protocol.ClientRequestHeartbeat
	}
	req := protocol.ClientRegisterRequest{
		Subject: k.subject, ClientTypeCode: k.clientType, AppCode: r.appCode,
		ClientID: r.clientID, ConsumerGroup: k.group, RequestType: reqType, ClientLDC: r.ldc,
	}
	resp, err := r.register(ctx, req)
	if err != nil {
		return rt.groups, err
	}
	var gs []protocol.BrokerGroupInfo
	var withheld []string
	for _, w := range resp.Withheld {
		withheld = append(withheld, w.Name+" "+w.Reason)
	}
	for _, g := range resp.Groups {
		if usable(k.clientType, g.State) {
			gs = append(gs, g)
		} else {
			withheld = append(withheld, fmt.Sprintf("%s in state %s", g.Name, stateName(g.State)))
		}
	}
	if k.clientType == protocol.ClientTypeConsumer && len(resp.Groups) > 0 {
		r.log.Trace("route", "subject", k.subject, "group", k.group, "groups", len(gs))
	}
	rt.groups, rt.withheld, rt.fetched, rt.online, rt.stale = gs, withheld, time.Now(), true, false
	r.applyState(k, &resp)
	return gs, nil
}

// applyState passes a consumer's forced online/offline state to onState.
func (r *router) applyState(k routeKey, resp *protocol.ClientRegisterResponse) {
	if r.onState == nil || k.clientType != protocol.ClientTypeConsumer || k.group == "" || protocol.RealSubject(k.subject) != k.subject {
		return
	}
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	if resp.Timestamp < r.stateTime {
		r.log.Debug("ignoring an older metaserver answer for the consumer state", "subject", k.subject, "timestamp", resp.Timestamp, "newest", r.stateTime)
		return
	}
	r.stateTime = resp.Timestamp
	r.onState(k.subject, k.group, resp.OnOfflineState == protocol.ClientOffline)
}

func usable(clientType int32, state uint8) bool {
	switch clientType {
	case protocol.ClientTypeConsumer:
		return state == protocol.BrokerStateRW || state == protocol.BrokerStateR
	default:
		return state == protocol.BrokerStateRW || state == protocol.BrokerStateW
	}
}

// register sends CLIENT_REGISTER, (re)locating and (re)dialling the
// metaserver as needed; one retry on a fresh connection.
func (r *router) register(ctx context.Context, req protocol.ClientRegisterRequest) (protocol.ClientRegisterResponse, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		mc, err := r.meta(ctx)
		if err != nil {
			return protocol.ClientRegisterResponse{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := mc.RegisterClient(cctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		lastErr = err
		var me *meta.Error
		if errors.As(err, &me) {
			return resp, err // a refusal; a new connection will not help
		}
		r.dropMeta(mc)
		if ctx.Err() != nil {
			break
		}
	}
	return protocol.ClientRegisterResponse{}, lastErr
}

func (r *router) meta(ctx context.Context) (*meta.Client, error) {
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	if r.metaConn != nil {
		return r.metaConn, nil
	}
	addr, err := meta.Locate(ctx, r.endpoint)
	if err != nil {
		return nil, err
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	r.metaConn = c
	return c, nil
}

func (r *router) dropMeta(c *meta.Client) {
	r.metaMu.Lock()
	if r.metaConn == c {
		r.metaConn = nil
	}
	r.metaMu.Unlock()
	c.Close()
}

// conn returns a live connection to a broker, dialling if needed.
func (r *router) conn(ctx context.Context, addr string) (*remoting.Client, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if c := r.conns[addr]; c != nil && c.Err() == nil {
		r.mu.Unlock()
		return c, nil
	}
	dm := r.dialMu[addr]
	if dm == nil {
		dm = &sync.Mutex{}
		r.dialMu[addr] = dm
	}
	r.mu.Unlock()

	dm.Lock()
	defer dm.Unlock()
	r.mu.Lock()
	if c := r.conns[addr]; c != nil && c.Err() == nil {
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	c, err := remoting.Dial(dctx, addr, protocol.DefaultMaxFrameSize)
	cancel()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	if old := r.conns[addr]; old != nil {
		go old.Close()
	}
	r.conns[addr] = c
	r.mu.Unlock()
	return c, nil
}

// idGen makes QMQ message ids: yyMMdd.HHmmss.<ip>.<pid>.<counter>.
type idGen struct {
	ip  string
	pid string
	// prefix caches "yyMMdd.HHmmss.<ip>.<pid>." for the second it was made
	// in: formatting the time for every message was a visible cost.
	prefix atomic.Pointer[idPrefix]
}

type idPrefix struct {
	sec  int64
	text string
}

// idCounter is process-wide, like the pid in the id: two producers of one
// process must never produce the same id in the same second.
var idCounter atomic.Uint32

func newIDGen() *idGen { return &idGen{ip: localIP(), pid: strconv.Itoa(os.Getpid())} }

func (g *idGen) next(now time.Time) string {
	p := g.prefix.Load()
	if sec := now.Unix(); p == nil || p.sec != sec {
		b := make([]byte, 0, 40)
		b = now.AppendFormat(b, "060102.150405")
		b = append(b, '.')
		b = append(b, g.ip...)
		b = append(b, '.')
		b = append(b, g.pid...)
		b = append(b, '.')
		p = &idPrefix{sec: sec, text: string(b)}
		g.prefix.Store(p)
	}
	b := make([]byte, 0, len(p.text)+11)
	b = append(b, p.text...)
	b = strconv.AppendInt(b, int64(int32(idCounter.Add(1)-1)), 10)
	return string(b)
}

// localIP is the first non-loopback IPv4 address, as QMQ's NetworkUtils.
func localIP() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func defaultClientID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = localIP()
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s@@%d.%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
}
