package interop

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// devCluster is an `apogee dev` process: a NameServer and a broker.
type devCluster struct {
	proc    *apogeeProcess
	ns      string
	broker  string
	dataDir string
}

// startDev runs `apogee dev` on free loopback ports with its data in a fresh directory (or dataDir).
func startDev(t *testing.T, dataDir string, extra ...string) *devCluster {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := append([]string{"dev", listenArg("namesrv-listen"), listenArg("broker-listen"), "--data-dir", dataDir}, extra...)
	proc, addrs := startApogee(t, []string{"namesrv", "broker"}, args...)
	return &devCluster{proc: proc, ns: addrs["namesrv"], broker: addrs["broker"], dataDir: dataDir}
}

func newProducer(t *testing.T, ns string, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts = append([]producer.Option{producer.WithNameServer([]string{ns}), producer.WithRetry(2),
		producer.WithGroupName("pg-" + t.Name())}, opts...)
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// received counts consumed messages by body.
type received struct {
	mu     sync.Mutex
	counts map[string]int
	msgs   []*primitive.MessageExt
	total  int
	signal chan struct{}
}

func newReceived() *received {
	return &received{counts: map[string]int{}, signal: make(chan struct{}, 1)}
}

func (r *received) add(msgs ...*primitive.MessageExt) {
	r.mu.Lock()
	for _, m := range msgs {
		r.counts[string(m.Body)]++
		r.msgs = append(r.msgs, m)
		r.total++
	}
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// distinct returns how many different bodies arrived.
func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// waitDistinct waits until n different bodies arrived.
func (r *received) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for r.distinct() < n {
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("received %d of %d messages within %v", r.distinct(), n, timeout)
		}
	}
}

func newPushConsumer(t *testing.T, ns, group, topic string, sel consumer.MessageSelector, rec *received, opts ...consumer.Option) rocketmq.PushConsumer {
	t.Helper()
	opts = append([]consumer.Option{consumer.WithNameServer([]string{ns}), consumer.WithGroupName(group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset)}, opts...)
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, sel, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		rec.add(msgs...)
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

func sendN(t *testing.T, p rocketmq.Producer, topic string, n int, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(fmt.Sprintf("%s-%d", prefix, i))))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if res.Status != primitive.SendOK {
			t.Fatalf("send %d: status %v", i, res.Status)
		}
	}
}

func TestSyncSendAndPushConsume(t *testing.T) {
	dc := startDev(t, "")
	p := newProducer(t, dc.ns)
	sendN(t, p, "SmokeTopic", 50, "m")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "smoke-cg", "SmokeTopic", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 50, 30*time.Second)
}
