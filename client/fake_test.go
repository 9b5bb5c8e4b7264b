package client

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// fakeCluster is an in-process NameServer and brokers that answer just enough of the protocol for
// the client's unit tests. Handlers are registered per test with handle.
type fakeCluster struct {
	t       *testing.T
	nsAddr  string
	brokers []*fakeBroker

	mu     sync.Mutex
	topics map[string]int32 // topic → queues per broker
}

type fakeBroker struct {
	name string
	addr string
	mux  *transport.Mux
	stop func() // shuts the broker down

	mu       sync.Mutex
	sends    []*remoting.Command // copies of the send requests received
	failWith code.Response       // answer sends with this code when not Success
	failN    int                 // fail only this many sends (0: all while failWith is set)
	offset   int64
}

func serve(t *testing.T, mux *transport.Mux) string {
	addr, _ := serveStoppable(t, mux)
	return addr
}

// serveStoppable serves mux on a free port until the test ends or stop is called.
func serveStoppable(t *testing.T, mux *transport.Mux) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(transport.Options{Handler: mux})
	go srv.Serve(ln)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func newFakeCluster(t *testing.T, brokers ...string) *fakeCluster {
	f := &fakeCluster{t: t, topics: map[string]int32{body.AutoCreateTopicTemplate: 8}}
	for _, name := range brokers {
		b := &fakeBroker{name: name, mux: transport.NewMux()}
		b.mux.HandleFunc(code.SendMessageV2, b.handleSend)
		b.mux.HandleFunc(code.SendBatchMessage, b.handleSend)
		b.mux.HandleFunc(code.HeartBeat, func(context.Context, *transport.Conn, *remoting.Command) *remoting.Command {
			return remoting.NewResponse(code.Success, "")
		})
		f.brokers = append(f.brokers, b)
	}
	ns := transport.NewMux()
	ns.HandleFunc(code.GetRouteinfoByTopic, f.handleRoute)
	f.nsAddr = serve(t, ns)
	return f
}

// start serves the brokers; call after registering extra handlers.
func (f *fakeCluster) start() *fakeCluster {
	for _, b := range f.brokers {
		addr, stop := serveStoppable(f.t, b.mux)
		f.mu.Lock()
		b.addr, b.stop = addr, stop
		f.mu.Unlock()
	}
	return f
}

func (f *fakeCluster) addTopic(topic string, queues int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics[topic] = queues
}

func (f *fakeCluster) handleRoute(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext("topic")
	f.mu.Lock()
	defer f.mu.Unlock()
	queues, ok := f.topics[topic]
	if !ok {
		return remoting.Errorf(code.TopicNotExist, "No topic route info in name server for the topic: %s", topic)
	}
	r := &body.TopicRouteData{}
	perm := int32(body.PermRead | body.PermWrite)
	if topic == body.AutoCreateTopicTemplate {
		perm |= body.PermInherit
	}
	for _, b := range f.brokers {
		r.QueueDatas = append(r.QueueDatas, &body.QueueData{BrokerName: b.name, ReadQueueNums: queues, WriteQueueNums: queues, Perm: perm})
		r.BrokerDatas = append(r.BrokerDatas, &body.BrokerData{Cluster: "c", BrokerName: b.name, BrokerAddrs: map[int64]string{0: b.addr}})
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.EncodeTopicRoute(r, body.BareKeys)
	return resp
}

func (b *fakeBroker) handleSend(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	cp := *req
	cp.Body = append([]byte(nil), req.Body...)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sends = append(b.sends, &cp)
	if b.failWith != code.Success {
		if b.failN == 0 || len(b.sends) <= b.failN {
			return remoting.Errorf(b.failWith, "fake failure")
		}
	}
	b.offset++
	resp := remoting.NewResponse(code.Success, "")
	resp.SetExt("msgId", message.OffsetMsgID(netip.MustParseAddrPort("127.0.0.1:10911"), b.offset*100))
	resp.SetExt("queueId", req.Ext("e"))
	resp.SetExt("queueOffset", strconv.FormatInt(b.offset-1, 10))
	resp.SetExt(message.PropertyMsgRegion, "DefaultRegion")
	return resp
}

func (b *fakeBroker) fail(c code.Response, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failWith, b.failN = c, n
}

func (b *fakeBroker) received() []*remoting.Command {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*remoting.Command(nil), b.sends...)
}
