package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apogeemq/apogee/client/clienttest"
	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(t *testing.T) string {
	return "ct_" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestDevProducer(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := d.producer(t, WithProducerGroup("client_it"))
	topic := uniqueTopic(t)

	// The topic does not exist: the first send goes through TBW102 and the broker creates it.
	big := bytes.Repeat([]byte("0123456789"), 1000)
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("hello"), Tags: "A", Keys: []string{"k-1"}},
		&Message{Topic: topic, Body: big}, &Message{Topic: topic, Body: []byte("ordered"), ShardingKey: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != SendOK || r.Queue.Topic != topic || r.Queue.BrokerName != "broker-a" {
			t.Fatalf("result %d: %+v", i, r)
		}
		if _, _, err := message.ParseOffsetMsgID(r.OffsetMsgID); err != nil {
			t.Fatalf("result %d offset id %q: %v", i, r.OffsetMsgID, err)
		}
	}
	br, err := p.SendBatch(ctx, &Message{Topic: topic, Body: []byte("b1")}, &Message{Topic: topic, Body: []byte("b2")})
	if err != nil {
		t.Fatal(err)
	}
	if ids := bytes.Count([]byte(br.OffsetMsgID), []byte(",")); ids != 1 {
		t.Fatalf("batch offset ids %q", br.OffsetMsgID)
	}
	done := make(chan error, 1)
	p.SendAsync(ctx, &Message{Topic: topic, Body: []byte("async")}, func(_ *SendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.SendOneway(ctx, &Message{Topic: topic, Body: []byte("oneway")}); err != nil {
		t.Fatal(err)
	}
	// The broker refuses a system topic: not retriable, one clear error.
	_, err = p.Send(ctx, &Message{Topic: "SCHEDULE_TOPIC_XXXX", Body: []byte("x")})
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != code.SystemError {
		t.Fatalf("send to a system topic: %v", err)
	}
}

func TestDevAdmin(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := d.admin(t)
	topic := uniqueTopic(t)
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 2}); err != nil {
		t.Fatal(err)
	}
	topics, err := adm.Topics(ctx)
	if err != nil || !slices.Contains(topics, topic) {
		t.Fatalf("topics %v, %v", topics, err)
	}
	r, err := adm.Route(ctx, topic)
	if err != nil || len(r.QueueDatas) != 1 || r.QueueDatas[0].WriteQueueNums != 2 {
		t.Fatalf("route %+v, %v", r, err)
	}
	ci, err := adm.ClusterInfo(ctx)
	if err != nil || ci.BrokerAddrTable["broker-a"] == nil || ci.BrokerAddrTable["broker-a"].BrokerAddrs[0] != d.Broker {
		t.Fatalf("cluster info %+v, %v", ci, err)
	}

	p := d.producer(t)
	start := time.Now().Add(-time.Minute)
	big := bytes.Repeat([]byte("zz"), 5000)
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("one"), Keys: []string{"order-1"}},
		&Message{Topic: topic, Body: big, Keys: []string{"order-2"}}, &Message{Topic: topic, Body: []byte("three")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := adm.ViewMessage(ctx, res[1].OffsetMsgID)
	if err != nil || !bytes.Equal(m.Body, big) || m.UniqKey() != res[1].MsgID || m.Topic != topic {
		t.Fatalf("view: %v, %v", m, err)
	}
	// The index is built in the background: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		byKey, err := adm.QueryMessages(ctx, topic, "order-1", false, start, time.Now().Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		byID, err := adm.QueryMessages(ctx, topic, res[2].MsgID, true, start, time.Now().Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(byKey) == 1 && len(byID) == 1 {
			if string(byKey[0].Body) != "one" || string(byID[0].Body) != "three" {
				t.Fatalf("query by key %q, by id %q", byKey[0].Body, byID[0].Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query by key found %d, by id %d", len(byKey), len(byID))
		}
		time.Sleep(50 * time.Millisecond)
	}

	group := "cg_" + topic
	if _, err := adm.ConsumeStats(ctx, group, topic); !errors.Is(err, &ResponseError{Code: code.ConsumerNotOnline}) {
		t.Fatalf("stats of an unknown group: %v", err)
	}
	// To the end. The broker indexes stored messages into their queues in the background, so the end
	// may lag the sends for a moment.
	clienttest.WaitFor(t, 5*time.Second, "a reset to the end of both queues", func() bool {
		offs, err := adm.ResetOffsetByTime(ctx, topic, group, time.Time{}, true)
		if err != nil || len(offs) != 2 {
			t.Fatalf("reset: %v, %v", offs, err)
		}
		var total int64
		for _, o := range offs {
			total += o
		}
		return total == 3
	})
	if _, err := adm.ResetOffsetByTime(ctx, topic, group, start, true); err != nil {
		t.Fatal(err)
	}
	stats, err := adm.ConsumeStats(ctx, group, topic)
	if err != nil || len(stats.Queues) != 2 || stats.Lag() != 3 {
		t.Fatalf("stats %+v, %v", stats, err)
	}

	if err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Route(ctx, topic); !errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
		t.Fatalf("route after delete: %v", err)
	}
}

func TestDevPullConsumer(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	adm := d.admin(t)
	topic := uniqueTopic(t)
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 4}); err != nil {
		t.Fatal(err)
	}
	p := d.producer(t)
	const n = 40
	want := map[string]bool{}
	for i := range n {
		tag := "A"
		if i%4 == 3 {
			tag = "B"
		}
		body := []byte(fmt.Sprint("m", i))
		if i == 5 {
			body = bytes.Repeat([]byte("c"), 10000) // compressed by the producer
		}
		if _, err := p.Send(ctx, &Message{Topic: topic, Body: body, Tags: tag}); err != nil {
			t.Fatal(err)
		}
		if tag == "A" {
			want[string(body)] = true
		}
	}

	group := "cg_" + topic
	newConsumer := func() *PullConsumer {
		c, err := NewPullConsumer(group, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst), WithAutoCommit(0),
			WithLongPollTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe(ctx, topic, "A"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1, c2 := newConsumer(), newConsumer()
	defer c1.Close()
	defer c2.Close()
	got := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		for _, c := range []*PullConsumer{c1, c2} {
			pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			msgs, err := c.Poll(pctx)
			pcancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if m.Tags() != "A" {
					t.Fatalf("got tag %q through filter A", m.Tags())
				}
				got[string(m.Body)]++
			}
		}
	}
	for b := range want {
		if got[b] != 1 {
			t.Fatalf("message %.10q delivered %d times (got %d of %d)", b, got[b], len(got), len(want))
		}
	}
	a1, a2 := c1.Assignment(), c2.Assignment()
	if len(a1) != 2 || len(a2) != 2 {
		t.Fatalf("assignments %v and %v, want 2 queues each", a1, a2)
	}
	// The queue holding only B messages moves as the broker's filter skips them: keep polling until
	// every queue's committed offset reaches its end.
	clienttest.WaitFor(t, 10*time.Second, "the committed offsets to reach the end", func() bool {
		for _, c := range []*PullConsumer{c1, c2} {
			pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			msgs, _ := c.Poll(pctx)
			pcancel()
			if len(msgs) > 0 {
				t.Fatalf("more messages: %v", msgs)
			}
			if err := c.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		stats, err := adm.ConsumeStats(ctx, group, topic)
		return err == nil && stats.Lag() == 0
	})

	// c2 leaves: c1 takes over its queues, from the committed offsets (nothing is re-delivered).
	c2.Close()
	if _, err := c2.Poll(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("poll after close: %v", err)
	}
	if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("late"), Tags: "A"}); err != nil {
		t.Fatal(err)
	}
	var late []string
	// The late message may land on one of c1's own queues before the rebalance gives it c2's: poll
	// until both have happened.
	for (len(late) == 0 || len(c1.Assignment()) != 4) && time.Now().Before(deadline.Add(10*time.Second)) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		msgs, err := c1.Poll(pctx)
		pcancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		for _, m := range msgs {
			late = append(late, string(m.Body))
		}
	}
	if !slices.Equal(late, []string{"late"}) || len(c1.Assignment()) != 4 {
		t.Fatalf("after rebalance: got %q, assignment %v", late, c1.Assignment())
	}
}

func TestDevPullAssign(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := d.producer(t)
	topic := d.newTopic(ctx, t, 4)
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("first"), ShardingKey: "k"}, &Message{Topic: topic, Body: []byte("second"), ShardingKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	mq := res[0].Queue
	c, err := NewPullConsumer("cg_"+topic, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign(ctx, mq); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for len(bodies) < 2 {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			bodies = append(bodies, string(m.Body))
		}
	}
	if !slices.Equal(bodies, []string{"first", "second"}) {
		t.Fatalf("ordered bodies %q", bodies)
	}
	if err := c.Seek(mq, res[1].QueueOffset); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Poll(ctx)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "second" {
		t.Fatalf("after seek: %v, %v", msgs, err)
	}
}

// admin returns an Admin of the dev cluster, closed at the end of the test.
func (d *devProcess) admin(t *testing.T) *Admin {
	t.Helper()
	adm, err := NewAdmin(WithNameServers(d.ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Close() })
	return adm
}

// producer returns a Producer of the dev cluster, closed at the end of the test.
func (d *devProcess) producer(t *testing.T, opts ...ProducerOpt) *Producer {
	t.Helper()
	p, err := NewProducer(append([]ProducerOpt{WithNameServers(d.ns)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestDevPushConsumer(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	adm := d.admin(t)
	topic := uniqueTopic(t)
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 4}); err != nil {
		t.Fatal(err)
	}
	group := "cg_" + topic

	var mu sync.Mutex
	deliveries := map[string][]*message.Message{}
	handler := func(_ context.Context, m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		deliveries[string(m.Body)] = append(deliveries[string(m.Body)], m)
		if string(m.Body) == "m7" && m.ReconsumeTimes == 0 {
			return errors.New("first delivery of m7 fails")
		}
		return nil
	}
	var consumed atomic.Int32
	hook := consumeHookFunc(func(MessageQueue, time.Duration, error) { consumed.Add(1) })
	c1, c2 := d.pushPair(ctx, t, group, topic, handler, WithRetryDelayLevel(1), WithLongPollTimeout(2*time.Second),
		WithConsumeGoroutines(4), WithHooks(hook))

	p := d.producer(t)
	const n = 30
	for i := range n {
		if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(fmt.Sprint("m", i))}); err != nil {
			t.Fatal(err)
		}
	}
	clienttest.WaitFor(t, 20*time.Second, "every message and the retry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(deliveries) == n && len(deliveries["m7"]) == 2
	})
	mu.Lock()
	for body, ms := range deliveries {
		if body != "m7" && len(ms) != 1 {
			t.Errorf("%s delivered %d times", body, len(ms))
		}
	}
	retry := deliveries["m7"][1]
	mu.Unlock()
	if retry.Topic != topic || retry.ReconsumeTimes != 1 || retry.Property(message.PropertyRetryTopic) != topic {
		t.Fatalf("redelivered m7: topic %s, reconsume times %d", retry.Topic, retry.ReconsumeTimes)
	}
	clienttest.WaitFor(t, 5*time.Second, "the consume hook to see 31 handlings", func() bool { return consumed.Load() == 31 })
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := c1.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	stats, err := adm.ConsumeStats(ctx, group, topic)
	if err != nil || stats.Lag() != 0 {
		t.Fatalf("lag after shutdown: %+v, %v", stats, err)
	}
}

func TestDevCloseStopsGoroutines(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 1)
	before := runtime.NumGoroutine() // the admin's included: it is closed after the test
	p, err := NewProducer(WithNameServers(d.ns))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	p.SendAsync(ctx, &Message{Topic: topic, Body: []byte("x")}, func(_ *SendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	c, err := NewPushConsumer("cg_"+topic, func(context.Context, *message.Message) error {
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	}, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(topic, "*")
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the push consumer got nothing")
	}
	pc, err := NewPullConsumer("pcg_"+topic, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Subscribe(ctx, topic, "*"); err != nil {
		t.Fatal(err)
	}
	if msgs, err := pc.Poll(ctx); err != nil || len(msgs) != 1 {
		t.Fatalf("poll: %v, %v", msgs, err)
	}
	p.Close()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, 5*time.Second, "the clients' goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestDevTransactions(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 2)
	var checked atomic.Int32
	p := d.producer(t, WithProducerGroup("txg_"+topic), WithTransactionChecker(func(_ context.Context, m *message.Message) TransactionState {
		checked.Add(1)
		if string(m.Body) == "unknown-then-commit" {
			return TransactionCommit
		}
		return TransactionRollback
	}))
	for body, state := range map[string]TransactionState{"commit": TransactionCommit, "rollback": TransactionRollback,
		"unknown-then-commit": TransactionUnknown} {
		_, got, err := p.SendTransaction(ctx, &Message{Topic: topic, Body: []byte(body)}, func(_ context.Context, res *SendResult) TransactionState {
			if res.MsgID == "" {
				t.Error("exec got no message id")
			}
			return state
		})
		if err != nil || got != state {
			t.Fatalf("%s: state %v, %v", body, got, err)
		}
	}
	c := d.subscribeFromFirst(ctx, t, topic)
	got := map[string]bool{}
	for !got["unknown-then-commit"] || !got["commit"] {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll: %v (got %v, %d checks)", err, got, checked.Load())
		}
		for _, m := range msgs {
			got[string(m.Body)] = true
		}
	}
	if got["rollback"] || checked.Load() == 0 {
		t.Fatalf("got %v after %d checks", got, checked.Load())
	}
}

func TestDevOrderlyConsumer(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	topic := uniqueTopic(t)
	if err := d.admin(t).CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 4, Order: true}); err != nil {
		t.Fatal(err)
	}
	group := "cg_" + topic
	var mu sync.Mutex
	seen := map[string][]int{} // key → sequence numbers in handling order (successes only)
	failures := map[string]int{}
	handler := func(_ context.Context, m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		body := string(m.Body)
		if body == "poison" {
			failures[body]++
			return errors.New("always fails")
		}
		if body == "k1/3" && failures[body] < 2 {
			failures[body]++
			return errors.New("fails twice")
		}
		var key string
		var seq int
		fmt.Sscanf(strings.Replace(body, "/", " ", 1), "%s %d", &key, &seq)
		seen[key] = append(seen[key], seq)
		return nil
	}
	d.pushPair(ctx, t, group, topic, handler, WithOrderly(), WithMaxReconsumeTimes(2),
		WithOrderlyRetryDelay(50*time.Millisecond), WithLongPollTimeout(2*time.Second))
	p := d.producer(t)
	const perKey = 10
	for i := range perKey {
		for _, key := range []string{"k0", "k1", "k2", "k3", "k4"} {
			if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(fmt.Sprint(key, "/", i)), ShardingKey: key}); err != nil {
				t.Fatal(err)
			}
		}
		if i == 5 {
			if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("poison"), ShardingKey: "k2"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	clienttest.WaitFor(t, 20*time.Second, "every key's messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, key := range []string{"k0", "k1", "k2", "k3", "k4"} {
			if len(seen[key]) < perKey {
				return false
			}
		}
		return true
	})
	mu.Lock()
	for key, seqs := range seen {
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s handled out of order: %v", key, seqs)
			}
		}
	}
	if failures["poison"] != 3 || failures["k1/3"] != 2 {
		t.Fatalf("failures %v: want the poison message tried 3 times (1 + 2 retries)", failures)
	}
	mu.Unlock()

	// The poison message went to the dead-letter queue.
	dlq, err := NewPullConsumer("dlq_reader_"+topic, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	// The broker registers the DLQ topic it created with the NameServer in the background.
	clienttest.WaitFor(t, 10*time.Second, "the DLQ's route", func() bool {
		return dlq.Assign(ctx, MessageQueue{Topic: "%DLQ%" + group, BrokerName: "broker-a", QueueID: 0}) == nil
	})
	msgs, err := dlq.Poll(ctx)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "poison" {
		t.Fatalf("DLQ: %v, %v", msgs, err)
	}
}

// pushPair starts two push consumers of group on topic (which must have 4 queues) and waits until they
// share its queues and the retry queue. They are shut down at the end of the test.
func (d *devProcess) pushPair(ctx context.Context, t *testing.T, group, topic string, h Handler, opts ...PushConsumerOpt) (*PushConsumer, *PushConsumer) {
	t.Helper()
	var cs [2]*PushConsumer
	for i := range cs {
		c, err := NewPushConsumer(group, h, append([]PushConsumerOpt{WithNameServers(d.ns)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe(topic, "*"); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	clienttest.WaitFor(t, 15*time.Second, "the group to split the queues", func() bool {
		a1, a2 := cs[0].Assignment(), cs[1].Assignment()
		return len(a1)+len(a2) == 5 && len(a1) >= 2 && len(a2) >= 2
	})
	return cs[0], cs[1]
}

// collector is a Handler that records message bodies.
type collector struct {
	mu     sync.Mutex
	bodies map[string]int
}

func (c *collector) handle(_ context.Context, m *message.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bodies == nil {
		c.bodies = map[string]int{}
	}
	c.bodies[string(m.Body)]++
	return nil
}

func (c *collector) count() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.bodies {
		total += n
	}
	return len(c.bodies), total
}

func (d *devProcess) startPush(ctx context.Context, t *testing.T, group, topic string, h Handler, opts ...PushConsumerOpt) *PushConsumer {
	t.Helper()
	c, err := NewPushConsumer(group, h, append([]PushConsumerOpt{WithNameServers(d.ns), WithLongPollTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(topic, "*")
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendN(ctx context.Context, t *testing.T, p *Producer, topic, prefix string, n int) {
	t.Helper()
	for i := range n {
		if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(fmt.Sprint(prefix, i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// A consumer that dies without shutting down (its process killed) loses nothing: its successor
// starts from the last committed offsets, re-delivering at most what was handled since.
func TestDevPushCrashAndResetOffset(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	adm := d.admin(t)
	topic := uniqueTopic(t)
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 2}); err != nil {
		t.Fatal(err)
	}
	group := "cg_" + topic
	p := d.producer(t)
	start := time.Now().Add(-time.Second)

	var first collector
	a := d.startPush(ctx, t, group, topic, first.handle, WithOffsetPersistInterval(100*time.Millisecond))
	sendN(ctx, t, p, topic, "a", 20)
	clienttest.WaitFor(t, 10*time.Second, "the first 20", func() bool { n, _ := first.count(); return n == 20 })
	time.Sleep(400 * time.Millisecond) // several persist intervals: everything handled is committed
	a.c.close()                        // a crash: no Shutdown, no commit, no unregistering

	sendN(ctx, t, p, topic, "b", 10)
	var second collector
	b := d.startPush(ctx, t, group, topic, second.handle, WithOffsetPersistInterval(100*time.Millisecond))
	clienttest.WaitFor(t, 10*time.Second, "the next 10", func() bool { n, _ := second.count(); return n == 10 })
	second.mu.Lock()
	for body := range second.bodies {
		if !strings.HasPrefix(body, "b") {
			t.Errorf("%s re-delivered although it was committed before the crash", body)
		}
	}
	second.mu.Unlock()

	// An admin's reset reaches the online consumer: it reads everything again.
	if _, err := adm.ResetOffsetByTime(ctx, topic, group, start, true); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, 15*time.Second, "everything again after the reset", func() bool { _, total := second.count(); return total >= 40 })
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stats, err := adm.ConsumeStats(ctx, group, topic)
	if err != nil || stats.Lag() != 0 {
		t.Fatalf("lag after shutdown: %+v, %v", stats, err)
	}
}

func TestDevBroadcasting(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 2)
	group := "bg_" + topic
	dir := t.TempDir()
	var c1, c2 collector
	opts := func(file string) []PushConsumerOpt {
		return []PushConsumerOpt{WithBroadcasting(filepath.Join(dir, file)), WithOffsetPersistInterval(100 * time.Millisecond)}
	}
	a := d.startPush(ctx, t, group, topic, c1.handle, opts("a/offsets.json")...)
	d.startPush(ctx, t, group, topic, c2.handle, opts("b/offsets.json")...)
	clienttest.WaitFor(t, 10*time.Second, "both members to own every queue", func() bool { return len(a.Assignment()) == 2 })
	p := d.producer(t)
	sendN(ctx, t, p, topic, "m", 10)
	clienttest.WaitFor(t, 10*time.Second, "every member to get every message", func() bool {
		n1, t1 := c1.count()
		n2, t2 := c2.count()
		return n1 == 10 && n2 == 10 && t1 == 10 && t2 == 10
	})
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "a/offsets.json"))
	if err != nil {
		t.Fatal(err)
	}
	lo, err := loadLocalOffsets(filepath.Join(dir, "a/offsets.json"))
	if err != nil || len(lo.table) != 2 || lo.table[MessageQueue{Topic: topic, BrokerName: "broker-a", QueueID: 0}]+lo.table[MessageQueue{Topic: topic, BrokerName: "broker-a", QueueID: 1}] != 10 {
		t.Fatalf("offsets file %s: %v, %v", data, lo, err)
	}
	// A restarted member resumes from its file: it gets only what is new.
	sendN(ctx, t, p, topic, "n", 4)
	var c3 collector
	d.startPush(ctx, t, group, topic, c3.handle, opts("a/offsets.json")...)
	clienttest.WaitFor(t, 10*time.Second, "the new messages", func() bool { n, _ := c3.count(); return n == 4 })
	time.Sleep(200 * time.Millisecond)
	if n, total := c3.count(); n != 4 || total != 4 {
		t.Fatalf("restarted member got %d messages (%d deliveries), want the 4 new ones", n, total)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDevWarnsOnDifferentSubscriptions(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 2)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var c collector
	group := "cg_" + topic
	d.startPush(ctx, t, group, topic, c.handle, WithLogger(logger))
	b, err := NewPushConsumer(group, c.handle, WithNameServers(d.ns), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	b.Subscribe(topic, "onlyThis")
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clienttest.WaitFor(t, 10*time.Second, "a warning about the group's subscriptions", func() bool {
		return strings.Contains(logs.String(), "subscribe differently")
	})
	cc, err := d.admin(t).ConsumerConnection(ctx, group)
	if err != nil || len(cc.ConnectionSet) != 2 || cc.SubscriptionTable[topic] == nil {
		t.Fatalf("consumer connection %+v, %v", cc, err)
	}
}

// newTopic creates a topic with queues queues and returns its name.
func (d *devProcess) newTopic(ctx context.Context, t *testing.T, queues int32) string {
	t.Helper()
	topic := uniqueTopic(t)
	if err := d.admin(t).CreateTopic(ctx, TopicSpec{Topic: topic, Queues: queues}); err != nil {
		t.Fatal(err)
	}
	return topic
}

func TestDevConsumerRunningInfo(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 2)
	var col collector
	group := "cg_" + topic
	c := d.startPush(ctx, t, group, topic, col.handle)
	clienttest.WaitFor(t, 10*time.Second, "the queues", func() bool { return len(c.Assignment()) == 3 })
	adm := d.admin(t)
	resp, err := adm.c.call(ctx, d.Broker, remoting.NewRequest(code.GetConsumerRunningInfo,
		remoting.Fields{"consumerGroup", group, "clientId", c.ClientID(), "jstackEnable", "false"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseMQMapField(resp.Body, "mqTable")
	if err != nil || len(entries) != 3 || !strings.Contains(string(resp.Body), `"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"`) {
		t.Fatalf("running info %s: %v", resp.Body, err)
	}
}

func TestDevConsumeFromTimestamp(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 1)
	p := d.producer(t)
	sendN(ctx, t, p, topic, "old", 3)
	time.Sleep(50 * time.Millisecond)
	from := time.Now()
	time.Sleep(50 * time.Millisecond)
	sendN(ctx, t, p, topic, "new", 3)
	c, err := NewPullConsumer("cg_"+topic, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromTimestamp(from)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, topic, "*"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, string(m.Body))
		}
	}
	if !slices.Equal(got, []string{"new0", "new1", "new2"}) {
		t.Fatalf("from a timestamp: %q", got)
	}
}

func TestDevAdminGroupsAndStats(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := d.admin(t)
	topic := d.newTopic(ctx, t, 2)
	group := "admin_" + topic
	cfg := body.NewSubscriptionGroupConfig(group)
	cfg.RetryMaxTimes = 3
	if err := adm.CreateGroup(ctx, "", cfg); err != nil {
		t.Fatal(err)
	}
	groups, err := adm.Groups(ctx, d.Broker)
	if err != nil || groups[group] == nil || groups[group].RetryMaxTimes != 3 {
		t.Fatalf("groups: %v, %v", groups[group], err)
	}
	if err := adm.DeleteGroup(ctx, "", group, true); err != nil {
		t.Fatal(err)
	}
	if groups, err = adm.Groups(ctx, d.Broker); err != nil || groups[group] != nil {
		t.Fatalf("after delete: %v, %v", groups[group], err)
	}
	sendN(ctx, t, d.producer(t), topic, "s", 4)
	clienttest.WaitFor(t, 5*time.Second, "4 messages in the topic's stats", func() bool {
		stats, err := adm.TopicStats(ctx, topic)
		if err != nil || len(stats) != 2 {
			t.Fatalf("topic stats %v, %v", stats, err)
		}
		return stats[0].MaxOffset+stats[1].MaxOffset == 4 && !stats[0].LastUpdate.IsZero()
	})
	info, err := adm.BrokerRuntimeInfo(ctx, d.Broker)
	if err != nil || info["brokerVersionDesc"] == "" {
		t.Fatalf("runtime info %v, %v", info, err)
	}
	conf, err := adm.BrokerConfig(ctx, d.Broker)
	if err != nil || conf["brokerName"] != "broker-a" {
		t.Fatalf("broker config %v, %v", conf, err)
	}
}

// Two brokers on one NameServer; one is killed mid-run. Every send still succeeds: the failed
// attempts are retried on the other broker within the retry budget, and fault avoidance then keeps
// sends off the dead broker although the NameServer still routes to it.
func TestBrokerKilledMidRun(t *testing.T) {
	if apogeeBin == "" {
		t.Skip("integration test: needs the apogee binary (not built in -short mode)")
	}
	ns, nsAddr, err := clienttest.StartNameServer(apogeeBin)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Stop()
	var brokers []*clienttest.Process
	for _, name := range []string{"broker-a", "broker-b"} {
		b, _, err := clienttest.StartBroker(apogeeBin, nsAddr, name)
		if err != nil {
			t.Fatal(err)
		}
		brokers = append(brokers, b)
	}
	defer brokers[1].Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := NewAdmin(WithNameServers(nsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	topic := uniqueTopic(t)
	clienttest.WaitFor(t, 10*time.Second, "both brokers to register", func() bool {
		ci, err := adm.ClusterInfo(ctx)
		return err == nil && len(ci.BrokerAddrTable) == 2
	})
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 2}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(WithNameServers(nsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	perBroker := map[string]int{}
	for i := range 60 {
		if i == 20 {
			brokers[0].Kill()
		}
		res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte(fmt.Sprint("m", i))})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i >= 20 {
			perBroker[res[0].Queue.BrokerName]++
		}
	}
	if perBroker["broker-a"] != 0 || perBroker["broker-b"] != 40 {
		t.Fatalf("after broker-a was killed: %v", perBroker)
	}
}

// consumeHookFunc adapts a function to ConsumeHook.
type consumeHookFunc func(MessageQueue, time.Duration, error)

func (f consumeHookFunc) OnConsume(q MessageQueue, d time.Duration, err error) { f(q, d, err) }

// Consumers may subscribe before the topic exists: they pick it up once it does.
func TestDevSubscribeBeforeTopicExists(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := uniqueTopic(t)
	c := d.subscribeFromFirst(ctx, t, topic)
	var pushed collector
	d.startPush(ctx, t, "pg_"+topic, topic, pushed.handle, WithConsumeFrom(ConsumeFromFirst))
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if msgs, err := c.Poll(pctx); len(msgs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll of a missing topic: %v, %v", msgs, err)
	}
	pcancel()
	if err := d.admin(t).CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 2}); err != nil {
		t.Fatal(err)
	}
	sendN(ctx, t, d.producer(t), topic, "m", 4)
	got := 0
	for got < 4 {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(msgs)
	}
	clienttest.WaitFor(t, 10*time.Second, "the push consumer too", func() bool { n, _ := pushed.count(); return n == 4 })
}

// subscribeFromFirst returns a pull consumer of group cg_<topic> subscribed to every message of
// topic from the first, closed at the end of the test.
func (d *devProcess) subscribeFromFirst(ctx context.Context, t *testing.T, topic string) *PullConsumer {
	t.Helper()
	c, err := NewPullConsumer("cg_"+topic, WithNameServers(d.ns), WithConsumeFrom(ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Subscribe(ctx, topic, "*"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDevTimerMessage: a message with DeliverAt arrives at that millisecond (within 100 ms), and a
// delivery time beyond the broker's limit is refused.
func TestDevTimerMessage(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := d.newTopic(ctx, t, 1)
	got := make(chan *message.Message, 4)
	d.startPush(ctx, t, "cg_"+topic, topic, func(_ context.Context, m *message.Message) error {
		got <- m
		return nil
	})
	p := d.producer(t)
	due := time.Now().Add(1500 * time.Millisecond)
	if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("timed"), DeliverAt: due}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if late := time.UnixMilli(m.StoreTimestamp).Sub(due); string(m.Body) != "timed" || late < 0 || late > 100*time.Millisecond {
			t.Fatalf("%q stored for delivery %v after due", m.Body, late)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("timer message not delivered")
	}
	_, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("too far"), DeliverAt: time.Now().Add(100 * 24 * time.Hour)})
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != code.MessageIllegal {
		t.Fatalf("timer beyond the limit: %v", err)
	}
	if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("x"), DeliverAt: due, DelayLevel: 1}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("timer and delay level together: %v", err)
	}
}
