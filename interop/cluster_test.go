package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// testStoreConf keeps each test cluster's disk footprint small: the defaults preallocate a 1 GiB
// commit-log segment and a 400 MiB index file, and many clusters run at once.
var testStoreConf = []string{"mappedFileSizeCommitLog=67108864", "maxHashSlotNum=20000", "maxIndexNum=80000"}

// startDev runs `apogee dev` on free loopback ports with its data in a fresh directory (or dataDir),
// configured by broker.conf lines on top of testStoreConf.
func startDev(t testing.TB, dataDir string, conf []string, extra ...string) *devCluster {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	args := append([]string{"dev", listenArg("namesrv-listen"), listenArg("broker-listen"), "--data-dir", dataDir,
		"-c", brokerConf(t, append(testStoreConf, conf...)...)}, extra...)
	proc, addrs := startApogee(t, []string{"namesrv", "broker"}, args...)
	return &devCluster{proc: proc, ns: addrs["namesrv"], broker: addrs["broker"], dataDir: dataDir}
}

// instanceSeq makes every official client instance unique: the client library shares one instance
// (and its NameServer list) between producers and consumers with the same client id, which is
// IP@PID unless an instance name is set.
var instanceSeq atomic.Int64

// instanceName is unique across runs too: broadcasting consumers keep offsets in files named after
// it (see removeLocalOffsets).
func instanceName() string { return fmt.Sprintf("it%d-%d", os.Getpid(), instanceSeq.Add(1)) }

// removeLocalOffsets deletes the offset files this run's broadcasting consumers left under
// $HOME/.rocketmq_client_go (the client picks that directory when it loads, from the real HOME).
func removeLocalOffsets() {
	home, err := os.UserHomeDir()
	if err != nil {
		return
	}
	root := filepath.Join(home, ".rocketmq_client_go")
	mine := fmt.Sprintf("*@it%d-*", os.Getpid())
	// v2.1.2 names the files <group>/<clientID>/offset.json (its arguments are swapped); accept both.
	for _, pattern := range []string{filepath.Join(root, mine), filepath.Join(root, "*", mine)} {
		dirs, _ := filepath.Glob(pattern)
		for _, d := range dirs {
			os.RemoveAll(d)
			os.Remove(filepath.Dir(d)) // the group directory, if now empty
		}
	}
	os.Remove(root) // if now empty
}

func newProducer(t testing.TB, ns string, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts = append([]producer.Option{producer.WithNameServer([]string{ns}), producer.WithRetry(2),
		producer.WithGroupName("pg-" + sanitize(t.Name())), producer.WithInstanceName(instanceName())}, opts...)
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
	c, err := startPushConsumer(ns, group, topic, sel, func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		rec.add(msgs...)
		return consumer.ConsumeSuccess, nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newRawPushConsumer starts a clustering push consumer of every tag from the first offset with the
// given listener.
func newRawPushConsumer(t *testing.T, ns, group, topic string, f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error),
	opts ...consumer.Option) (rocketmq.PushConsumer, error) {
	t.Helper()
	return startPushConsumer(ns, group, topic, consumer.MessageSelector{}, f, opts...)
}

// startPushConsumer starts a push consumer from the first offset with its own instance name.
func startPushConsumer(ns, group, topic string, sel consumer.MessageSelector, f func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error),
	opts ...consumer.Option) (rocketmq.PushConsumer, error) {
	opts = append([]consumer.Option{consumer.WithNameServer([]string{ns}), consumer.WithGroupName(group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithInstance(instanceName())}, opts...)
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		return nil, err
	}
	if err := c.Subscribe(topic, sel, f); err != nil {
		return nil, err
	}
	return c, c.Start()
}

// sanitize turns a test name into a legal group name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
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
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	sendN(t, p, "SmokeTopic", 50, "m")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "smoke-cg", "SmokeTopic", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 50, 30*time.Second)
}
