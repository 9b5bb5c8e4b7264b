package interop

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// fakeBroker answers the broker calls a producer and the admin API make, and records them.
type fakeBroker struct {
	addr string
	mu   sync.Mutex
	got  []*remoting.Command
}

func startFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	fb := &fakeBroker{}
	handler := transport.HandlerFunc(func(ctx context.Context, c *transport.Conn, req *remoting.Command) *remoting.Command {
		fb.mu.Lock()
		fb.got = append(fb.got, req)
		fb.mu.Unlock()
		resp := remoting.NewResponse(code.Success, "")
		if req.RequestCode() == code.SendMessage {
			resp.ExtFields = remoting.Fields{"msgId", "7F00000100002A9F0000000000000000", "queueId", req.Ext("queueId"), "queueOffset", "0"}
		}
		return resp
	})
	srv := transport.NewServer(transport.Options{Handler: handler})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return fb
}

func (fb *fakeBroker) requests(c code.Request) []*remoting.Command {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	var out []*remoting.Command
	for _, r := range fb.got {
		if r.RequestCode() == c {
			out = append(out, r)
		}
	}
	return out
}

// registerBroker registers addr with the NameServer as broker-a's master with the given topics, over
// a connection that stays open for the test (closing it would drop the broker).
func registerBroker(t *testing.T, namesrvAddr, brokerName, brokerAddr string, topics ...string) {
	t.Helper()
	w := body.TopicConfigWrapper{DataVersion: body.DataVersion{Timestamp: time.Now().UnixMilli(), Counter: 1},
		TopicConfigTable: map[string]*body.TopicConfig{}}
	for _, topic := range topics {
		w.TopicConfigTable[topic] = &body.TopicConfig{TopicName: topic, ReadQueueNums: 4, WriteQueueNums: 4, Perm: body.PermRead | body.PermWrite, TopicFilterType: "SINGLE_TAG"}
	}
	data := body.EncodeRegisterBroker(&body.RegisterBrokerBody{TopicConfigSerializeWrapper: w})
	req := remoting.NewRequest(code.RegisterBroker, remoting.Fields{
		"brokerName", brokerName,
		"brokerAddr", brokerAddr,
		"clusterName", "DefaultCluster",
		"haServerAddr", brokerAddr,
		"brokerId", "0",
		"bodyCrc32", strconv.Itoa(int(body.BodyCRC32(data))),
	}, data)
	cl := transport.NewClient(transport.ClientOptions{})
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, namesrvAddr, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode() != code.Success {
		t.Fatalf("register: %v %s", resp.ResponseCode(), resp.Remark)
	}
}

// TestOfficialClientUsesApogeeNamesrv: the official Go client v2.1.2 looks up routes from `apogee
// namesrv` after a broker registration made by the test, sends through the route it got, and uses the
// admin calls that reach a NameServer.
func TestOfficialClientUsesApogeeNamesrv(t *testing.T) {
	_, addrs := startApogee(t, []string{"namesrv"}, "namesrv", listenArg("listen"))
	ns := addrs["namesrv"]
	fb := startFakeBroker(t)
	registerBroker(t, ns, "broker-a", fb.addr, "InteropTopic")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{ns})))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()

	mqs, err := adm.FetchPublishMessageQueues(ctx, "InteropTopic")
	if err != nil {
		t.Fatalf("route lookup: %v", err)
	}
	var ids []int
	for _, mq := range mqs {
		if mq.Topic != "InteropTopic" || mq.BrokerName != "broker-a" {
			t.Fatalf("queue %+v", mq)
		}
		ids = append(ids, mq.QueueId)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int{0, 1, 2, 3}) {
		t.Fatalf("queue ids %v", ids)
	}

	list, err := adm.FetchAllTopicList(ctx)
	if err != nil || !slices.Contains(list.TopicList, "InteropTopic") {
		t.Fatalf("topic list %+v: %v", list, err)
	}

	// A producer finds the broker through the route and sends to it.
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{ns}), producer.WithGroupName("interop-pg"), producer.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	res, err := p.SendSync(ctx, primitive.NewMessage("InteropTopic", []byte("hello")))
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("send: %+v %v", res, err)
	}
	sends := fb.requests(code.SendMessage)
	if len(sends) != 1 || sends[0].Ext("topic") != "InteropTopic" || string(sends[0].Body) != "hello" {
		t.Fatalf("broker saw %d sends", len(sends))
	}

	// DeleteTopic goes to the broker of the route, then to every NameServer.
	if err := adm.DeleteTopic(ctx, admin.WithTopicDelete("InteropTopic")); err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	if len(fb.requests(code.DeleteTopicInBroker)) != 1 {
		t.Fatal("broker did not see DELETE_TOPIC_IN_BROKER")
	}
	// The client caches routes, so ask with a fresh admin client.
	fresh, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{ns})))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.FetchPublishMessageQueues(ctx, "InteropTopic"); err == nil {
		t.Fatal("route still served after DeleteTopic")
	}
	if _, err := fresh.FetchPublishMessageQueues(ctx, "NeverRegistered"); err == nil {
		t.Fatal("route for an unknown topic")
	}
}
