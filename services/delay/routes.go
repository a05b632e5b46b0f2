package delay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/internal/lograte"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// producerRoutes is how the dispatcher reaches real-time brokers: it asks
// the metaserver for a subject's groups as a PRODUCER client does
// (CLIENT_REGISTER, client type 1), keeps the answer for
// delay.route.refresh.ms, and keeps the last known groups when the
// metaserver cannot be reached (due messages still go out). It holds one
// connection per broker master. Only the dispatcher's goroutine uses it
// (and Close after it has stopped); the mutex guards against Close racing.
type producerRoutes struct {
	endpoint string
	appCode  string
	clientID string
	refresh  time.Duration
	maxFrame int
	log      hclog.Logger

	// staleLog rate-limits the line saying last known routes are used: with
	// the metaserver down it would come once per subject per refresh.
	staleLog lograte.Limiter

	mu       sync.Mutex
	meta     *meta.Client
	subjects map[string]*subjectRoute
	conns    map[string]*remoting.Client
}

type subjectRoute struct {
	groups     []protocol.BrokerGroupInfo // writable groups of the last answer
	fetched    time.Time
	registered bool   // ONLINE sent: later requests are HEARTBEATs
	next       uint64 // round robin
}

func newProducerRoutes(s Settings, hostname string, log hclog.Logger) *producerRoutes {
	return &producerRoutes{
		endpoint: s.MetaEndpoint, appCode: s.Dispatch.AppCode, refresh: s.Dispatch.RouteRefresh, maxFrame: s.MaxFrameSize, log: log,
		// Like a producer's id: the metaserver lists it as the subject's client.
		clientID: hostname + "@qmq-delay@" + strconv.Itoa(os.Getpid()),
		subjects: map[string]*subjectRoute{}, conns: map[string]*remoting.Client{},
	}
}

// groups returns the writable real-time groups of subject: the cached
// answer while fresh (unless force), else the metaserver's; if the
// metaserver cannot be asked, the last known groups.
func (p *producerRoutes) groups(ctx context.Context, subject string, force bool) ([]protocol.BrokerGroupInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.subjects[subject]
	if r == nil {
		r = &subjectRoute{}
		p.subjects[subject] = r
	}
	if !force && len(r.groups) > 0 && time.Since(r.fetched) < p.refresh {
		return r.groups, nil
	}
	resp, err := p.register(ctx, subject, r.registered)
	if err != nil {
		if len(r.groups) > 0 {
			p.staleLog.Warn(p.log, "cannot ask the metaserver for the subject's broker groups; sending to the last known ones", "subject", subject, "groups", groupNames(r.groups), "error", explain(err))
			r.fetched = time.Now() // do not ask again before the refresh period
			return r.groups, nil
		}
		return nil, fmt.Errorf("ask the metaserver for the real-time broker groups of subject %s: %w", subject, err)
	}
	r.registered = true
	var w []protocol.BrokerGroupInfo
	for _, g := range resp.Groups {
		if g.State == protocol.BrokerStateRW || g.State == protocol.BrokerStateW {
			w = append(w, g)
		}
	}
	if len(w) == 0 {
		return nil, fmt.Errorf("the metaserver has no writable real-time broker group for subject %s (%d groups in its answer): start a broker master, or check it is registered (qmq tools ListBrokers)", subject, len(resp.Groups))
	}
	r.groups, r.fetched = w, time.Now()
	return w, nil
}

// register sends one CLIENT_REGISTER as a PRODUCER, dialling the
// metaserver if needed; a failed connection is dropped for the next call.
func (p *producerRoutes) register(ctx context.Context, subject string, registered bool) (protocol.ClientRegisterResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if p.meta == nil {
		addr, err := meta.Locate(ctx, p.endpoint)
		if err != nil {
			return protocol.ClientRegisterResponse{}, err
		}
		if p.meta, err = meta.Dial(ctx, addr); err != nil {
			return protocol.ClientRegisterResponse{}, err
		}
	}
	typ := protocol.ClientRequestOnline
	if registered {
		typ = protocol.ClientRequestHeartbeat
	}
	resp, err := p.meta.RegisterClient(ctx, protocol.ClientRegisterRequest{
		Subject: subject, ClientTypeCode: protocol.ClientTypeProducer, AppCode: p.appCode, ClientID: p.clientID, RequestType: typ,
	})
	var refused *meta.Error
	if err != nil && !errors.As(err, &refused) {
		p.meta.Close()
		p.meta = nil
	}
	return resp, err
}

// pick chooses the next group of subject round robin, avoiding avoid (the
// group of the last failed try) when there is another.
func (p *producerRoutes) pick(subject string, groups []protocol.BrokerGroupInfo, avoid string) protocol.BrokerGroupInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.subjects[subject]
	if r == nil {
		r = &subjectRoute{}
		p.subjects[subject] = r
	}
	n := uint64(len(groups))
	for i := uint64(0); i < n; i++ {
		g := groups[(r.next+i)%n]
		if n > 1 && g.Name == avoid {
			continue
		}
		r.next += i + 1
		return g
	}
	r.next++
	return groups[0]
}

// send sends the messages (each as received, CRC included) in one
// SEND_MESSAGE to the group's master and returns the broker's per-message
// failures (QMQ brokers list only those).
func (p *producerRoutes) send(ctx context.Context, g protocol.BrokerGroupInfo, msgs [][]byte, timeout time.Duration) ([]protocol.SendResult, error) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	body := make([]byte, 0, n)
	for _, m := range msgs {
		body = append(body, m...)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := p.conn(ctx, g.MasterAddress)
	if err != nil {
		return nil, err
	}
	resp, err := c.Call(ctx, protocol.CodeSendMessage, body)
	if err != nil {
		p.drop(g.MasterAddress, c)
		return nil, fmt.Errorf("SEND_MESSAGE to broker group %s (%s): %w", g.Name, g.MasterAddress, err)
	}
	if resp.Header.Code != protocol.CodeSuccess {
		return nil, fmt.Errorf("broker group %s (%s) refused SEND_MESSAGE: %s: %s", g.Name, g.MasterAddress,
			protocol.CodeName(resp.Header.Code, true), protocol.DecodeErrorBody(resp.Body))
	}
	return protocol.DecodeSendResults(resp.Body)
}

func (p *producerRoutes) conn(ctx context.Context, addr string) (*remoting.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[addr]; c != nil {
		select {
		case <-c.Done():
			delete(p.conns, addr)
		default:
			return c, nil
		}
	}
	c, err := remoting.Dial(ctx, addr, p.maxFrame)
	if err != nil {
		return nil, fmt.Errorf("connect to broker %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *producerRoutes) drop(addr string, c *remoting.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[addr] == c {
		delete(p.conns, addr)
	}
	c.Close()
}

// close closes the metaserver and broker connections.
func (p *producerRoutes) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.meta != nil {
		p.meta.Close()
		p.meta = nil
	}
	for a, c := range p.conns {
		c.Close()
		delete(p.conns, a)
	}
}

func groupNames(gs []protocol.BrokerGroupInfo) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Name
	}
	return out
}
