package interop

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// brokerConf writes a broker.conf for `apogee dev -c` and returns its path.
func brokerConf(t testing.TB, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fastTransactions makes unresolved transactions be checked back within about a second.
var fastTransactions = []string{"transactionCheckInterval=300", "transactionTimeOut=500"}

// txListener decides by body prefix: commit-, rollback-, or unknown- (resolved by check-back as
// checkAnswer says).
type txListener struct {
	checkAnswer atomic.Int32 // a primitive.LocalTransactionState
	checks      atomic.Int32
}

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	switch {
	case strings.HasPrefix(string(m.Body), "commit-"):
		return primitive.CommitMessageState
	case strings.HasPrefix(string(m.Body), "rollback-"):
		return primitive.RollbackMessageState
	}
	return primitive.UnknowState
}

func (l *txListener) CheckLocalTransaction(*primitive.MessageExt) primitive.LocalTransactionState {
	l.checks.Add(1)
	return primitive.LocalTransactionState(l.checkAnswer.Load())
}

func newTxProducer(t testing.TB, ns string, l *txListener) rocketmq.TransactionProducer {
	t.Helper()
	p, err := rocketmq.NewTransactionProducer(l, producer.WithNameServer([]string{ns}), producer.WithGroupName("txpg"),
		producer.WithInstanceName(instanceName()), producer.WithRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown() })
	return p
}

// TestTransactions: a commit is delivered, a rollback never is, and an unknown state is resolved by
// check-back.
func TestTransactions(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", fastTransactions)
	l := &txListener{}
	l.checkAnswer.Store(int32(primitive.CommitMessageState))
	p := newTxProducer(t, dc.ns, l)
	sendN(t, newProducer(t, dc.ns), "Tx", 1, "plain") // creates the topic
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, body := range []string{"commit-1", "rollback-1", "unknown-1", "commit-2", "rollback-2"} {
		res, err := p.SendMessageInTransaction(ctx, primitive.NewMessage("Tx", []byte(body)))
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("%s: %v %v", body, res, err)
		}
	}
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "tx-cg", "Tx", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 4, 30*time.Second) // plain-0, commit-1, commit-2, unknown-1
	time.Sleep(2 * time.Second)            // a rollback would have arrived by now
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for body, n := range rec.counts {
		if strings.HasPrefix(body, "rollback") || n != 1 {
			t.Errorf("%s consumed %d times", body, n)
		}
	}
	if rec.counts["unknown-1"] != 1 || l.checks.Load() == 0 {
		t.Errorf("unknown transaction: consumed %d times after %d checks", rec.counts["unknown-1"], l.checks.Load())
	}
}

// TestTransactionSurvivesKill9: a half message pending when the broker is killed is checked and
// committed exactly once after the restart.
func TestTransactionSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dc := startDev(t, dir, fastTransactions)
	l := &txListener{}
	l.checkAnswer.Store(int32(primitive.UnknowState))
	p := newTxProducer(t, dc.ns, l)
	sendN(t, newProducer(t, dc.ns), "TxCrash", 1, "plain")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.SendMessageInTransaction(ctx, primitive.NewMessage("TxCrash", []byte("unknown-crash"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for l.checks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if l.checks.Load() == 0 {
		t.Fatal("no check-back before the crash")
	}
	dc.proc.kill9(t)
	p.Shutdown()

	dc2 := startDev(t, dir, fastTransactions)
	l2 := &txListener{}
	l2.checkAnswer.Store(int32(primitive.CommitMessageState))
	p2 := newTxProducer(t, dc2.ns, l2)
	// A producer heartbeats only to brokers it knows from routes, and only producers that heartbeat
	// can be asked: the restarted application sends again, as it would.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if _, err := p2.SendMessageInTransaction(ctx2, primitive.NewMessage("TxCrash", []byte("commit-after"))); err != nil {
		t.Fatal(err)
	}
	rec := newReceived()
	c := newPushConsumer(t, dc2.ns, "txcrash-cg", "TxCrash", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 3, 30*time.Second)
	time.Sleep(2 * time.Second) // further checks must not commit it again
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := rec.counts["unknown-crash"]; n != 1 {
		t.Fatalf("the recovered transaction was delivered %d times", n)
	}
}

// TestDelayLevelOnTime: a message sent with delay level 2 (configured as 2 s) arrives on time, not
// before.
func TestDelayLevelOnTime(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", []string{"messageDelayLevel=1s 2s 3s"})
	p := newProducer(t, dc.ns)
	sendN(t, p, "Delayed", 1, "now")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "delay-cg", "Delayed", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 1, 30*time.Second)
	m := primitive.NewMessage("Delayed", []byte("later"))
	m.WithDelayTimeLevel(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent := time.Now()
	if _, err := p.SendSync(ctx, m); err != nil {
		t.Fatal(err)
	}
	rec.waitDistinct(t, 2, 30*time.Second)
	got := time.Since(sent)
	if got < 2*time.Second || got > 4*time.Second {
		t.Fatalf("delay level 2 (2s) arrived after %v", got)
	}
	t.Logf("delay level 2 (2s) arrived after %v", got)
}

// TestRetryAndDeadLetter: a message the consumer fails comes back with ReconsumeTimes >= 1, the same
// id and body; after maxReconsumeTimes it is in %DLQ%<group> and can be read there.
func TestRetryAndDeadLetter(t *testing.T) {
	t.Parallel()
	// Short delay levels so retries come back in seconds (level 3 + reconsumeTimes is used).
	dc := startDev(t, "", []string{"messageDelayLevel=1s 1s 1s 1s 1s 1s"})
	p := newProducer(t, dc.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	res, err := p.SendSync(ctx, primitive.NewMessage("Failing", []byte("poison")))
	if err != nil {
		t.Fatal(err)
	}
	type attempt struct {
		id        string
		body      string
		reconsume int32
	}
	attempts := make(chan attempt, 16)
	c, err := newRawPushConsumer(t, dc.ns, "fail-cg", "Failing", func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			attempts <- attempt{m.MsgId, string(m.Body), m.ReconsumeTimes}
		}
		return consumer.ConsumeRetryLater, nil
	}, consumer.WithMaxReconsumeTimes(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	// The first retry can wait for a rebalance of the retry topic (up to 20 s in the client).
	for want := int32(0); want <= 2; want++ {
		select {
		case a := <-attempts:
			if a.id != res.MsgID || a.body != "poison" || a.reconsume != want {
				t.Fatalf("attempt %d: %+v, want id %s", want, a, res.MsgID)
			}
		case <-time.After(45 * time.Second):
			t.Fatalf("attempt %d did not arrive", want)
		}
	}
	// After the third failure (reconsumeTimes 2 = max) the message is dead-lettered; the DLQ topic and
	// its route appear with it.
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{dc.ns})))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := adm.FetchPublishMessageQueues(ctx, "%DLQ%fail-cg"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no route for the dead-letter topic")
		}
		time.Sleep(200 * time.Millisecond)
	}
	rec := newReceived()
	dlq := newPushConsumer(t, dc.ns, "dlq-reader", "%DLQ%fail-cg", consumer.MessageSelector{}, rec)
	defer dlq.Shutdown()
	rec.waitDistinct(t, 1, 45*time.Second)
	rec.mu.Lock()
	m := rec.msgs[0]
	rec.mu.Unlock()
	if string(m.Body) != "poison" || m.GetProperty("RETRY_TOPIC") != "Failing" {
		t.Fatalf("dead letter %s props %v", m.Body, m.GetProperties())
	}
}

// TestDelayedSurvivesKill9: delayed messages pending when the broker is killed arrive once after the
// restart (at once if overdue).
func TestDelayedSurvivesKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := []string{"messageDelayLevel=1s 3s"}
	dc := startDev(t, dir, conf)
	p := newProducer(t, dc.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		m := primitive.NewMessage("DelayCrash", []byte("d-"+strconv.Itoa(i)))
		m.WithDelayTimeLevel(2)
		if _, err := p.SendSync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dc.proc.kill9(t)
	dc2 := startDev(t, dir, conf)
	rec := newReceived()
	c := newPushConsumer(t, dc2.ns, "delaycrash-cg", "DelayCrash", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, n, 30*time.Second)
	time.Sleep(time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for body, k := range rec.counts {
		if k != 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
}

// TestTimerMessageOnTime: a message with RocketMQ 5's TIMER_DELIVER_MS property, sent by the official
// client, arrives within 100 ms of its due time (measured from its store time on the consumer side).
func TestTimerMessageOnTime(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	sendN(t, p, "Timed", 1, "now")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, "timer-cg", "Timed", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, 1, 30*time.Second)
	due := time.Now().Add(2345 * time.Millisecond)
	m := primitive.NewMessage("Timed", []byte("timed"))
	m.WithProperty("TIMER_DELIVER_MS", strconv.FormatInt(due.UnixMilli(), 10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.SendSync(ctx, m); err != nil {
		t.Fatal(err)
	}
	rec.waitDistinct(t, 2, 30*time.Second)
	rec.mu.Lock()
	got := rec.msgs[len(rec.msgs)-1]
	rec.mu.Unlock()
	// The delivered copy's store time is when the broker delivered it.
	late := time.UnixMilli(got.StoreTimestamp).Sub(due)
	if string(got.Body) != "timed" || late < 0 || late > 100*time.Millisecond {
		t.Fatalf("timer message %q delivered %v after due", got.Body, late)
	}
	t.Logf("timer message delivered %v after due", late)
}

// TestTimerMessagesSurviveKill9: timer messages pending when the broker is killed arrive once after
// the restart.
func TestTimerMessagesSurviveKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dc := startDev(t, dir, nil)
	p := newProducer(t, dc.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 20
	for i := range n {
		m := primitive.NewMessage("TimerCrash", []byte("t-"+strconv.Itoa(i)))
		m.WithProperty("TIMER_DELAY_MS", strconv.Itoa(1500+i*50))
		if _, err := p.SendSync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dc.proc.kill9(t)
	dc2 := startDev(t, dir, nil)
	rec := newReceived()
	c := newPushConsumer(t, dc2.ns, "timercrash-cg", "TimerCrash", consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, n, 30*time.Second)
	time.Sleep(time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for body, k := range rec.counts {
		if k != 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
}
