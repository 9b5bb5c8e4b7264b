package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
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
