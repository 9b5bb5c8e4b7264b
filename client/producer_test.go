package client

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

func newTestProducer(t *testing.T, f *fakeCluster, opts ...ProducerOpt) *Producer {
	t.Helper()
	p, err := NewProducer(append([]ProducerOpt{WithNameServers(f.nsAddr), WithProducerGroup("pg")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func props(cmd *remoting.Command) map[string]string { return message.ParseProperties(cmd.Ext("i")) }

func TestProducerRoundRobin(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 4)
	p := newTestProducer(t, f)
	ctx := context.Background()
	seen := map[MessageQueue]int{}
	for i := range 16 {
		res, err := p.Send(ctx, &Message{Topic: "T", Body: []byte("m" + strconv.Itoa(i)), Tags: "A", Keys: []string{"k1", "k2"}})
		if err != nil {
			t.Fatal(err)
		}
		seen[res[0].Queue]++
		if res[0].MsgID == "" || res[0].OffsetMsgID == "" || res[0].RegionID != "DefaultRegion" {
			t.Fatalf("result %+v", res[0])
		}
	}
	if len(seen) != 8 {
		t.Fatalf("16 sends used %d of 8 queues: %v", len(seen), seen)
	}
	for _, b := range f.brokers {
		got := b.received()
		if len(got) != 8 {
			t.Fatalf("%s got %d sends, want 8", b.name, len(got))
		}
		pr := props(got[0])
		if got[0].RequestCode() != code.SendMessageV2 || pr["TAGS"] != "A" || pr["KEYS"] != "k1 k2" || len(pr["UNIQ_KEY"]) != 32 {
			t.Fatalf("request %v, properties %q", got[0], pr)
		}
		if got[0].Ext("a") != "pg" || got[0].Ext("c") != "TBW102" || got[0].Ext("m") != "false" {
			t.Fatalf("header %v", got[0].ExtFields)
		}
	}
}

func TestProducerRetriesOnAnotherBroker(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 2)
	f.brokers[0].fail(code.SystemBusy, 0)
	p := newTestProducer(t, f)
	for i := range 6 {
		res, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if res[0].Queue.BrokerName != "broker-b" {
			t.Fatalf("send %d stored on %s", i, res[0].Queue.BrokerName)
		}
	}
	// The first failure isolates broker-a (a failure counts as 10 s of latency), so it is tried once.
	if n := len(f.brokers[0].received()); n != 1 {
		t.Fatalf("broker-a was tried %d times, want 1 (fault avoidance)", n)
	}
}

func TestProducerNoFaultAvoidanceStillRetries(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 1)
	f.brokers[0].fail(code.SystemBusy, 0)
	p := newTestProducer(t, f, WithFaultAvoidance(false))
	for range 4 {
		if _, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.brokers[0].received()); n < 1 {
		t.Fatalf("broker-a tried %d times", n)
	}
}

func TestProducerErrors(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 1)
	f.brokers[0].fail(code.MessageIllegal, 0)
	f.brokers[1].fail(code.MessageIllegal, 0)
	p := newTestProducer(t, f)
	_, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")})
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != code.MessageIllegal || IsRetriable(err) {
		t.Fatalf("err = %v, want a non-retriable MESSAGE_ILLEGAL", err)
	}
	if !errors.Is(err, &ResponseError{Code: code.MessageIllegal}) {
		t.Fatal("errors.Is by code failed")
	}
	if n := len(f.brokers[0].received()) + len(f.brokers[1].received()); n != 1 {
		t.Fatalf("%d attempts for a non-retriable error", n)
	}

	f.brokers[0].fail(code.SystemBusy, 0)
	f.brokers[1].fail(code.SystemBusy, 0)
	_, err = p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")})
	if !errors.As(err, &re) || re.Code != code.SystemBusy || !IsRetriable(err) {
		t.Fatalf("err = %v, want a retriable SYSTEM_BUSY", err)
	}

	for _, tc := range []struct {
		msg  *Message
		want error
	}{
		{&Message{Topic: "T"}, ErrInvalidMessage},
		{&Message{Topic: "bad topic", Body: []byte("x")}, ErrInvalidMessage},
		{&Message{Topic: "T", Body: []byte("x"), Keys: []string{"a b"}}, ErrInvalidMessage},
		{&Message{Topic: "T", Body: []byte("x"), Properties: map[string]string{"a\x01": "b"}}, ErrInvalidMessage},
		{&Message{Topic: "T", Body: make([]byte, 4<<20+1)}, ErrMessageTooLarge},
	} {
		if _, err := p.Send(context.Background(), tc.msg); !errors.Is(err, tc.want) || IsRetriable(err) {
			t.Errorf("Send(%.40v) = %v, want %v", tc.msg, err, tc.want)
		}
	}
}

func TestProducerCompressionAndDelay(t *testing.T) {
	f := newFakeCluster(t, "broker-a").start()
	f.addTopic("T", 1)
	p := newTestProducer(t, f)
	big := bytes.Repeat([]byte("compressible "), 1000)
	if _, err := p.Send(context.Background(), &Message{Topic: "T", Body: big, DelayLevel: 3},
		&Message{Topic: "T", Body: []byte("small")}); err != nil {
		t.Fatal(err)
	}
	got := f.brokers[0].received()
	if got[0].Ext("f") != "1" || len(got[0].Body) >= len(big) {
		t.Fatalf("sysFlag %s, body %d bytes: not compressed", got[0].Ext("f"), len(got[0].Body))
	}
	zr, err := zlib.NewReader(bytes.NewReader(got[0].Body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, big) {
		t.Fatal("decompressed body differs")
	}
	if props(got[0])["DELAY"] != "3" {
		t.Fatalf("properties %q", props(got[0]))
	}
	if got[1].Ext("f") != "0" || string(got[1].Body) != "small" {
		t.Fatalf("small message: sysFlag %s body %q", got[1].Ext("f"), got[1].Body)
	}
}

func TestProducerOrdered(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 4)
	p := newTestProducer(t, f)
	queues := map[string]MessageQueue{}
	for i := range 30 {
		key := "order-" + strconv.Itoa(i%3)
		res, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x"), ShardingKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if q, ok := queues[key]; ok && q != res[0].Queue {
			t.Fatalf("key %s went to %v and %v", key, q, res[0].Queue)
		}
		queues[key] = res[0].Queue
	}
	// HashSelector agrees with Java's SelectMessageQueueByHash: |"order-0".hashCode()| % 8.
	h := int64(message.HashMore(0, "order-0")) % 8
	if h < 0 {
		h = -h
	}
	r, _ := p.c.routes.get(context.Background(), "T", false)
	if queues["order-0"] != r.writeQueues[h] {
		t.Fatalf("order-0 went to %v, want %v", queues["order-0"], r.writeQueues[h])
	}
}

func TestProducerBatch(t *testing.T) {
	f := newFakeCluster(t, "broker-a").start()
	f.addTopic("T", 2)
	p := newTestProducer(t, f)
	res, err := p.SendBatch(context.Background(), &Message{Topic: "T", Body: []byte("a"), Tags: "x"}, &Message{Topic: "T", Body: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	got := f.brokers[0].received()
	if len(got) != 1 || got[0].RequestCode() != code.SendBatchMessage || got[0].Ext("m") != "true" {
		t.Fatalf("requests %v", got)
	}
	msgs, err := message.DecodeBatch(got[0].Body)
	if err != nil || len(msgs) != 2 || string(msgs[1].Body) != "b" || msgs[0].Tags() != "x" {
		t.Fatalf("batch %v %v", msgs, err)
	}
	if want := msgs[0].UniqKey() + "," + msgs[1].UniqKey(); res.MsgID != want {
		t.Fatalf("MsgID %q, want %q", res.MsgID, want)
	}
	if _, err := p.SendBatch(context.Background(), &Message{Topic: "T", Body: []byte("a")}, &Message{Topic: "U", Body: []byte("b")}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("mixed topics: %v", err)
	}
	if _, err := p.SendBatch(context.Background(), &Message{Topic: "T", Body: []byte("a"), DelayLevel: 2}); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("delay in batch: %v", err)
	}
}

func TestProducerAsyncAndClose(t *testing.T) {
	f := newFakeCluster(t, "broker-a").start()
	f.addTopic("T", 4)
	p := newTestProducer(t, f, WithMaxAsyncInflight(8))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 100 {
		wg.Add(1)
		p.SendAsync(context.Background(), &Message{Topic: "T", Body: []byte("x")}, func(r *SendResult, err error) {
			defer wg.Done()
			if err == nil && r.OffsetMsgID == "" {
				err = errors.New("empty result")
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	p.Close()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.brokers[0].received()); n != 100 {
		t.Fatalf("broker got %d sends", n)
	}
	if _, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")}); !errors.Is(err, ErrClosed) || IsRetriable(err) {
		t.Fatalf("send after close: %v", err)
	}
	done := make(chan error, 1)
	p.SendAsync(context.Background(), &Message{Topic: "T", Body: []byte("x")}, func(_ *SendResult, err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("async send after close: %v", err)
	}
}

func TestProducerAsyncRetriesAndTimesOut(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 2)
	f.brokers[0].fail(code.SystemBusy, 0)
	p := newTestProducer(t, f)
	for i := range 6 {
		done := make(chan *SendResult, 1)
		p.SendAsync(context.Background(), &Message{Topic: "T", Body: []byte("x")}, func(r *SendResult, err error) {
			if err != nil {
				t.Errorf("async send %d: %v", i, err)
			}
			done <- r
		})
		if r := <-done; r != nil && r.Queue.BrokerName != "broker-b" {
			t.Fatalf("async send %d stored on %s", i, r.Queue.BrokerName)
		}
	}
	if n := len(f.brokers[0].received()); n < 1 {
		t.Fatal("the failing broker was never tried")
	}

	// A broker that never answers: the send fails once the send timeout has passed, without a
	// goroutine waiting for it.
	slow := newFakeCluster(t, "broker-slow")
	release := make(chan struct{})
	defer close(release)
	slow.brokers[0].mux.HandleFunc(code.SendMessageV2, func(ctx context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	slow.start().addTopic("T", 1)
	ps := newTestProducer(t, slow, WithSendTimeout(200*time.Millisecond))
	begin := time.Now()
	errc := make(chan error, 1)
	ps.SendAsync(context.Background(), &Message{Topic: "T", Body: []byte("x")}, func(_ *SendResult, err error) { errc <- err })
	if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("async send to a silent broker: %v", err)
	}
	if d := time.Since(begin); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("async send to a silent broker failed after %s; the send timeout is 200ms", d)
	}
}

func TestProducerOneway(t *testing.T) {
	f := newFakeCluster(t, "broker-a").start()
	f.addTopic("T", 1)
	p := newTestProducer(t, f)
	if err := p.SendOneway(context.Background(), &Message{Topic: "T", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(f.brokers[0].received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("oneway send never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.brokers[0].received()[0]; got.Flag&remoting.FlagOneway == 0 {
		t.Fatalf("flag %d", got.Flag)
	}
}

func TestProducerAutoCreateRoute(t *testing.T) {
	f := newFakeCluster(t, "broker-a").start()
	p := newTestProducer(t, f)
	res, err := p.Send(context.Background(), &Message{Topic: "NEW", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.c.routes.get(context.Background(), "NEW", true)
	if !r.auto || len(r.writeQueues) != defaultTopicQueueNums || res[0].Queue.Topic != "NEW" {
		t.Fatalf("route %+v, result %+v", r, res[0])
	}
	if _, err := p.c.routes.get(context.Background(), "NEW", false); !errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
		t.Fatalf("route without auto-creation: %v", err)
	}
}

func TestProducerNoNameServer(t *testing.T) {
	if _, err := NewProducer(); !errors.Is(err, ErrNoNameServer) {
		t.Fatal(err)
	}
	f := newFakeCluster(t).start()
	p := newTestProducer(t, f, WithSendTimeout(500*time.Millisecond))
	f.mu.Lock()
	delete(f.topics, "TBW102")
	f.mu.Unlock()
	_, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")})
	if !errors.Is(err, ErrNoRoute) || !IsRetriable(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestIsolationTable(t *testing.T) {
	for _, tc := range []struct{ latency, want time.Duration }{
		{0, 0}, {100 * time.Millisecond, 0}, {549 * time.Millisecond, 0}, {550 * time.Millisecond, 2 * time.Second},
		{2 * time.Second, 5 * time.Second}, {3 * time.Second, 6 * time.Second}, {10 * time.Second, 10 * time.Second},
		{time.Minute, 30 * time.Second},
	} {
		if got := isolationFor(tc.latency); got != tc.want {
			t.Errorf("isolationFor(%v) = %v, want %v", tc.latency, got, tc.want)
		}
	}
	now := time.Unix(1000, 0)
	ft := newFaultTable(func() time.Time { return now })
	ft.record("a", time.Second, false)
	if ft.available("a") {
		t.Fatal("a slow broker stays available")
	}
	now = now.Add(2 * time.Second)
	if !ft.available("a") {
		t.Fatal("isolation does not end")
	}
	ft.record("a", 0, true)
	now = now.Add(9 * time.Second)
	if ft.available("a") {
		t.Fatal("a failure isolates for 10 s")
	}
}

// A broker that goes away mid-run costs no send: each failure is retried on the other broker within
// the retry budget, and fault avoidance then keeps sends away from it.
func TestProducerBrokerStopsMidRun(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 2)
	p := newTestProducer(t, f)
	ctx := context.Background()
	perBroker := map[string]int{}
	for i := range 40 {
		if i == 10 {
			f.brokers[0].stop()
		}
		res, err := p.Send(ctx, &Message{Topic: "T", Body: []byte("x")})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i >= 10 {
			perBroker[res[0].Queue.BrokerName]++
		}
	}
	if perBroker["broker-a"] != 0 || perBroker["broker-b"] != 30 {
		t.Fatalf("after broker-a stopped: %v", perBroker)
	}
}

// Routes are refreshed periodically: a broker that starts serving the topic gets sends.
func TestProducerRouteRefresh(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 2)
	f.mu.Lock()
	only := f.brokers
	f.brokers = only[:1]
	f.mu.Unlock()
	p := newTestProducer(t, f, WithRouteRefresh(50*time.Millisecond))
	send := func() string {
		res, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Queue.BrokerName
	}
	for range 4 {
		if b := send(); b != "broker-a" {
			t.Fatalf("sent to %s before it served the topic", b)
		}
	}
	f.mu.Lock()
	f.brokers = only
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for send() != "broker-b" {
		if time.Now().After(deadline) {
			t.Fatal("the refreshed route was never used")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendCounter is a SendHook.
type sendCounter struct {
	mu       sync.Mutex
	attempts map[string]int // broker → attempts
	failures int
}

func (c *sendCounter) OnSend(topic, broker string, _ time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attempts == nil {
		c.attempts = map[string]int{}
	}
	c.attempts[broker]++
	if err != nil {
		c.failures++
	}
}

func TestProducerSendHook(t *testing.T) {
	f := newFakeCluster(t, "broker-a", "broker-b").start()
	f.addTopic("T", 1)
	f.brokers[0].fail(code.SystemBusy, 0)
	var hook sendCounter
	p := newTestProducer(t, f, WithHooks(&hook, "not a hook"))
	for range 3 {
		if _, err := p.Send(context.Background(), &Message{Topic: "T", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.attempts["broker-b"] != 3 || hook.failures != hook.attempts["broker-a"] || hook.failures == 0 {
		t.Fatalf("hook saw %v attempts, %d failures", hook.attempts, hook.failures)
	}
}

// TestMessageProperties: the wire properties of a message, built without a map, follow the rules of
// Message.Properties: fields override reserved names, a user UNIQ_KEY is kept, empty items are
// dropped, and names are in a fixed order.
func TestMessageProperties(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	ids := message.NewUniqIDGenerator(netip.MustParseAddr("10.0.0.1"), 1)
	cases := []struct {
		msg      Message
		wire     string
		uniqSent string
	}{
		{Message{}, "UNIQ_KEY\x01gen", "gen"},
		{Message{Tags: "A", Keys: []string{"k1", "k2"}, DelayLevel: 3},
			"TAGS\x01A\x02KEYS\x01k1 k2\x02DELAY\x013\x02UNIQ_KEY\x01gen", "gen"},
		{Message{DeliverAt: at, Properties: map[string]string{"b": "2", "a": "1", "empty": "", "TAGS": "user"}},
			"TAGS\x01user\x02a\x011\x02b\x012\x02TIMER_DELIVER_MS\x011700000000123\x02UNIQ_KEY\x01gen", "gen"},
		{Message{Tags: "A", Properties: map[string]string{"TAGS": "user", "UNIQ_KEY": "mine"}},
			"TAGS\x01A\x02UNIQ_KEY\x01mine", "mine"},
	}
	for i, c := range cases {
		got, uniqAt, err := c.msg.appendProperties(nil, ids, at)
		uniq := string(got[uniqAt:])
		if c.uniqSent == "gen" && len(uniq) == 32 { // a new id: compare the rest
			got, uniq = append(got[:uniqAt:uniqAt], "gen"...), "gen"
		}
		if err != nil || string(got) != c.wire || uniq != c.uniqSent {
			t.Errorf("case %d: %q, %q, %v; want %q, %q", i, got, uniq, err, c.wire, c.uniqSent)
		}
	}
	bad := []Message{
		{DelayLevel: -1},
		{DelayLevel: 2, DeliverAt: at},
		{Keys: []string{"a b"}},
		{Tags: "a\x02b"},
		{Properties: map[string]string{"k": "v\x01"}},
		{Properties: map[string]string{"big": strings.Repeat("x", message.MaxPropertiesLength)}},
	}
	for i, m := range bad {
		if _, _, err := m.appendProperties(nil, ids, at); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("bad case %d: %v", i, err)
		}
	}
}

// TestSendHeader checks the header a send carries: the born time of its first attempt comes from
// the same string as the properties, a retry's is its own.
func TestSendHeader(t *testing.T) {
	p, err := NewProducer(WithNameServers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req, err := p.prepare(&Message{Topic: "T", Body: []byte("x"), Tags: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "TAGS\x01a\x02UNIQ_KEY\x01" + req.uniqKey; req.properties != want || len(req.uniqKey) != 32 {
		t.Fatalf("properties %q, uniq key %q", req.properties, req.uniqKey)
	}
	mq := MessageQueue{Topic: "T", BrokerName: "b", QueueID: 3}
	for _, at := range []time.Time{req.began, req.began.Add(1500 * time.Millisecond)} {
		cmd := req.command("g", mq, at)
		if got, want := cmd.Ext("g"), strconv.FormatInt(at.UnixMilli(), 10); got != want || cmd.Ext("i") != req.properties || cmd.Ext("e") != "3" {
			t.Fatalf("born %q (want %q), properties %q, queue %q", got, want, cmd.Ext("i"), cmd.Ext("e"))
		}
		req.done(cmd)
	}
	// An attempt that starts while the last one's command is still being sent gets a command of
	// its own; once handed back, the request's own is reused.
	first := req.command("g", mq, req.began)
	second := req.command("g", MessageQueue{Topic: "T", BrokerName: "b", QueueID: 5}, req.began)
	if first == second || first.Ext("e") != "3" || second.Ext("e") != "5" {
		t.Fatalf("overlapping attempts share a command: queue %q and %q", first.Ext("e"), second.Ext("e"))
	}
	req.done(second)
	req.done(first)
	if again := req.command("g", mq, req.began); again != first {
		t.Fatal("the request's own command was not reused once handed back")
	}
}
