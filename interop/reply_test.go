package interop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestRequestReply: the official client's Request() gets the reply a consumer sends back, pushed by
// the broker over the requester's own connection (SEND_REPLY_MESSAGE → PUSH_REPLY_MESSAGE_TO_CLIENT).
func TestRequestReply(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	requester := newProducer(t, dc.ns)
	replier := newProducer(t, dc.ns)
	sendN(t, requester, "Requests", 1, "warmup") // creates the topic
	// The listener may still run after the test returns (the client does not wait for it at
	// Shutdown), so it reports through replyErr instead of t.
	var replyErr atomic.Value
	c, err := newRawPushConsumer(t, dc.ns, "reply-cg", "Requests", func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			if m.GetProperty(primitive.PropertyCorrelationID) == "" {
				continue // the warm-up message is not a request
			}
			reply, err := consumer.CreateReplyMessage(m, []byte("pong"))
			if err == nil {
				_, err = replier.SendSync(ctx, reply)
			}
			if err != nil {
				replyErr.Store(err)
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	// The broker pushes the reply over the requester's connection, which it learns from the requester's
	// heartbeat: the client sends its first one a second after it starts.
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := primitive.NewMessage("Requests", []byte("ping"))
	reply, err := requester.Request(ctx, 20*time.Second, req)
	if err != nil {
		t.Fatalf("request: %v (replier: %v)", err, replyErr.Load())
	}
	if reply.GetProperty(primitive.PropertyCorrelationID) != req.GetProperty(primitive.PropertyCorrelationID) {
		t.Fatalf("reply correlation %q, request %q", reply.GetProperty(primitive.PropertyCorrelationID), req.GetProperty(primitive.PropertyCorrelationID))
	}
}
