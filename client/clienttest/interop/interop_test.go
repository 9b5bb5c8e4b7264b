package interop

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/apogeemq/apogee/client"
	"github.com/apogeemq/apogee/client/clienttest"
	"github.com/apogeemq/apogee/message"
)

var dev *clienttest.Dev

func TestMain(m *testing.M) {
	flag.Parse()
	rlog.SetLogLevel("error")
	dir, err := os.MkdirTemp("", "apogee-client-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err := clienttest.Build("../../..", dir)
	if err == nil {
		dev, err = clienttest.StartDev(bin, "transactionCheckInterval=300", "transactionTimeOut=500")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := dev.Stop(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var seq atomic.Int64

// names returns a fresh topic and group.
func names() (topic, group string) {
	n := fmt.Sprintf("%d_%d", time.Now().UnixNano(), seq.Add(1))
	return "it_" + n, "ig_" + n
}

func instance() string { return fmt.Sprintf("ci%d-%d", os.Getpid(), seq.Add(1)) }

func createTopic(t *testing.T, topic string, queues int32) {
	t.Helper()
	adm, err := client.NewAdmin(client.WithNameServers(dev.NameServer))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := adm.CreateTopic(ctx, client.TopicSpec{Topic: topic, Queues: queues}); err != nil {
		t.Fatal(err)
	}
}

// bodies collects message bodies in arrival order.
type bodies struct {
	mu   sync.Mutex
	list []string
	meta map[string]string // body → tags|keys
}

func (b *bodies) add(body, tags, keys string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.meta == nil {
		b.meta = map[string]string{}
	}
	b.list = append(b.list, body)
	b.meta[body] = tags + "|" + keys
}

func (b *bodies) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

func distinct(list []string) map[string]int {
	out := map[string]int{}
	for _, s := range list {
		out[s]++
	}
	return out
}

var big = strings.Repeat("compressible ", 1000) // over 4 KiB: both clients compress it

// Our producer (plain, compressed, keyed and ordered messages) → the official push consumer.
func TestOfficialConsumesOurs(t *testing.T) {
	topic, group := names()
	createTopic(t, topic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := client.NewProducer(client.WithNameServers(dev.NameServer))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 20
	for i := range n {
		m := &client.Message{Topic: topic, Body: []byte(fmt.Sprint("ours-", i)), Tags: "T", Keys: []string{fmt.Sprint("k", i)},
			ShardingKey: "order-1"}
		if i == 3 {
			m.Body = []byte(big)
		}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var got bodies
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{dev.NameServer}), consumer.WithGroupName(group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithInstance(instance()),
		consumer.WithConsumerOrder(true))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "T"},
		func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				got.add(string(m.Body), m.GetTags(), m.GetKeys())
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	clienttest.WaitFor(t, 40*time.Second, "the official consumer to get every message", func() bool { return len(distinct(got.snapshot())) == n })
	got.checkOrdered(t, "ours-", n) // one sharding key: one queue, consumed in order
}

// The official producer (plain, compressed, ordered) → our push consumer.
func TestOursConsumesOfficial(t *testing.T) {
	topic, group := names()
	createTopic(t, topic, 4)
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{dev.NameServer}), producer.WithRetry(2),
		producer.WithGroupName("pg_"+group), producer.WithInstanceName(instance()),
		producer.WithQueueSelector(producer.NewHashQueueSelector()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		body := fmt.Sprint("official-", i)
		if i == 3 {
			body = big
		}
		m := primitive.NewMessage(topic, []byte(body))
		m.WithTag("T")
		m.WithKeys([]string{fmt.Sprint("k", i)})
		m.WithShardingKey("order-1")
		if res, err := p.SendSync(ctx, m); err != nil || res.Status != primitive.SendOK {
			t.Fatalf("official send: %v, %v", res, err)
		}
	}
	var got bodies
	c, err := client.NewPushConsumer(group, func(_ context.Context, m *message.Message) error {
		got.add(string(m.Body), m.Tags(), strings.Join(m.Keys(), " "))
		return nil
	}, client.WithNameServers(dev.NameServer), client.WithConsumeFrom(client.ConsumeFromFirst), client.WithOrderly())
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(topic, "T")
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	clienttest.WaitFor(t, 30*time.Second, "our consumer to get every message", func() bool { return len(distinct(got.snapshot())) == n })
	got.checkOrdered(t, "official-", n)
}

// Transactions both ways: commits are delivered, rollbacks never, unknown ones after check-back.
func TestTransactionsBothWays(t *testing.T) {
	topic, group := names()
	createTopic(t, topic, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	decide := func(body string) primitive.LocalTransactionState {
		switch {
		case strings.HasPrefix(body, "commit"):
			return primitive.CommitMessageState
		case strings.HasPrefix(body, "rollback"):
			return primitive.RollbackMessageState
		}
		return primitive.UnknowState
	}
	// Official transactional producer.
	op, err := rocketmq.NewTransactionProducer(&txListener{decide: decide}, producer.WithNameServer([]string{dev.NameServer}),
		producer.WithGroupName("otx_"+group), producer.WithInstanceName(instance()), producer.WithRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Start(); err != nil {
		t.Fatal(err)
	}
	defer op.Shutdown()
	for _, b := range []string{"commit-official", "rollback-official", "unknown-official"} {
		if _, err := op.SendMessageInTransaction(ctx, primitive.NewMessage(topic, []byte(b))); err != nil {
			t.Fatal(err)
		}
	}
	// Ours.
	toState := map[primitive.LocalTransactionState]client.TransactionState{primitive.CommitMessageState: client.TransactionCommit,
		primitive.RollbackMessageState: client.TransactionRollback, primitive.UnknowState: client.TransactionUnknown}
	p, err := client.NewProducer(client.WithNameServers(dev.NameServer), client.WithProducerGroup("ctx_"+group),
		client.WithTransactionChecker(func(_ context.Context, m *message.Message) client.TransactionState {
			return client.TransactionCommit // unknown ones commit on check-back
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, b := range []string{"commit-ours", "rollback-ours", "unknown-ours"} {
		if _, _, err := p.SendTransaction(ctx, &client.Message{Topic: topic, Body: []byte(b)},
			func(context.Context, *client.SendResult) client.TransactionState { return toState[decide(b)] }); err != nil {
			t.Fatal(err)
		}
	}
	// Each side consumes: our consumer and the official one see the same committed set.
	var ours bodies
	c, err := client.NewPushConsumer("c_"+group, func(_ context.Context, m *message.Message) error {
		ours.add(string(m.Body), "", "")
		return nil
	}, client.WithNameServers(dev.NameServer), client.WithConsumeFrom(client.ConsumeFromFirst))
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(topic, "*")
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var theirs bodies
	oc, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{dev.NameServer}), consumer.WithGroupName("o_"+group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithInstance(instance()))
	if err != nil {
		t.Fatal(err)
	}
	oc.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			theirs.add(string(m.Body), "", "")
		}
		return consumer.ConsumeSuccess, nil
	})
	if err := oc.Start(); err != nil {
		t.Fatal(err)
	}
	defer oc.Shutdown()
	want := []string{"commit-official", "commit-ours", "unknown-ours", "unknown-official"}
	for name, got := range map[string]*bodies{"ours": &ours, "official": &theirs} {
		clienttest.WaitFor(t, 30*time.Second, name+" consumer to get the committed messages", func() bool {
			d := distinct(got.snapshot())
			for _, w := range want {
				if d[w] == 0 {
					return false
				}
			}
			return true
		})
		if d := distinct(got.snapshot()); d["rollback-official"]+d["rollback-ours"] != 0 {
			t.Fatalf("%s consumer got a rolled-back message: %v", name, d)
		}
	}
}

// txListener is the official client's transaction listener: it decides by body at send time and
// commits what it left unknown when the broker checks back.
type txListener struct {
	decide func(string) primitive.LocalTransactionState
}

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	return l.decide(string(m.Body))
}

func (l *txListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	if bytes.HasPrefix(m.Body, []byte("unknown")) {
		return primitive.CommitMessageState
	}
	return primitive.RollbackMessageState
}

// checkOrdered checks the first n bodies are prefix0, prefix1, ... (message 3 being big) and that
// tags and keys came through.
func (b *bodies) checkOrdered(t *testing.T, prefix string, n int) {
	t.Helper()
	list := b.snapshot()
	for i, got := range list[:n] {
		want := fmt.Sprint(prefix, i)
		if i == 3 {
			want = big
		}
		if got != want {
			t.Fatalf("message %d is %.20q, want %.20q (order or body lost)", i, got, want)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if meta := b.meta[prefix+"5"]; meta != "T|k5" {
		t.Fatalf("tags|keys of %s5: %q", prefix, meta)
	}
}
