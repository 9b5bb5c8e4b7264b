package namesrv

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

func startNamesrv(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

func call(t *testing.T, cl *transport.Client, addr string, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, addr, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func registerRequest(name, addr string, id int64, w *body.TopicConfigWrapper) *remoting.Command {
	data := body.EncodeRegisterBroker(&body.RegisterBrokerBody{TopicConfigSerializeWrapper: *w})
	return remoting.NewRequest(code.RegisterBroker, remoting.Fields{
		"brokerName", name,
		"brokerAddr", addr,
		"clusterName", "DefaultCluster",
		"haServerAddr", addr + "-ha",
		"brokerId", itoa(id),
		"compressed", "false",
		"bodyCrc32", itoa(int64(body.BodyCRC32(data))),
	}, data)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func routeRequest(topic string, version int16) *remoting.Command {
	req := remoting.NewRequest(code.GetRouteinfoByTopic, remoting.Fields{"topic", topic}, nil)
	req.Version = version
	return req
}

func TestRegisterThenRouteOverTCP(t *testing.T) {
	_, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()

	resp := call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "TopicTest")))
	if resp.ResponseCode() != code.Success {
		t.Fatalf("register: %v %s", resp.ResponseCode(), resp.Remark)
	}
	resp = call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10921", 1, topics(1, "TopicTest")))
	if resp.Ext("masterAddr") != "127.0.0.1:10911" || resp.Ext("haServerAddr") != "127.0.0.1:10911-ha" {
		t.Fatalf("slave register answer %v", resp.ExtFields)
	}

	// The Go client v2.1.2 announces version 317 and gets fastjson's bare keys; 4.9.4+ gets standard JSON.
	old := call(t, cl, addr, routeRequest("TopicTest", 317))
	if old.ResponseCode() != code.Success || !strings.Contains(string(old.Body), `{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}`) {
		t.Fatalf("old-client route: %v %s", old.ResponseCode(), old.Body)
	}
	modern := call(t, cl, addr, routeRequest("TopicTest", 409))
	var route body.TopicRouteData
	if err := json.Unmarshal(modern.Body, &route); err != nil {
		t.Fatalf("modern route is not standard JSON: %v: %s", err, modern.Body)
	}
	if route.BrokerDatas[0].BrokerAddrs[1] != "127.0.0.1:10921" || route.QueueDatas[0].WriteQueueNums != 4 {
		t.Fatalf("route %+v", route)
	}

	missing := call(t, cl, addr, routeRequest("NoSuchTopic", 317))
	if missing.ResponseCode() != code.TopicNotExist || !strings.Contains(missing.Remark, "NoSuchTopic") {
		t.Fatalf("unknown topic: %v %q", missing.ResponseCode(), missing.Remark)
	}

	ci := call(t, cl, addr, remoting.NewRequest(code.GetBrokerClusterInfo, nil, nil))
	info, err := body.DecodeClusterInfo(ci.Body)
	if err != nil || info.ClusterAddrTable["DefaultCluster"][0] != "broker-a" {
		t.Fatalf("cluster info %s: %v", ci.Body, err)
	}

	all := call(t, cl, addr, remoting.NewRequest(code.GetAllTopicListFromNameserver, nil, nil))
	if string(all.Body) != `{"topicList":["TopicTest"]}` {
		t.Fatalf("topic list %s", all.Body)
	}

	del := call(t, cl, addr, remoting.NewRequest(code.DeleteTopicInNamesrv, remoting.Fields{"topic", "TopicTest"}, nil))
	if del.ResponseCode() != code.Success || call(t, cl, addr, routeRequest("TopicTest", 317)).ResponseCode() != code.TopicNotExist {
		t.Fatal("topic not deleted")
	}

	unreg := remoting.NewRequest(code.UnregisterBroker, remoting.Fields{"brokerName", "broker-a", "brokerAddr", "127.0.0.1:10921", "clusterName", "DefaultCluster", "brokerId", "1"}, nil)
	if call(t, cl, addr, unreg).ResponseCode() != code.Success {
		t.Fatal("unregister")
	}
}

func TestBadRegistrationsLeaveNoTrace(t *testing.T) {
	srv, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	good := registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "T"))

	badCRC := *good
	badCRC.ExtFields = slices.Clone(good.ExtFields)
	badCRC.ExtFields.Set("bodyCrc32", "12345")

	badBody := *good
	badBody.ExtFields = slices.Clone(good.ExtFields)
	badBody.ExtFields.Delete("bodyCrc32")
	badBody.Body = []byte(`{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"perm":"six"}}}}`)

	noName := remoting.NewRequest(code.RegisterBroker, remoting.Fields{"brokerAddr", "x:1", "clusterName", "c", "haServerAddr", "", "brokerId", "0"}, nil)
	badID := remoting.NewRequest(code.RegisterBroker, remoting.Fields{"brokerName", "b", "brokerAddr", "x:1", "clusterName", "c", "haServerAddr", "", "brokerId", "zero"}, nil)
	badTopic := registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "bad topic"))

	for name, req := range map[string]*remoting.Command{"crc": &badCRC, "body": &badBody, "no name": noName, "bad id": badID, "bad topic": badTopic} {
		resp := call(t, cl, addr, req)
		if resp.ResponseCode() != code.SystemError || resp.Remark == "" {
			t.Errorf("%s: got %v %q", name, resp.ResponseCode(), resp.Remark)
		}
		t.Logf("%s: %s", name, resp.Remark)
	}
	if n := srv.Routes().BrokerCount(); n != 0 || len(srv.Routes().Topics()) != 0 {
		t.Fatalf("bad registrations changed the table: %d brokers", n)
	}
	if call(t, cl, addr, good).ResponseCode() != code.Success {
		t.Fatal("good registration after bad ones")
	}
}

func TestUnknownCodeAnswered(t *testing.T) {
	_, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	resp := call(t, cl, addr, remoting.NewRequest(code.SendMessage, nil, nil))
	if resp.ResponseCode() != code.RequestCodeNotSupported || !strings.Contains(resp.Remark, "SEND_MESSAGE") {
		t.Fatalf("got %v %q", resp.ResponseCode(), resp.Remark)
	}
}

func TestBrokerDroppedWhenItsConnectionCloses(t *testing.T) {
	srv, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "T")))
	if srv.Routes().TopicRoute("T") == nil {
		t.Fatal("no route")
	}
	cl.Close()
	waitFor(t, func() bool { return srv.Routes().TopicRoute("T") == nil })
}

func TestBrokerExpiresAfterSilence(t *testing.T) {
	srv, addr := startNamesrv(t, Options{ScanInterval: 20 * time.Millisecond, BrokerTimeout: 200 * time.Millisecond})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	start := time.Now()
	call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "T")))
	waitFor(t, func() bool { return srv.Routes().TopicRoute("T") == nil })
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("dropped after %v, before the timeout", d)
	}
}

func TestKVConfigCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvConfig.json")
	_, addr := startNamesrv(t, Options{KVConfigPath: path, OrderMessageEnable: true})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	kv := func(c code.Request, ext remoting.Fields) *remoting.Command {
		return call(t, cl, addr, remoting.NewRequest(c, ext, nil))
	}
	if r := kv(code.GetKVConfig, remoting.Fields{"namespace", "ns", "key", "k"}); r.ResponseCode() != code.QueryNotFound {
		t.Fatalf("missing key: %v", r.ResponseCode())
	}
	kv(code.PutKVConfig, remoting.Fields{"namespace", OrderTopicConfigNamespace, "key", "T", "value", "broker-a:4"})
	if r := kv(code.GetKVConfig, remoting.Fields{"namespace", OrderTopicConfigNamespace, "key", "T"}); r.Ext("value") != "broker-a:4" {
		t.Fatalf("value %q", r.Ext("value"))
	}
	if r := kv(code.GetKVListByNamespace, remoting.Fields{"namespace", OrderTopicConfigNamespace}); string(r.Body) != `{"table":{"T":"broker-a:4"}}` {
		t.Fatalf("list %s", r.Body)
	}
	// The order config reaches brokers in the register answer and clients in the route.
	reg := call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "T")))
	if string(reg.Body) != `{"table":{"T":"broker-a:4"}}` {
		t.Fatalf("register body %s", reg.Body)
	}
	route, _ := body.DecodeTopicRoute(call(t, cl, addr, routeRequest("T", 409)).Body)
	if route.OrderTopicConf != "broker-a:4" {
		t.Fatalf("orderTopicConf %q", route.OrderTopicConf)
	}
	// Persisted: a new store on the same file sees it.
	store, err := OpenKVStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := store.Get(OrderTopicConfigNamespace, "T"); v != "broker-a:4" {
		t.Fatalf("persisted value %q", v)
	}
	kv(code.DeleteKVConfig, remoting.Fields{"namespace", OrderTopicConfigNamespace, "key", "T"})
	if r := kv(code.GetKVListByNamespace, remoting.Fields{"namespace", OrderTopicConfigNamespace}); r.ResponseCode() != code.QueryNotFound {
		t.Fatalf("after delete: %v", r.ResponseCode())
	}
	if r := kv(code.PutKVConfig, remoting.Fields{"namespace", "ns"}); r.ResponseCode() != code.SystemError || !strings.Contains(r.Remark, `"key"`) {
		t.Fatalf("missing field: %v %q", r.ResponseCode(), r.Remark)
	}
}

func TestNamesrvConfig(t *testing.T) {
	_, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	upd := func(text string) *remoting.Command {
		return call(t, cl, addr, remoting.NewRequest(code.UpdateNamesrvConfig, nil, []byte(text)))
	}
	if r := upd("kvConfigPath=/etc/passwd\n"); r.ResponseCode() != code.NoPermission {
		t.Fatalf("path update: %v %q", r.ResponseCode(), r.Remark)
	}
	if r := upd("orderMessageEnable=true\n"); r.ResponseCode() != code.Success {
		t.Fatalf("update: %v %q", r.ResponseCode(), r.Remark)
	}
	got := call(t, cl, addr, remoting.NewRequest(code.GetNamesrvConfig, nil, nil))
	if !strings.Contains(string(got.Body), "orderMessageEnable=true\n") {
		t.Fatalf("config %s", got.Body)
	}
}

func TestWritePermCalls(t *testing.T) {
	_, addr := startNamesrv(t, Options{})
	cl := transport.NewClient(transport.ClientOptions{})
	defer cl.Close()
	call(t, cl, addr, registerRequest("broker-a", "127.0.0.1:10911", 0, topics(1, "T", "U")))
	r := call(t, cl, addr, remoting.NewRequest(code.WipeWritePermOfBroker, remoting.Fields{"brokerName", "broker-a"}, nil))
	if r.Ext("wipeTopicCount") != "2" {
		t.Fatalf("wipe %v", r.ExtFields)
	}
	r = call(t, cl, addr, remoting.NewRequest(code.AddWritePermOfBroker, remoting.Fields{"brokerName", "broker-a"}, nil))
	if r.Ext("addTopicCount") != "2" {
		t.Fatalf("add %v", r.ExtFields)
	}
	r = call(t, cl, addr, remoting.NewRequest(code.GetTopicsByCluster, remoting.Fields{"cluster", "DefaultCluster"}, nil))
	if string(r.Body) != `{"topicList":["T","U"]}` {
		t.Fatalf("by cluster %s", r.Body)
	}
	r = call(t, cl, addr, remoting.NewRequest(code.GetSystemTopicListFromNS, nil, nil))
	if string(r.Body) != `{"topicList":["DefaultCluster","broker-a"],"brokerAddr":"127.0.0.1:10911"}` {
		t.Fatalf("system topics %s", r.Body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
