package namesrv

import (
	"reflect"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting/body"
)

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

func topics(version int64, names ...string) *body.TopicConfigWrapper {
	w := &body.TopicConfigWrapper{DataVersion: body.DataVersion{Timestamp: 1, Counter: version}, TopicConfigTable: map[string]*body.TopicConfig{}}
	for _, n := range names {
		w.TopicConfigTable[n] = &body.TopicConfig{TopicName: n, ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}
	}
	return w
}

func reg(name, addr string, id int64, w *body.TopicConfigWrapper) Registration {
	return Registration{ClusterName: "DefaultCluster", BrokerName: name, BrokerAddr: addr, BrokerID: id,
		HAServerAddr: addr + "-ha", Topics: w, Conn: addr}
}

func TestRegisterAndRoute(t *testing.T) {
	rt := NewRouteTable()
	if rt.TopicRoute("T") != nil {
		t.Fatal("route of an empty table")
	}
	rt.Register(reg("broker-a", "10.0.0.1:10911", 0, topics(1, "T", "U")), t0)
	route := rt.TopicRoute("T")
	want := &body.TopicRouteData{
		QueueDatas:        []*body.QueueData{{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas:       []*body.BrokerData{{Cluster: "DefaultCluster", BrokerName: "broker-a", BrokerAddrs: map[int64]string{0: "10.0.0.1:10911"}}},
		FilterServerTable: map[string][]string{},
	}
	if !reflect.DeepEqual(route, want) {
		t.Fatalf("route %+v", route)
	}
	if got := rt.Topics(); !reflect.DeepEqual(got, []string{"T", "U"}) {
		t.Fatalf("topics %v", got)
	}
	// The returned route is a copy.
	route.BrokerDatas[0].BrokerAddrs[0] = "changed"
	if rt.TopicRoute("T").BrokerDatas[0].BrokerAddrs[0] != "10.0.0.1:10911" {
		t.Fatal("route aliases the table")
	}
}

func TestReRegisterUpdatesOnlyOnNewDataVersion(t *testing.T) {
	rt := NewRouteTable()
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0)
	// Same data version with different content: ignored, as RocketMQ does.
	w := topics(1, "T")
	w.TopicConfigTable["T"].WriteQueueNums = 8
	rt.Register(reg("broker-a", "a:1", 0, w), t0.Add(30*time.Second))
	if n := rt.TopicRoute("T").QueueDatas[0].WriteQueueNums; n != 4 {
		t.Fatalf("write queues %d after an unchanged data version", n)
	}
	// New data version: applied. A topic missing from the table is kept (incremental registration).
	w = topics(2, "V")
	rt.Register(reg("broker-a", "a:1", 0, w), t0.Add(60*time.Second))
	if rt.TopicRoute("V") == nil || rt.TopicRoute("T") == nil {
		t.Fatal("incremental registration lost a topic")
	}
	w = topics(3, "T")
	w.TopicConfigTable["T"].WriteQueueNums = 8
	rt.Register(reg("broker-a", "a:1", 0, w), t0.Add(90*time.Second))
	if n := rt.TopicRoute("T").QueueDatas[0].WriteQueueNums; n != 8 {
		t.Fatalf("write queues %d after a new data version", n)
	}
}

func TestSecondReplicaAndUnregister(t *testing.T) {
	rt := NewRouteTable()
	if res := rt.Register(reg("broker-a", "b:1", 1, topics(1, "T")), t0); res.MasterAddr != "" {
		t.Fatalf("slave before its master got %+v", res)
	}
	// A slave's topics do not create routes.
	if rt.TopicRoute("T") != nil {
		t.Fatal("slave registration created a route")
	}
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0)
	res := rt.Register(reg("broker-a", "b:1", 1, topics(1, "T")), t0)
	if res.MasterAddr != "a:1" || res.HAServerAddr != "a:1-ha" {
		t.Fatalf("slave result %+v", res)
	}
	if got := rt.TopicRoute("T").BrokerDatas[0].BrokerAddrs; !reflect.DeepEqual(got, map[int64]string{0: "a:1", 1: "b:1"}) {
		t.Fatalf("addrs %v", got)
	}
	// Losing the master keeps the route, so consumers can read from the slave.
	rt.Unregister("DefaultCluster", "a:1", "broker-a", 0)
	route := rt.TopicRoute("T")
	if route == nil || !reflect.DeepEqual(route.BrokerDatas[0].BrokerAddrs, map[int64]string{1: "b:1"}) {
		t.Fatalf("route after master left: %+v", route)
	}
	// Losing the last replica drops the group, its cluster membership and its routes.
	rt.Unregister("DefaultCluster", "b:1", "broker-a", 1)
	if rt.TopicRoute("T") != nil || len(rt.Topics()) != 0 {
		t.Fatal("routes survive the last replica")
	}
	if ci := rt.ClusterInfo(); len(ci.BrokerAddrTable) != 0 || len(ci.ClusterAddrTable) != 0 {
		t.Fatalf("cluster info %+v", ci)
	}
}

func TestSlavePromotedMovesAddress(t *testing.T) {
	rt := NewRouteTable()
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0)
	rt.Register(reg("broker-a", "b:1", 1, topics(1, "T")), t0)
	rt.Unregister("DefaultCluster", "a:1", "broker-a", 0)
	rt.Register(reg("broker-a", "b:1", 0, topics(2, "T")), t0)
	if got := rt.TopicRoute("T").BrokerDatas[0].BrokerAddrs; !reflect.DeepEqual(got, map[int64]string{0: "b:1"}) {
		t.Fatalf("addrs after promotion %v", got)
	}
}

func TestExpiryUnderFakeClock(t *testing.T) {
	rt := NewRouteTable()
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0)
	rt.Register(reg("broker-b", "b:1", 0, topics(1, "T")), t0)
	// broker-a keeps re-registering every 30 s; broker-b goes silent.
	for i := 1; i <= 4; i++ {
		rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0.Add(time.Duration(i)*30*time.Second))
	}
	if dropped := rt.Expire(t0.Add(120*time.Second), 120*time.Second); len(dropped) != 0 {
		t.Fatalf("dropped %v at exactly the timeout", dropped)
	}
	if dropped := rt.Expire(t0.Add(121*time.Second), 120*time.Second); !reflect.DeepEqual(dropped, []string{"b:1"}) {
		t.Fatalf("dropped %v", dropped)
	}
	route := rt.TopicRoute("T")
	if len(route.QueueDatas) != 1 || route.QueueDatas[0].BrokerName != "broker-a" {
		t.Fatalf("route after expiry %+v", route)
	}
	// A broker's own timeout wins over the default.
	short := reg("broker-c", "c:1", 0, topics(1, "T"))
	short.Timeout = 10 * time.Second
	rt.Register(short, t0.Add(200*time.Second))
	if dropped := rt.Expire(t0.Add(211*time.Second), 120*time.Second); !reflect.DeepEqual(dropped, []string{"c:1"}) {
		t.Fatalf("dropped %v", dropped)
	}
}

func TestConnectionCloseDropsItsBrokers(t *testing.T) {
	rt := NewRouteTable()
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T")), t0)
	rt.Register(reg("broker-b", "b:1", 0, topics(1, "T")), t0)
	if dropped := rt.ConnClosed("a:1"); !reflect.DeepEqual(dropped, []string{"a:1"}) {
		t.Fatalf("dropped %v", dropped)
	}
	if route := rt.TopicRoute("T"); len(route.BrokerDatas) != 1 || route.BrokerDatas[0].BrokerName != "broker-b" {
		t.Fatalf("route %+v", route)
	}
	if dropped := rt.ConnClosed("nobody"); dropped != nil {
		t.Fatalf("dropped %v", dropped)
	}
}

func TestDeleteTopicAndWritePerm(t *testing.T) {
	rt := NewRouteTable()
	rt.Register(reg("broker-a", "a:1", 0, topics(1, "T", "U")), t0)
	other := reg("broker-x", "x:1", 0, topics(1, "T"))
	other.ClusterName = "Other"
	rt.Register(other, t0)
	if got := rt.TopicsByCluster("Other"); !reflect.DeepEqual(got, []string{"T"}) {
		t.Fatalf("topics of Other %v", got)
	}
	rt.DeleteTopic("T", "Other")
	if route := rt.TopicRoute("T"); len(route.QueueDatas) != 1 || route.QueueDatas[0].BrokerName != "broker-a" {
		t.Fatalf("route %+v", route)
	}
	rt.DeleteTopic("T", "")
	if rt.TopicRoute("T") != nil {
		t.Fatal("deleted topic still routed")
	}
	if n := rt.ChangeWritePerm("broker-a", false); n != 1 || rt.TopicRoute("U").QueueDatas[0].Perm != body.PermRead {
		t.Fatalf("wipe changed %d", n)
	}
	if n := rt.ChangeWritePerm("broker-a", true); n != 1 || rt.TopicRoute("U").QueueDatas[0].Perm != 6 {
		t.Fatalf("add changed %d", n)
	}
	sys, addr := rt.SystemTopics()
	if !reflect.DeepEqual(sys, []string{"DefaultCluster", "Other", "broker-a", "broker-x"}) || addr != "a:1" {
		t.Fatalf("system topics %v %s", sys, addr)
	}
}

func TestQueryDataVersion(t *testing.T) {
	rt := NewRouteTable()
	if changed, _ := rt.QueryDataVersion("a:1", body.DataVersion{}, t0); !changed {
		t.Fatal("unknown broker reported unchanged")
	}
	rt.Register(reg("broker-a", "a:1", 0, topics(5, "T")), t0)
	changed, dv := rt.QueryDataVersion("a:1", body.DataVersion{Timestamp: 1, Counter: 5}, t0.Add(100*time.Second))
	if changed || dv.Counter != 5 {
		t.Fatalf("changed=%v dv=%+v", changed, dv)
	}
	// The unchanged query counted as a heartbeat.
	if dropped := rt.Expire(t0.Add(150*time.Second), 120*time.Second); len(dropped) != 0 {
		t.Fatalf("dropped %v", dropped)
	}
}
