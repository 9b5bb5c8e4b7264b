package interop

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// TestSendModes: sync, async, oneway and batch sends of the official client are all stored and
// delivered, with the send results the client expects.
func TestSendModes(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, n = "SendModes", 20
	sent := 0

	var lastOffset int64 = -1
	for i := range n {
		res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("sync-"+strconv.Itoa(i))))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("sync %d: %v %v", i, res, err)
		}
		if _, _, err := message.ParseOffsetMsgID(res.OffsetMsgID); err != nil {
			t.Fatalf("offset msg id %q: %v", res.OffsetMsgID, err)
		}
		if res.MsgID == "" || res.MessageQueue.BrokerName != "broker-a" || res.RegionID != "DefaultRegion" {
			t.Fatalf("send result %+v", res)
		}
		if res.MessageQueue.QueueId == 0 && res.QueueOffset <= lastOffset {
			t.Fatalf("queue offset %d after %d", res.QueueOffset, lastOffset)
		}
		if res.MessageQueue.QueueId == 0 {
			lastOffset = res.QueueOffset
		}
		sent++
	}

	var wg sync.WaitGroup
	var asyncErrs atomic.Int32
	for i := range n {
		wg.Add(1)
		err := p.SendAsync(ctx, func(_ context.Context, res *primitive.SendResult, err error) {
			defer wg.Done()
			if err != nil || res.Status != primitive.SendOK {
				asyncErrs.Add(1)
			}
		}, primitive.NewMessage(topic, []byte("async-"+strconv.Itoa(i))))
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if asyncErrs.Load() != 0 {
		t.Fatalf("%d async sends failed", asyncErrs.Load())
	}
	sent += n

	for i := range n {
		if err := p.SendOneWay(ctx, primitive.NewMessage(topic, []byte("oneway-"+strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	sent += n

	var batch []*primitive.Message
	for i := range n {
		batch = append(batch, primitive.NewMessage(topic, []byte("batch-"+strconv.Itoa(i))))
	}
	res, err := p.SendSync(ctx, batch...)
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("batch: %v %v", res, err)
	}
	if ids := strings.Split(res.OffsetMsgID, ","); len(ids) != n {
		t.Fatalf("batch answered %d ids, want %d", len(ids), n)
	}
	sent += n

	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "send-modes-cg", topic, consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, sent, 60*time.Second)
}

// TestClusteringTwoMembers: two push consumers of one group share the queues; every message is
// consumed, duplicates are rare, and both members get work.
func TestClusteringTwoMembers(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic, group = "Clustered", "clustered-cg"
	sendN(t, p, topic, 1, "warmup") // creates the topic so both consumers find a route
	recA, recB := newReceived(), newReceived()
	a := newPushConsumer(t, dc.ns, group, topic, consumer.MessageSelector{}, recA)
	defer a.Shutdown()
	b := newPushConsumer(t, dc.ns, group, topic, consumer.MessageSelector{}, recB)
	defer b.Shutdown()
	// Let the broker's NOTIFY_CONSUMER_IDS_CHANGED trigger the rebalance that splits the queues.
	time.Sleep(3 * time.Second)
	const n = 200
	sendN(t, p, topic, n, "c")

	all := func() (distinct, total int) {
		seen := map[string]int{}
		for _, r := range []*received{recA, recB} {
			r.mu.Lock()
			for body, k := range r.counts {
				seen[body] += k
				total += k
			}
			r.mu.Unlock()
		}
		return len(seen), total
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if d, _ := all(); d == n+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	distinct, total := all()
	if distinct != n+1 {
		t.Fatalf("consumed %d distinct messages, want %d", distinct, n+1)
	}
	if dup := total - distinct; dup > n/10 {
		t.Errorf("%d duplicates of %d messages", dup, n)
	}
	if recA.distinct() == 0 || recB.distinct() == 0 {
		t.Errorf("one member got nothing: a=%d b=%d", recA.distinct(), recB.distinct())
	}
	t.Logf("member a consumed %d, member b %d, duplicates %d", recA.distinct(), recB.distinct(), total-distinct)
}

// TestBroadcasting: every consumer of a broadcasting group receives every message.
func TestBroadcasting(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic = "Broadcast"
	sendN(t, p, topic, 30, "b")
	var recs []*received
	for range 2 {
		rec := newReceived()
		c := newPushConsumer(t, dc.ns, "broadcast-cg", topic, consumer.MessageSelector{}, rec, consumer.WithConsumerModel(consumer.BroadCasting))
		defer c.Shutdown()
		recs = append(recs, rec)
	}
	for _, rec := range recs {
		rec.waitDistinct(t, 30, 60*time.Second)
	}
}

// TestTagFiltering: a TAG subscription gets only its tags, and the broker filters before sending.
func TestTagFiltering(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic = "Tagged"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 30 {
		tag := []string{"TagA", "TagB", "TagC"}[i%3]
		m := primitive.NewMessage(topic, []byte(fmt.Sprintf("%s-%d", tag, i)))
		m.WithTag(tag)
		if _, err := p.SendSync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "tag-cg", topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "TagA || TagC"}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 20, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	rec.mu.Lock()
	for body := range rec.counts {
		if strings.HasPrefix(body, "TagB") {
			t.Errorf("received %s", body)
		}
	}
	rec.mu.Unlock()

	// The broker itself filters: a raw pull with subscription TagB returns only TagB messages.
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	got := 0
	for q := range 4 {
		req := remoting.NewRequest(code.PullMessage, remoting.Fields{
			"consumerGroup", "raw-tag-cg",
			"topic", topic,
			"queueId", strconv.Itoa(q),
			"queueOffset", "0",
			"maxMsgNums", "32",
			"sysFlag", "4",
			"commitOffset", "0",
			"suspendTimeoutMillis", "0",
			"subscription", "TagB",
			"subVersion", "0",
			"expressionType", "TAG",
		}, nil)
		resp, err := cl.Invoke(ctx, dc.broker, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ResponseCode() != code.Success {
			continue
		}
		msgs, err := message.DecodeRecords(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Tags() != "TagB" {
				t.Errorf("broker sent %s for a TagB subscription", m.Tags())
			}
			got++
		}
	}
	if got != 10 {
		t.Errorf("raw pull got %d TagB messages, want 10", got)
	}
}

// TestOrderlyConsumption: an orderly consumer locks its queues on the broker and sees each key's
// messages in the order they were sent.
func TestOrderlyConsumption(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	const topic, keys, perKey = "Ordered", 4, 25
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range perKey {
		for k := range keys {
			m := primitive.NewMessage(topic, []byte(fmt.Sprintf("k%d-%03d", k, i)))
			m.WithShardingKey("key-" + strconv.Itoa(k))
			if _, err := p.SendSync(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	seq := map[string][]string{}
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{dc.ns}), consumer.WithGroupName("orderly-cg"),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithConsumerOrder(true), consumer.WithInstance(instanceName()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var total atomic.Int32
	c.Subscribe(topic, consumer.MessageSelector{}, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		for _, m := range msgs {
			k, _, _ := strings.Cut(string(m.Body), "-")
			seq[k] = append(seq[k], string(m.Body))
		}
		mu.Unlock()
		if total.Add(int32(len(msgs))) >= keys*perKey {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("orderly consumer got %d of %d", total.Load(), keys*perKey)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, got := range seq {
		if !slices.IsSorted(got) {
			t.Errorf("key %s out of order: %v", k, got)
		}
	}
}

// TestPullConsumer: the v2.1.2 pull consumer (which asks for maxMsgNums=0) gets every message.
func TestPullConsumer(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic, n = "Pulled", 20
	sendN(t, p, topic, n, "p")
	c, err := rocketmq.NewPullConsumer(consumer.WithNameServer([]string{dc.ns}), consumer.WithGroupName("pull-cg"),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithInstance(instanceName()))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(topic, consumer.MessageSelector{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cr, err := c.Poll(ctx, 5*time.Second)
		cancel()
		if err != nil {
			continue
		}
		for _, m := range cr.GetMsgList() {
			seen[string(m.Body)] = true
		}
		c.ACK(context.Background(), cr, consumer.ConsumeSuccess)
	}
	if len(seen) != n {
		t.Fatalf("pulled %d of %d", len(seen), n)
	}
}

// TestOffsetsResumeAfterRestart: a consumer group restarted later continues where it stopped.
func TestOffsetsResumeAfterRestart(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic, group = "Resumed", "resume-cg"
	sendN(t, p, topic, 40, "first")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, group, topic, consumer.MessageSelector{}, rec)
	rec.waitDistinct(t, 40, 60*time.Second)
	// The client commits offsets to the broker 10 s after it starts and every 5 s after; the commit it
	// sends at Shutdown is not waited for and can be lost with the connection it closes, so let a
	// periodic commit happen first.
	time.Sleep(11 * time.Second)
	c.Shutdown()

	sendN(t, p, topic, 40, "second")
	rec2 := newReceived()
	c2 := newPushConsumer(t, dc.ns, group, topic, consumer.MessageSelector{}, rec2)
	defer c2.Shutdown()
	rec2.waitDistinct(t, 40, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	rec2.mu.Lock()
	defer rec2.mu.Unlock()
	old := 0
	for body := range rec2.counts {
		if strings.HasPrefix(body, "first") {
			old++
		}
	}
	if old > 0 {
		t.Errorf("the restarted consumer re-consumed %d already committed messages", old)
	}
}

// TestTopicAutoCreation: the first send to an unknown topic creates it from TBW102 with the client's
// default of 4 queues, and the NameServer routes it at once.
func TestTopicAutoCreation(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	sendN(t, p, "AutoCreated", 1, "a")
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{dc.ns})))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	mqs, err := adm.FetchPublishMessageQueues(context.Background(), "AutoCreated")
	if err != nil || len(mqs) != 4 {
		t.Fatalf("route of the auto-created topic: %d queues, %v", len(mqs), err)
	}
}

// TestOversizedMessageRefused: a body over maxMessageSize (4 MiB) is refused with MESSAGE_ILLEGAL and
// a remark naming the limit, and the next send works.
func TestOversizedMessageRefused(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns, producer.WithRetry(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sendN(t, p, "Big", 1, "small")
	big := make([]byte, 4<<20+1)
	rand.Read(big) // incompressible, so the client's compression cannot shrink it
	_, err := p.SendSync(ctx, primitive.NewMessage("Big", big))
	if err == nil || !strings.Contains(err.Error(), "CODE: 13") || !strings.Contains(err.Error(), "maxMessageSize") {
		t.Fatalf("oversized send: %v", err)
	}
	sendN(t, p, "Big", 1, "after")
}
