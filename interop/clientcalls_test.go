package interop

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// TestBrokerToClientCalls: admin calls the broker answers by calling the official client over its own
// connection: GET_CONSUMER_RUNNING_INFO, consumer status, and reset offset by time, after which the
// consumer consumes the topic again.
func TestBrokerToClientCalls(t *testing.T) {
	t.Parallel()
	dc := startDev(t, "", nil)
	p := newProducer(t, dc.ns)
	const topic, group, n = "Rewound", "rewind-cg", 20
	sendN(t, p, topic, n, "r")
	rec := newReceived()
	c := newPushConsumer(t, dc.ns, group, topic, consumer.MessageSelector{}, rec)
	defer c.Shutdown()
	rec.waitDistinct(t, n, 60*time.Second)

	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	call := func(c code.Request, ext remoting.Fields) *remoting.Command {
		resp, err := cl.Invoke(ctx, dc.broker, remoting.NewRequest(c, ext, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var list struct {
		ConsumerIDList []string `json:"consumerIdList"`
	}
	json.Unmarshal(call(code.GetConsumerListByGroup, remoting.Fields{"consumerGroup", group}).Body, &list)
	if len(list.ConsumerIDList) != 1 {
		t.Fatalf("consumer list %v", list)
	}
	clientID := list.ConsumerIDList[0]

	info := call(code.GetConsumerRunningInfo, remoting.Fields{"consumerGroup", group, "clientId", clientID})
	if info.ResponseCode() != code.Success || !strings.Contains(string(info.Body), "PROP_CLIENT_VERSION") {
		t.Fatalf("running info: %v %q %.200s", info.ResponseCode(), info.Remark, info.Body)
	}
	status := call(code.InvokeBrokerToGetConsumerStatus, remoting.Fields{"topic", topic, "group", group})
	if status.ResponseCode() != code.Success || !strings.Contains(string(status.Body), clientID) {
		t.Fatalf("consumer status: %v %q %.200s", status.ResponseCode(), status.Remark, status.Body)
	}

	reset := call(code.InvokeBrokerToResetOffset, remoting.Fields{"topic", topic, "group", group, "timestamp", "0", "isForce", "true"})
	if reset.ResponseCode() != code.Success {
		t.Fatalf("reset: %v %s", reset.ResponseCode(), reset.Remark)
	}
	// The client pauses 10 s before it applies a reset, then consumes everything again.
	deadline := time.Now().Add(45 * time.Second)
	for {
		again := 0
		rec.mu.Lock()
		for _, k := range rec.counts {
			if k >= 2 {
				again++
			}
		}
		rec.mu.Unlock()
		if again == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages consumed again after the reset", again, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
