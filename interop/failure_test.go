package interop

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestTopicOverTwoBrokers: two broker processes on one NameServer; a topic created on both spreads
// its queues over both, and producers and consumers use both.
func TestTopicOverTwoBrokers(t *testing.T) {
	t.Parallel()
	_, nsAddrs := startApogee(t, []string{"namesrv"}, "namesrv", listenArg("listen"))
	ns := nsAddrs["namesrv"]
	var brokers []string
	for _, name := range []string{"broker-a", "broker-b"} {
		_, addrs := startApogee(t, []string{"broker"}, "broker", listenArg("listen"), "--namesrv", ns,
			"--broker-name", name, "--data-dir", t.TempDir(), "-c", brokerConf(t, testStoreConf...))
		brokers = append(brokers, addrs["broker"])
	}
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{ns})))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "Spread"
	for _, addr := range brokers {
		if err := adm.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(addr),
			admin.WithReadQueueNums(2), admin.WithWriteQueueNums(2)); err != nil {
			t.Fatal(err)
		}
	}
	mqs, err := adm.FetchPublishMessageQueues(ctx, topic)
	if err != nil || len(mqs) != 4 {
		t.Fatalf("route: %d queues, %v", len(mqs), err)
	}

	p := newProducer(t, ns)
	perBroker := map[string]int{}
	const n = 40
	for i := range n {
		res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(fmt.Sprintf("s-%d", i))))
		if err != nil {
			t.Fatal(err)
		}
		perBroker[res.MessageQueue.BrokerName]++
	}
	if perBroker["broker-a"] == 0 || perBroker["broker-b"] == 0 {
		t.Fatalf("sends per broker: %v", perBroker)
	}
	rec := newReceived()
	c := newPushConsumer(t, ns, "spread-cg", topic, consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, n, 60*time.Second)
	got := map[string]int{}
	rec.mu.Lock()
	for _, m := range rec.msgs {
		got[m.Queue.BrokerName]++
	}
	rec.mu.Unlock()
	if got["broker-a"] == 0 || got["broker-b"] == 0 {
		t.Fatalf("consumed per broker: %v", got)
	}
}

// TestKill9UnderSyncFlushLosesNothing: `apogee dev` with SYNC_FLUSH is killed with SIGKILL while
// producers send; after a restart on the same data every acknowledged message is there.
func TestKill9UnderSyncFlushLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dc := startDev(t, dir, nil, "--flush", "SYNC_FLUSH")
	const topic = "Durable"
	p := newProducer(t, dc.ns, producer.WithRetry(0), producer.WithSendMsgTimeout(2*time.Second))
	sendN(t, p, topic, 1, "warmup")

	var mu sync.Mutex
	acked := map[string]bool{"warmup-0": true}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
				cancel()
				if err == nil && res.Status == primitive.SendOK {
					mu.Lock()
					acked[body] = true
					mu.Unlock()
				} else if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	dc.proc.kill9(t)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < 50 {
		t.Fatalf("only %d sends were acknowledged before the kill", n)
	}

	dc2 := startDev(t, dir, nil, "--flush", "SYNC_FLUSH")
	rec := newReceived()
	c := newPushConsumer(t, dc2.ns, "durable-cg", topic, consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		rec.mu.Lock()
		for body := range acked {
			if rec.counts[body] == 0 {
				missing++
			}
		}
		rec.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages missing after the restart", missing, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d acknowledged messages all present after kill -9", n)
}
