package client

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// producerCfg is a Producer's configuration.
type producerCfg struct {
	common            commonCfg
	group             string
	retries           int
	sendTimeout       time.Duration
	maxMessageSize    int
	compressThreshold int
	compressLevel     int
	faultAvoidance    bool
	selector          QueueSelector
	maxAsync          int
	checker           TransactionChecker
	now               func() time.Time
}

func defaultProducer() producerCfg {
	return producerCfg{
		common:            defaultCommon(),
		group:             "DEFAULT_PRODUCER",
		retries:           2,
		sendTimeout:       3 * time.Second,
		maxMessageSize:    4 << 20,
		compressThreshold: 4096,
		compressLevel:     5,
		faultAvoidance:    true,
		selector:          HashSelector(),
		maxAsync:          1024,
		now:               time.Now,
	}
}

type producerOpt func(*producerCfg)

func (o producerOpt) applyProducer(c *producerCfg) { o(c) }

// WithProducerGroup sets the producer group, which brokers use to find a producer for transaction
// check-backs. Default "DEFAULT_PRODUCER".
func WithProducerGroup(group string) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.group = group })
}

// WithSendRetries sets how many times a failed synchronous or asynchronous send is tried again, on
// another broker when there is one (RocketMQ's retryTimesWhenSendFailed). Only failures a retry can
// help (IsRetriable) are retried. Default 2 (3 attempts); negative means 0.
func WithSendRetries(n int) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.retries = max(n, 0) })
}

// WithSendTimeout bounds a send with all its retries, on top of the caller's context (RocketMQ's
// sendMsgTimeout). Default 3 s; zero or negative means only the context bounds it.
func WithSendTimeout(d time.Duration) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.sendTimeout = d })
}

// WithMaxMessageSize sets the largest body (or encoded batch) the producer sends; larger ones fail
// with ErrMessageTooLarge before anything is sent. Default 4 MiB, the broker's default limit; zero
// or negative keeps the default.
func WithMaxMessageSize(n int) ProducerOpt {
	return producerOpt(func(c *producerCfg) { setPositive(&c.maxMessageSize, n) })
}

// WithCompressThreshold sets the body size above which bodies are zlib-compressed (sysFlag bit 0;
// consumers of every RocketMQ client decompress them). Batches are never compressed. Default 4096
// bytes; zero or negative turns compression off.
func WithCompressThreshold(n int) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.compressThreshold = n })
}

// WithFaultAvoidance turns latency-based fault avoidance on or off: a broker that answered slowly or
// failed is skipped by queue selection for a while (RocketMQ 5's table: 550 ms → 2 s, 1.8 s → 5 s,
// 3 s → 6 s, 5 s → 10 s, 15 s → 30 s; a failure counts as 10 s). Default on.
func WithFaultAvoidance(on bool) ProducerOpt {
	return producerOpt(func(c *producerCfg) { c.faultAvoidance = on })
}

// WithQueueSelector sets how messages with a ShardingKey pick their queue. Default HashSelector
// (the Java client's SelectMessageQueueByHash, so Go and Java producers agree). nil keeps the default.
func WithQueueSelector(s QueueSelector) ProducerOpt {
	return producerOpt(func(c *producerCfg) {
		if s != nil {
			c.selector = s
		}
	})
}

// WithMaxAsyncInflight bounds the asynchronous sends in flight; SendAsync waits for a free slot (or
// for its context) beyond it. Default 1024; zero or negative keeps the default.
func WithMaxAsyncInflight(n int) ProducerOpt {
	return producerOpt(func(c *producerCfg) { setPositive(&c.maxAsync, n) })
}

// QueueSelector picks the queue of an ordered message (one with a ShardingKey). Select is called with
// the topic's writable queues (never empty), in the same order for the same route, and must be safe
// for concurrent use. It must return one of queues.
type QueueSelector interface {
	Select(msg *Message, queues []MessageQueue) MessageQueue
}

// QueueSelectorFunc adapts a function to QueueSelector.
type QueueSelectorFunc func(msg *Message, queues []MessageQueue) MessageQueue

// Select calls f.
func (f QueueSelectorFunc) Select(msg *Message, queues []MessageQueue) MessageQueue {
	return f(msg, queues)
}

// HashSelector picks queue |hashCode(ShardingKey)| mod n, with Java's String.hashCode: the same queue
// the Java client's SelectMessageQueueByHash picks for the same key.
func HashSelector() QueueSelector {
	return QueueSelectorFunc(func(msg *Message, queues []MessageQueue) MessageQueue {
		h := int64(message.HashMore(0, msg.ShardingKey)) % int64(len(queues))
		if h < 0 {
			h = -h
		}
		return queues[h]
	})
}

// Producer sends messages. It is safe for concurrent use. Its goroutines (route refresh, heartbeats,
// asynchronous sends) stop in Close.
type Producer struct {
	c         *core
	cfg       producerCfg
	faults    *faultTable
	ids       *message.UniqIDGenerator
	next      atomic.Uint32 // round-robin position
	announced atomic.Bool   // the group was announced for transactions
	async     chan struct{} // one token per asynchronous send in flight

	mu struct {
		sync.RWMutex
		closed bool           // Protected by mu.
		wg     sync.WaitGroup // asynchronous sends; Add under mu.RLock while !closed.
	}
}

// NewProducer returns a producer. It connects lazily: the first send fetches the topic's route.
func NewProducer(opts ...ProducerOpt) (*Producer, error) {
	cfg := defaultProducer()
	for _, o := range opts {
		o.applyProducer(&cfg)
	}
	if len(cfg.common.nameServers) == 0 {
		return nil, ErrNoNameServer
	}
	if err := body.ValidateGroup(cfg.group); err != nil {
		return nil, fmt.Errorf("client: producer group: %w", err)
	}
	p := &Producer{cfg: cfg, faults: newFaultTable(cfg.now), async: make(chan struct{}, cfg.maxAsync)}
	p.c = newCore(cfg.common, p.transactionHandler())
	p.ids = message.NewUniqIDGenerator(p.c.localIP, 0)
	p.c.routes.start()
	p.c.every(cfg.common.heartbeatInterval, p.heartbeat)
	if cfg.checker != nil {
		p.c.spawn(func() { p.announceTransactional(p.c.ctx) })
	}
	return p, nil
}

// ClientID returns the id the producer announces to brokers (ip@instance).
func (p *Producer) ClientID() string { return p.c.clientID }

func (p *Producer) heartbeat(ctx context.Context) {
	p.c.heartbeat(ctx, &body.HeartbeatData{ClientID: p.c.clientID,
		ProducerDataSet: []*body.ProducerData{{GroupName: p.cfg.group}}, ConsumerDataSet: []*body.ConsumerData{}}, false)
}

// Close waits for the asynchronous sends in flight (each bounded by the send timeout), leaves the
// producer group on the brokers it announced itself to (UNREGISTER_CLIENT), stops the producer's
// goroutines and closes its connections. Later calls fail with ErrClosed.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.mu.Unlock()
	p.mu.wg.Wait()
	ctx, cancel := context.WithTimeout(p.c.ctx, p.cfg.common.requestTimeout)
	defer cancel()
	p.c.unregister(ctx, "producerGroup", p.cfg.group)
	p.c.close()
	return nil
}

// Send sends each message synchronously, in order, and returns one result per message (nil for the
// ones that failed) with the failures joined (errors.Join) into err, each naming its index.
func (p *Producer) Send(ctx context.Context, msgs ...*Message) ([]*SendResult, error) {
	results := make([]*SendResult, len(msgs))
	var errs []error
	for i, m := range msgs {
		r, err := p.send(ctx, m)
		if err != nil {
			if len(msgs) > 1 {
				err = fmt.Errorf("message %d: %w", i, err)
			}
			errs = append(errs, err)
			continue
		}
		results[i] = r
	}
	return results, errors.Join(errs...)
}

// SendAsync sends msg in the background and calls promise exactly once with the outcome, on a
// goroutine of the producer (promise may be nil). It waits while WithMaxAsyncInflight sends are in
// flight; if ctx ends or the producer closes meanwhile, promise gets that error. The first send to a
// topic also waits for its route. No goroutine waits for the broker's answer: attempts go out from
// here and from the callbacks of earlier ones.
func (p *Producer) SendAsync(ctx context.Context, msg *Message, promise func(*SendResult, error)) {
	if promise == nil {
		promise = func(*SendResult, error) {}
	}
	select {
	case p.async <- struct{}{}: // a free slot: the common case, without the three-way select below
	default:
		select {
		case p.async <- struct{}{}:
		case <-ctx.Done():
			promise(nil, ctx.Err())
			return
		case <-p.c.done:
			promise(nil, ErrClosed)
			return
		}
	}
	p.mu.RLock()
	if p.mu.closed {
		p.mu.RUnlock()
		<-p.async
		promise(nil, ErrClosed)
		return
	}
	p.mu.wg.Add(1)
	p.mu.RUnlock()
	a := &asyncSend{p: p, ctx: ctx, msg: msg, promise: promise}
	a.req = &a.request
	if err := p.prepareInto(a.req, msg); err != nil {
		a.finish(nil, err, true)
		return
	}
	a.deadline = p.sendDeadline(a.req.began)
	a.next(true)
}

// asyncSend is one SendAsync in progress. It makes the attempts sendWithRetries makes, under the
// same rules, but each answer arrives on a transport callback that completes the send or starts the
// next attempt.
type asyncSend struct {
	p          *Producer
	ctx        context.Context
	msg        *Message
	req        *sendRequest // &request
	request    sendRequest
	deadline   time.Time // zero: no send timeout
	attempts   int
	lastBroker string
	lastErr    error
	promise    func(*SendResult, error)
}

// next starts the next attempt, or completes the send when none is left. inCaller is true on the
// goroutine that called SendAsync.
func (a *asyncSend) next(inCaller bool) {
	p := a.p
	for a.attempts <= p.cfg.retries {
		timeout, expired := p.attemptTimeout(a.attempts, a.deadline)
		if a.attempts > 0 && (a.ctx.Err() != nil || expired) {
			break
		}
		a.attempts++
		mq, addr, waited, err := p.target(a.ctx, a.msg, a.lastBroker)
		if err == nil {
			start := a.req.attemptStart(p.cfg.now, waited)
			cmd := a.req.command(p.cfg.group, mq, start)
			reqCode := cmd.RequestCode()
			err = p.c.invokeAsync(a.ctx, addr, cmd, timeout, func(resp *remoting.Command, err error) {
				var res *SendResult
				if err != nil {
					err = transportErr(reqCode, addr, err)
				} else {
					res, err = parseSendResponse(resp, reqCode, addr, mq, a.req.uniqKey)
				}
				p.record(a.msg, mq, start, err)
				if err == nil {
					a.finish(res, nil, false)
				} else if a.failed(mq.BrokerName, err, false) {
					a.next(false)
				}
			})
			a.req.done(cmd)
			if err == nil {
				return // the callback carries on
			}
			p.record(a.msg, mq, start, err)
		}
		if !a.failed(mq.BrokerName, err, inCaller) {
			return
		}
	}
	a.finish(nil, a.lastErr, inCaller)
}

// failed notes a failed attempt and reports whether another may follow; if not, it completes the send.
func (a *asyncSend) failed(broker string, err error, inCaller bool) bool {
	a.lastErr, a.lastBroker = err, broker
	if final := a.p.afterFailure(a.msg.Topic, err); final != nil {
		a.finish(nil, final, inCaller)
		return false
	}
	return true
}

// finish frees the send's slot and calls the promise, never on the caller's goroutine (which may hold
// what the promise needs).
func (a *asyncSend) finish(res *SendResult, err error, inCaller bool) {
	if inCaller {
		go a.complete(res, err)
		return
	}
	a.complete(res, err)
}

// complete hands the outcome to the caller's callback.
func (a *asyncSend) complete(res *SendResult, err error) {
	defer a.p.mu.wg.Done()
	<-a.p.async
	a.promise(res, err)
}

// SendOneway sends msg without waiting for the broker's answer: one attempt, no result. The message
// may be lost without an error.
func (p *Producer) SendOneway(ctx context.Context, msg *Message) error {
	if err := p.checkOpen(); err != nil {
		return err
	}
	req, err := p.prepare(msg)
	if err != nil {
		return err
	}
	ctx, cancel := p.sendContext(ctx)
	defer cancel()
	r, err := p.c.routes.get(ctx, msg.Topic, true)
	if err != nil {
		return err
	}
	mq, err := p.selectQueue(r, msg, "")
	if err != nil {
		return err
	}
	addr := p.c.routes.masterAddr(mq.BrokerName)
	if addr == "" {
		p.c.routes.refreshSoon(msg.Topic)
		return fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
	}
	cmd := req.command(p.cfg.group, mq, req.attemptStart(p.cfg.now, true))
	err = p.c.tc.InvokeOneway(ctx, addr, cmd)
	req.done(cmd)
	if err != nil {
		return fmt.Errorf("client: oneway send to %s: %w", addr, err)
	}
	return nil
}

// SendBatch sends msgs as one SEND_BATCH_MESSAGE: they are stored together in one queue (chosen from
// the first message's ShardingKey, or round-robin). They must share a topic and have no delay level;
// the encoded batch must fit WithMaxMessageSize. Batches are not compressed.
func (p *Producer) SendBatch(ctx context.Context, msgs ...*Message) (*SendResult, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalidMessage)
	}
	ids := make([]string, len(msgs))
	var data, props []byte
	began := p.cfg.now()
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if m.Topic != msgs[0].Topic {
			return nil, fmt.Errorf("%w: a batch goes to one topic (message %d: %s, message 0: %s)", ErrInvalidMessage, i, m.Topic, msgs[0].Topic)
		}
		if m.DelayLevel != 0 || !m.DeliverAt.IsZero() {
			return nil, fmt.Errorf("%w: message %d: a batch cannot carry a delay level or a delivery time", ErrInvalidMessage, i)
		}
		var err error
		var uniqAt int
		if props, uniqAt, err = m.appendProperties(props[:0], p.ids, began); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		ids[i] = string(props[uniqAt:])
		if data, err = message.AppendBatchItem(data, m.Flag, m.Body, props); err != nil {
			return nil, fmt.Errorf("message %d: %w: %w", i, ErrInvalidMessage, err)
		}
	}
	if len(data) > p.cfg.maxMessageSize {
		return nil, fmt.Errorf("%w: the batch encodes to %d bytes; the limit is %d", ErrMessageTooLarge, len(data), p.cfg.maxMessageSize)
	}
	req := &sendRequest{topic: msgs[0].Topic, body: data, batch: true, uniqKey: strings.Join(ids, ","), began: began}
	return p.sendWithRetries(ctx, msgs[0], req)
}

func (p *Producer) checkOpen() error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.mu.closed {
		return ErrClosed
	}
	return nil
}

func (p *Producer) send(ctx context.Context, msg *Message) (*SendResult, error) {
	if err := p.checkOpen(); err != nil {
		return nil, err
	}
	return p.prepareAndSend(ctx, msg)
}

func (p *Producer) prepareAndSend(ctx context.Context, msg *Message) (*SendResult, error) {
	req, err := p.prepare(msg)
	if err != nil {
		return nil, err
	}
	return p.sendWithRetries(ctx, msg, req)
}

// sendContext bounds a send by the send timeout and ends it when the producer closes.
func (p *Producer) sendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	cancel := context.CancelFunc(func() {})
	if p.cfg.sendTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, p.cfg.sendTimeout)
	}
	stop := context.AfterFunc(p.c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// sendWithRetries sends req, trying again on another broker (or, for an ordered message, on the same
// queue) while the failure is retriable and attempts and time remain.
func (p *Producer) sendWithRetries(ctx context.Context, msg *Message, req *sendRequest) (*SendResult, error) {
	deadline := p.sendDeadline(req.began)
	var lastErr error
	lastBroker := ""
	for attempt := 0; attempt <= p.cfg.retries; attempt++ {
		timeout, expired := p.attemptTimeout(attempt, deadline)
		if attempt > 0 && (ctx.Err() != nil || expired) {
			break
		}
		res, broker, err := p.attempt(ctx, msg, req, lastBroker, timeout)
		if err == nil {
			return res, nil
		}
		lastErr, lastBroker = err, broker
		if final := p.afterFailure(msg.Topic, err); final != nil {
			return nil, final
		}
	}
	return nil, lastErr
}

// afterFailure is what follows a failed attempt: the topic's route is refreshed soon, and the send
// ends with the returned error if the producer closed or err is not worth another attempt.
func (p *Producer) afterFailure(topic string, err error) error {
	if p.c.closed() {
		return ErrClosed
	}
	p.c.routes.refreshSoon(topic)
	if !IsRetriable(err) {
		return err
	}
	return nil
}

// sendDeadline is when a send that starts now runs out of time (zero: never). The transport enforces
// it without a timer per call; a context with a deadline costs one, and showed in profiles.
func (p *Producer) sendDeadline(began time.Time) time.Time {
	if p.cfg.sendTimeout <= 0 {
		return time.Time{}
	}
	return began.Add(p.cfg.sendTimeout)
}

// attemptTimeout returns how long attempt n (0 for the first) of a send may wait for its answer and
// whether the send's deadline has passed. The first attempt has the whole send timeout, without a
// reading of the clock: the clock is slow on some virtual machines, and this runs per message.
func (p *Producer) attemptTimeout(n int, deadline time.Time) (time.Duration, bool) {
	if n == 0 {
		return max(p.cfg.sendTimeout, 0), false
	}
	return untilDeadline(deadline)
}

// untilDeadline returns the time left before deadline (0 for none) and whether it has passed.
func untilDeadline(deadline time.Time) (time.Duration, bool) {
	if deadline.IsZero() {
		return 0, false
	}
	left := time.Until(deadline)
	return left, left <= 0
}

// attempt sends req once to a queue chosen avoiding lastBroker, waiting for the answer at most
// timeout (if positive), and returns the broker it used.
func (p *Producer) attempt(ctx context.Context, msg *Message, req *sendRequest, lastBroker string, timeout time.Duration) (*SendResult, string, error) {
	mq, addr, waited, err := p.target(ctx, msg, lastBroker)
	if err != nil {
		return nil, mq.BrokerName, err
	}
	start := req.attemptStart(p.cfg.now, waited)
	cmd := req.command(p.cfg.group, mq, start)
	resp, err := p.c.invokeTimeout(ctx, addr, cmd, timeout)
	req.done(cmd)
	var res *SendResult
	if err == nil {
		res, err = parseSendResponse(resp, cmd.RequestCode(), addr, mq, req.uniqKey)
	}
	p.record(msg, mq, start, err)
	return res, mq.BrokerName, err
}

// target picks the queue of one attempt, avoiding lastBroker, and its master's address.
// It reports whether it waited for a NameServer, so that the wait is not taken for the broker's.
func (p *Producer) target(ctx context.Context, msg *Message, lastBroker string) (mq MessageQueue, addr string, waited bool, err error) {
	r := p.c.routes.cached(msg.Topic, true)
	if r == nil {
		waited = true
		if r, err = p.c.routes.get(ctx, msg.Topic, true); err != nil {
			return MessageQueue{}, "", waited, err
		}
	}
	if mq, err = p.selectQueue(r, msg, lastBroker); err != nil {
		return MessageQueue{}, "", waited, err
	}
	if addr = p.c.routes.masterAddr(mq.BrokerName); addr == "" {
		return mq, "", waited, fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
	}
	return mq, addr, waited, nil
}

// record notes how an attempt that started at start went, for fault avoidance and the send hook.
func (p *Producer) record(msg *Message, mq MessageQueue, start time.Time, err error) {
	latency := time.Since(start)
	if p.cfg.faultAvoidance {
		// A broker that failed in a way another broker may not (busy, unreachable, slow) is avoided.
		p.faults.record(mq.BrokerName, latency, err != nil && IsRetriable(err))
	}
	p.cfg.common.onSend(msg.Topic, mq.BrokerName, latency, err)
}

// selectQueue picks the queue of one attempt.
func (p *Producer) selectQueue(r *topicRoute, msg *Message, lastBroker string) (MessageQueue, error) {
	queues := r.writeQueues
	if len(queues) == 0 {
		return MessageQueue{}, fmt.Errorf("%w: topic %s has no writable queue", ErrNoRoute, msg.Topic)
	}
	if msg.ShardingKey != "" {
		return p.cfg.selector.Select(msg, queues), nil
	}
	n := int(p.next.Add(1))
	for i := range queues {
		q := queues[(n+i)%len(queues)]
		if q.BrokerName == lastBroker || (p.cfg.faultAvoidance && !p.faults.available(q.BrokerName)) {
			continue
		}
		return q, nil
	}
	for i := range queues { // every broker is avoided: at least leave the one that just failed
		if q := queues[(n+i)%len(queues)]; q.BrokerName != lastBroker {
			return q, nil
		}
	}
	return queues[n%len(queues)], nil
}

// sendRequest is a message ready to send: what does not change between attempts.
type sendRequest struct {
	topic      string
	body       []byte
	properties string
	sysFlag    int32
	flag       int32
	batch      bool
	uniqKey    string
	began      time.Time // when the send began: the time of its first attempt and of its id
	bornText   string    // began in ms, as the header carries it (sliced from properties' string)
	tried      bool      // an attempt has started
	// cmd and header are the attempts' request, filled by command: part of the request's
	// allocation rather than one each per attempt. cmdInUse is set from command to done.
	cmd      remoting.Command
	header   [24]string
	cmdInUse atomic.Bool
}

// bornTimestamp is the header value for an attempt that starts at t.
func (r *sendRequest) bornTimestamp(t time.Time) string {
	if t.Equal(r.began) && r.bornText != "" {
		return r.bornText
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// attemptStart returns the start of an attempt: when the send began for the first, unless it waited
// for its route since (fresh), and now for the others.
func (r *sendRequest) attemptStart(now func() time.Time, fresh bool) time.Time {
	first := !r.tried
	r.tried = true
	if first && !fresh {
		return r.began
	}
	return now()
}

// prepare validates msg and encodes what every attempt sends.
func (p *Producer) prepare(msg *Message) (*sendRequest, error) {
	req := new(sendRequest)
	return req, p.prepareInto(req, msg)
}

// prepareInto is prepare into a request of the caller's.
func (p *Producer) prepareInto(req *sendRequest, msg *Message) error {
	if err := msg.validate(); err != nil {
		return err
	}
	if len(msg.Body) > p.cfg.maxMessageSize {
		return fmt.Errorf("%w: the body is %d bytes; the limit is %d", ErrMessageTooLarge, len(msg.Body), p.cfg.maxMessageSize)
	}
	began := p.cfg.now()
	var buf [256]byte
	props, uniqAt, err := msg.appendProperties(buf[:0], p.ids, began)
	if err != nil {
		return err
	}
	// One string holds the properties, the UNIQ_KEY within them and the first attempt's born time.
	all := string(strconv.AppendInt(props, began.UnixMilli(), 10))
	req.topic, req.body, req.flag, req.began = msg.Topic, msg.Body, msg.Flag, began
	req.properties, req.uniqKey, req.bornText = all[:len(props)], all[uniqAt:len(props)], all[len(props):]
	if p.cfg.compressThreshold > 0 && len(msg.Body) > p.cfg.compressThreshold {
		if z, ok := compress(msg.Body, p.cfg.compressLevel); ok {
			req.body = z
			req.sysFlag |= message.FlagCompressed
		}
	}
	return nil
}

// compress zlib-compresses b, reporting ok only when that makes it smaller.
func compress(b []byte, level int) ([]byte, bool) {
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, level)
	if err != nil {
		return nil, false
	}
	if _, err := w.Write(b); err != nil {
		return nil, false
	}
	if err := w.Close(); err != nil || buf.Len() >= len(b) {
		return nil, false
	}
	return buf.Bytes(), true
}

// command builds the SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) request for queue mq, with the
// one-letter header Java producers send (PROTOCOL.md §2.4). The transport encodes a request before
// its send call returns, and the caller hands the command back with done then: attempts reuse the
// request's own command. One that is still being sent (an async attempt waiting for room in a full
// write queue can time out, and its callback start the next attempt meanwhile) is not overwritten:
// the next attempt gets a new one.
func (r *sendRequest) command(group string, mq MessageQueue, now time.Time) *remoting.Command {
	c := code.SendMessageV2
	if r.batch {
		c = code.SendBatchMessage
	}
	cmd, header := &r.cmd, r.header[:0]
	if !r.cmdInUse.CompareAndSwap(false, true) {
		cmd, header = new(remoting.Command), nil
	}
	ext := append(header,
		"a", group,
		"b", r.topic,
		"c", body.AutoCreateTopicTemplate,
		"d", defaultTopicQueueNumsText,
		"e", strconv.Itoa(int(mq.QueueID)),
		"f", strconv.Itoa(int(r.sysFlag)),
		"g", r.bornTimestamp(now),
		"h", strconv.Itoa(int(r.flag)),
		"i", r.properties,
		"j", "0",
		"k", "false",
		"m", strconv.FormatBool(r.batch))
	*cmd = remoting.Command{Code: int16(c), Language: remoting.LangGo, Version: remoting.Version, ExtFields: ext, Body: r.body,
		// The binary header (serializeTypeCurrentRPC ROCKETMQ, which RocketMQ brokers accept as Java
		// clients can send it): the properties need no JSON escaping, and both sides save the scan.
		SerializeType: remoting.RocketMQ}
	return cmd
}

// done hands back a command from command once the transport has it encoded.
func (r *sendRequest) done(cmd *remoting.Command) {
	if cmd == &r.cmd {
		r.cmdInUse.Store(false)
	}
}

var defaultTopicQueueNumsText = strconv.Itoa(defaultTopicQueueNums)

// parseSendResponse turns a send answer into a result or an error.
func parseSendResponse(resp *remoting.Command, req code.Request, addr string, mq MessageQueue, uniqKey string) (*SendResult, error) {
	res := &SendResult{MsgID: uniqKey, Queue: mq}
	switch resp.ResponseCode() {
	case code.Success:
	case code.FlushDiskTimeout:
		res.Status = SendFlushDiskTimeout
	case code.FlushSlaveTimeout:
		res.Status = SendFlushSlaveTimeout
	case code.SlaveNotAvailable:
		res.Status = SendSlaveNotAvailable
	default:
		return nil, responseErr(req, addr, resp.ResponseCode(), resp.Remark)
	}
	r := remoting.ReadExt(resp)
	res.OffsetMsgID = r.String("msgId")
	res.Queue.QueueID = r.Int32("queueId")
	res.QueueOffset = r.Int64("queueOffset")
	res.RegionID = r.OptString(message.PropertyMsgRegion)
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("client: %s answer from %s: %w", req, addr, err)
	}
	return res, nil
}
