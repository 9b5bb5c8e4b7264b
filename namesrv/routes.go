package namesrv

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting/body"
)

// RouteTable is the NameServer's state: which brokers exist, which topics they serve, and when each
// broker was last heard from. It does no I/O and reads no clock (every call that needs the time is
// given it), so it can be tested step by step. It is safe for concurrent use.
//
// Its tables are the seeds': topic → queue data per broker name; broker name → cluster and replica
// addresses by broker id; cluster → broker names; broker address → liveness and data version.
type RouteTable struct {
	mu struct {
		sync.RWMutex
		topics   map[string]map[string]*body.QueueData // topic → broker name → queues
		brokers  map[string]*body.BrokerData           // broker name → group
		clusters map[string]map[string]struct{}        // cluster → broker names
		live     map[string]*brokerLive                // broker address → liveness
		filters  map[string][]string                   // broker address → filter servers
	}
}

// brokerLive is what the table knows about one registered broker replica.
type brokerLive struct {
	lastUpdate   time.Time
	timeout      time.Duration // silence after which the broker is dropped; 0 = the table's default
	dataVersion  body.DataVersion
	haServerAddr string
	conn         any // the connection it registered over, for dropping it when that closes
	cluster      string
	brokerName   string
	brokerID     int64
}

// NewRouteTable returns an empty table.
func NewRouteTable() *RouteTable {
	t := &RouteTable{}
	t.mu.topics = make(map[string]map[string]*body.QueueData)
	t.mu.brokers = make(map[string]*body.BrokerData)
	t.mu.clusters = make(map[string]map[string]struct{})
	t.mu.live = make(map[string]*brokerLive)
	t.mu.filters = make(map[string][]string)
	return t
}

// Registration is one REGISTER_BROKER call.
type Registration struct {
	ClusterName  string
	BrokerName   string
	BrokerAddr   string
	BrokerID     int64
	HAServerAddr string
	Topics       *body.TopicConfigWrapper // nil: liveness only
	FilterServer []string
	// Timeout is the broker's own heartbeat timeout (RocketMQ 5 brokers send it); 0 means the
	// NameServer's default.
	Timeout time.Duration
	// Conn identifies the connection the registration came over (any comparable value).
	Conn any
}

// RegisterResult answers a registration: a slave learns its master's address and HA address.
type RegisterResult struct {
	MasterAddr   string
	HAServerAddr string
}

// Register records a broker's registration at now, as RocketMQ's RouteInfoManager.registerBroker does:
// the broker joins its cluster and group (an address registered under another id moves to the new
// one), and a master whose data version changed (or that registers for the first time) has the queue
// data of every topic in its table created or overwritten. Topics missing from the table are kept, so
// a broker may register a single new topic.
func (t *RouteTable) Register(reg Registration, now time.Time) RegisterResult {
	t.mu.Lock()
	defer t.mu.Unlock()

	names := t.mu.clusters[reg.ClusterName]
	if names == nil {
		names = make(map[string]struct{})
		t.mu.clusters[reg.ClusterName] = names
	}
	names[reg.BrokerName] = struct{}{}

	first := false
	bd := t.mu.brokers[reg.BrokerName]
	if bd == nil {
		first = true
		bd = &body.BrokerData{Cluster: reg.ClusterName, BrokerName: reg.BrokerName, BrokerAddrs: make(map[int64]string)}
		t.mu.brokers[reg.BrokerName] = bd
	}
	// A replica that changed role (slave promoted to master) keeps its address under its new id only.
	for id, addr := range bd.BrokerAddrs {
		if addr == reg.BrokerAddr && id != reg.BrokerID {
			delete(bd.BrokerAddrs, id)
		}
	}
	if old, ok := bd.BrokerAddrs[reg.BrokerID]; !ok || old != reg.BrokerAddr {
		first = true
	}
	bd.BrokerAddrs[reg.BrokerID] = reg.BrokerAddr

	prev := t.mu.live[reg.BrokerAddr]
	if reg.Topics != nil && reg.BrokerID == body.MasterID {
		if first || prev == nil || prev.dataVersion != reg.Topics.DataVersion {
			for name, tc := range reg.Topics.TopicConfigTable {
				t.putQueueDataLocked(name, reg.BrokerName, tc)
			}
		}
	}
	live := &brokerLive{
		lastUpdate:   now,
		timeout:      reg.Timeout,
		haServerAddr: reg.HAServerAddr,
		conn:         reg.Conn,
		cluster:      reg.ClusterName,
		brokerName:   reg.BrokerName,
		brokerID:     reg.BrokerID,
	}
	if reg.Topics != nil {
		live.dataVersion = reg.Topics.DataVersion
	} else if prev != nil {
		live.dataVersion = prev.dataVersion
	}
	t.mu.live[reg.BrokerAddr] = live
	if len(reg.FilterServer) > 0 {
		t.mu.filters[reg.BrokerAddr] = slices.Clone(reg.FilterServer)
	} else {
		delete(t.mu.filters, reg.BrokerAddr)
	}

	var res RegisterResult
	if reg.BrokerID != body.MasterID {
		if master, ok := bd.BrokerAddrs[body.MasterID]; ok {
			res.MasterAddr = master
			if ml := t.mu.live[master]; ml != nil {
				res.HAServerAddr = ml.haServerAddr
			}
		}
	}
	return res
}

func (t *RouteTable) putQueueDataLocked(topic, brokerName string, tc *body.TopicConfig) {
	qds := t.mu.topics[topic]
	if qds == nil {
		qds = make(map[string]*body.QueueData)
		t.mu.topics[topic] = qds
	}
	qds[brokerName] = &body.QueueData{
		BrokerName:     brokerName,
		ReadQueueNums:  tc.ReadQueueNums,
		WriteQueueNums: tc.WriteQueueNums,
		Perm:           tc.Perm,
		TopicSysFlag:   tc.TopicSysFlag,
	}
}

// Unregister removes one broker replica, as UNREGISTER_BROKER does. When a broker group loses its
// last replica it leaves its cluster and every topic loses its queues there.
func (t *RouteTable) Unregister(clusterName, brokerAddr, brokerName string, brokerID int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mu.live, brokerAddr)
	delete(t.mu.filters, brokerAddr)
	if bd := t.mu.brokers[brokerName]; bd != nil {
		if bd.BrokerAddrs[brokerID] == brokerAddr {
			delete(bd.BrokerAddrs, brokerID)
		}
		if len(bd.BrokerAddrs) == 0 {
			t.removeBrokerNameLocked(clusterName, brokerName)
		}
	}
}

// removeBrokerNameLocked drops a broker group that has no replica left, with its routes.
func (t *RouteTable) removeBrokerNameLocked(clusterName, brokerName string) {
	delete(t.mu.brokers, brokerName)
	if names := t.mu.clusters[clusterName]; names != nil {
		delete(names, brokerName)
		if len(names) == 0 {
			delete(t.mu.clusters, clusterName)
		}
	}
	for topic, qds := range t.mu.topics {
		delete(qds, brokerName)
		if len(qds) == 0 {
			delete(t.mu.topics, topic)
		}
	}
}

// dropLocked removes a replica found by address (expiry, closed connection).
func (t *RouteTable) dropLocked(addr string) {
	live := t.mu.live[addr]
	delete(t.mu.live, addr)
	delete(t.mu.filters, addr)
	if live == nil {
		return
	}
	if bd := t.mu.brokers[live.brokerName]; bd != nil {
		for id, a := range bd.BrokerAddrs {
			if a == addr {
				delete(bd.BrokerAddrs, id)
			}
		}
		if len(bd.BrokerAddrs) == 0 {
			t.removeBrokerNameLocked(bd.Cluster, live.brokerName)
		}
	}
}

// Expire drops every broker silent for longer than its timeout (def unless the broker set its own)
// as of now, with its routes, and returns their addresses.
func (t *RouteTable) Expire(now time.Time, def time.Duration) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var dropped []string
	for addr, live := range t.mu.live {
		timeout := live.timeout
		if timeout <= 0 {
			timeout = def
		}
		if now.Sub(live.lastUpdate) > timeout {
			dropped = append(dropped, addr)
		}
	}
	for _, addr := range dropped {
		t.dropLocked(addr)
	}
	slices.Sort(dropped)
	return dropped
}

// ConnClosed drops every broker that registered over conn and returns their addresses.
func (t *RouteTable) ConnClosed(conn any) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var dropped []string
	for addr, live := range t.mu.live {
		if live.conn == conn {
			dropped = append(dropped, addr)
		}
	}
	for _, addr := range dropped {
		t.dropLocked(addr)
	}
	slices.Sort(dropped)
	return dropped
}

// QueryDataVersion reports whether a broker's data version differs from the one registered, and
// returns the registered one. An unchanged broker counts as heard from at now.
func (t *RouteTable) QueryDataVersion(brokerAddr string, v body.DataVersion, now time.Time) (changed bool, registered *body.DataVersion) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.mu.live[brokerAddr]
	if live == nil {
		return true, nil
	}
	dv := live.dataVersion
	if dv == v {
		live.lastUpdate = now
		return false, &dv
	}
	return true, &dv
}

// TopicRoute returns a topic's route, or nil if no live broker serves it.
func (t *RouteTable) TopicRoute(topic string) *body.TopicRouteData {
	t.mu.RLock()
	defer t.mu.RUnlock()
	qds := t.mu.topics[topic]
	if len(qds) == 0 {
		return nil
	}
	route := &body.TopicRouteData{FilterServerTable: make(map[string][]string)}
	for _, name := range slices.Sorted(maps.Keys(qds)) {
		qd := *qds[name]
		route.QueueDatas = append(route.QueueDatas, &qd)
		bd := t.mu.brokers[name]
		if bd == nil {
			continue
		}
		route.BrokerDatas = append(route.BrokerDatas, bd.Clone())
		for _, addr := range bd.BrokerAddrs {
			if fs := t.mu.filters[addr]; len(fs) > 0 {
				route.FilterServerTable[addr] = slices.Clone(fs)
			}
		}
	}
	if len(route.BrokerDatas) == 0 {
		return nil
	}
	return route
}

// ClusterInfo returns every broker group and the clusters they belong to.
func (t *RouteTable) ClusterInfo() *body.ClusterInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ci := &body.ClusterInfo{
		BrokerAddrTable:  make(map[string]*body.BrokerData, len(t.mu.brokers)),
		ClusterAddrTable: make(map[string][]string, len(t.mu.clusters)),
	}
	for name, bd := range t.mu.brokers {
		ci.BrokerAddrTable[name] = bd.Clone()
	}
	for cluster, names := range t.mu.clusters {
		ci.ClusterAddrTable[cluster] = slices.Sorted(maps.Keys(names))
	}
	return ci
}

// Topics returns every topic with a route, sorted.
func (t *RouteTable) Topics() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Sorted(maps.Keys(t.mu.topics))
}

// TopicsByCluster returns the topics served by brokers of a cluster, sorted.
func (t *RouteTable) TopicsByCluster(cluster string) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	names := t.mu.clusters[cluster]
	var topics []string
	for topic, qds := range t.mu.topics {
		for name := range qds {
			if _, ok := names[name]; ok {
				topics = append(topics, topic)
				break
			}
		}
	}
	slices.Sort(topics)
	return topics
}

// TopicsWithSysFlag returns the topics with a queue data whose topicSysFlag passes keep, sorted.
func (t *RouteTable) TopicsWithSysFlag(keep func(flag int32) bool) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var topics []string
	for topic, qds := range t.mu.topics {
		for _, qd := range qds {
			if keep(qd.TopicSysFlag) {
				topics = append(topics, topic)
				break
			}
		}
	}
	slices.Sort(topics)
	return topics
}

// SystemTopics returns what RocketMQ treats as system topics on the NameServer: the cluster names and
// broker names (brokers create topics named after them), and the address of one master.
func (t *RouteTable) SystemTopics() (topics []string, brokerAddr string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for cluster, names := range t.mu.clusters {
		topics = append(topics, cluster)
		for name := range names {
			topics = append(topics, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.mu.brokers)) {
		if addr, ok := t.mu.brokers[name].BrokerAddrs[body.MasterID]; ok && brokerAddr == "" {
			brokerAddr = addr
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics), brokerAddr
}

// DeleteTopic removes a topic's route; with a cluster name, only the queues on that cluster's brokers.
func (t *RouteTable) DeleteTopic(topic, cluster string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cluster == "" {
		delete(t.mu.topics, topic)
		return
	}
	qds := t.mu.topics[topic]
	for name := range t.mu.clusters[cluster] {
		delete(qds, name)
	}
	if len(qds) == 0 {
		delete(t.mu.topics, topic)
	}
}

// ChangeWritePerm removes (add=false) or restores (add=true) the write permission of every queue data
// of a broker group, and returns how many topics it changed.
func (t *RouteTable) ChangeWritePerm(brokerName string, add bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, qds := range t.mu.topics {
		if qd := qds[brokerName]; qd != nil {
			if add {
				qd.Perm |= body.PermWrite
			} else {
				qd.Perm &^= body.PermWrite
			}
			n++
		}
	}
	return n
}

// BrokerCount returns the number of registered broker replicas.
func (t *RouteTable) BrokerCount() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.mu.live)
}

// knows reports whether a broker address is registered.
func (t *RouteTable) knows(addr string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.mu.live[addr]
	return ok
}
