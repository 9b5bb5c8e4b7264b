package body

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/apogeemq/apogee/remoting"
)

// MasterID is the broker id of a broker group's master.
const MasterID = 0

// QueueData is one broker's share of a topic.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int32  `json:"readQueueNums"`
	WriteQueueNums int32  `json:"writeQueueNums"`
	Perm           int32  `json:"perm"`
	TopicSysFlag   int32  `json:"topicSysFlag"`
}

// BrokerData is a broker group: its cluster, name and the address of each replica by broker id.
type BrokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

// Clone returns a deep copy.
func (b *BrokerData) Clone() *BrokerData {
	c := *b
	c.BrokerAddrs = make(map[int64]string, len(b.BrokerAddrs))
	for id, addr := range b.BrokerAddrs {
		c.BrokerAddrs[id] = addr
	}
	return &c
}

// TopicRouteData is the body of GET_ROUTEINFO_BY_TOPIC.
type TopicRouteData struct {
	OrderTopicConf    string              `json:"orderTopicConf,omitempty"`
	QueueDatas        []*QueueData        `json:"queueDatas"`
	BrokerDatas       []*BrokerData       `json:"brokerDatas"`
	FilterServerTable map[string][]string `json:"filterServerTable"`
}

// ClusterInfo is the body of GET_BROKER_CLUSTER_INFO.
type ClusterInfo struct {
	BrokerAddrTable  map[string]*BrokerData `json:"brokerAddrTable"`
	ClusterAddrTable map[string][]string    `json:"clusterAddrTable"`
}

// KeyForm says how maps with numeric keys (brokerAddrs) are written.
type KeyForm int

const (
	// QuotedKeys writes {"0":"addr"}: standard JSON, what RocketMQ 4.9.4+ NameServers send to clients of
	// version 401 and later.
	QuotedKeys KeyForm = iota
	// BareKeys writes {0:"addr"}: fastjson's default form, what older clients were always sent.
	BareKeys
)

// EncodeTopicRoute writes the route as fastjson does: members in alphabetical order, compact, and
// brokerAddrs keys in the given form. queueDatas and brokerAddrs are always present, because the
// official Go client fails on a route without them.
func EncodeTopicRoute(r *TopicRouteData, form KeyForm) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"brokerDatas":[`...)
	for i, bd := range r.BrokerDatas {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBrokerData(b, bd, form)
	}
	b = append(b, `],"filterServerTable":`...)
	b = appendFilterServers(b, r.FilterServerTable)
	if r.OrderTopicConf != "" {
		b = append(b, `,"orderTopicConf":`...)
		b = remoting.AppendJSONString(b, r.OrderTopicConf)
	}
	b = append(b, `,"queueDatas":[`...)
	for i, qd := range r.QueueDatas {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"brokerName":`...)
		b = remoting.AppendJSONString(b, qd.BrokerName)
		b = append(b, `,"perm":`...)
		b = strconv.AppendInt(b, int64(qd.Perm), 10)
		b = append(b, `,"readQueueNums":`...)
		b = strconv.AppendInt(b, int64(qd.ReadQueueNums), 10)
		b = append(b, `,"topicSysFlag":`...)
		b = strconv.AppendInt(b, int64(qd.TopicSysFlag), 10)
		b = append(b, `,"writeQueueNums":`...)
		b = strconv.AppendInt(b, int64(qd.WriteQueueNums), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendBrokerData(b []byte, bd *BrokerData, form KeyForm) []byte {
	b = append(b, `{"brokerAddrs":{`...)
	for i, id := range slices.Sorted(maps.Keys(bd.BrokerAddrs)) {
		if i > 0 {
			b = append(b, ',')
		}
		if form == QuotedKeys {
			b = append(b, '"')
		}
		b = strconv.AppendInt(b, id, 10)
		if form == QuotedKeys {
			b = append(b, '"')
		}
		b = append(b, ':')
		b = remoting.AppendJSONString(b, bd.BrokerAddrs[id])
	}
	b = append(b, `},"brokerName":`...)
	b = remoting.AppendJSONString(b, bd.BrokerName)
	b = append(b, `,"cluster":`...)
	b = remoting.AppendJSONString(b, bd.Cluster)
	return append(b, '}')
}

func appendFilterServers(b []byte, table map[string][]string) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(table)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = remoting.AppendJSONString(b, k)
		b = append(b, ':')
		b = appendStrings(b, table[k])
	}
	return append(b, '}')
}

// appendStrings writes a JSON array of strings.
func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = remoting.AppendJSONString(b, s)
	}
	return append(b, ']')
}

// EncodeClusterInfo writes the cluster info as fastjson does, brokerAddrs keys in the given form.
func EncodeClusterInfo(ci *ClusterInfo, form KeyForm) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"brokerAddrTable":{`...)
	for i, name := range slices.Sorted(maps.Keys(ci.BrokerAddrTable)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = remoting.AppendJSONString(b, name)
		b = append(b, ':')
		b = appendBrokerData(b, ci.BrokerAddrTable[name], form)
	}
	b = append(b, `},"clusterAddrTable":{`...)
	for i, c := range slices.Sorted(maps.Keys(ci.ClusterAddrTable)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = remoting.AppendJSONString(b, c)
		b = append(b, ':')
		b = appendStrings(b, ci.ClusterAddrTable[c])
	}
	return append(b, "}}"...)
}

// DecodeTopicRoute decodes a route body in either key form.
func DecodeTopicRoute(data []byte) (*TopicRouteData, error) {
	var r TopicRouteData
	if err := unmarshalFastJSON(data, &r); err != nil {
		return nil, fmt.Errorf("topic route: %v", err)
	}
	return &r, nil
}

// DecodeClusterInfo decodes a cluster info body in either key form.
func DecodeClusterInfo(data []byte) (*ClusterInfo, error) {
	var ci ClusterInfo
	if err := unmarshalFastJSON(data, &ci); err != nil {
		return nil, fmt.Errorf("cluster info: %v", err)
	}
	return &ci, nil
}

// unmarshalFastJSON decodes fastjson output: bare numeric object keys are quoted first.
func unmarshalFastJSON(data []byte, v any) error {
	return json.Unmarshal(QuoteBareKeys(data), v)
}

// QuoteBareKeys rewrites fastjson's bare numeric object keys ({0:"a"}) as quoted ones ({"0":"a"}),
// leaving everything else, strings included, as it is.
func QuoteBareKeys(data []byte) []byte {
	var out []byte // allocated only if a bare key is found
	inString, escaped := false, false
	expectKey := false // after '{' or ',' inside an object
	var depth []byte   // stack of '{' and '['
	last := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString, expectKey = true, false
		case '{':
			depth = append(depth, '{')
			expectKey = true
		case '[':
			depth = append(depth, '[')
			expectKey = false
		case '}', ']':
			if len(depth) > 0 {
				depth = depth[:len(depth)-1]
			}
			expectKey = false
		case ',':
			expectKey = len(depth) > 0 && depth[len(depth)-1] == '{'
		case ' ', '\t', '\n', '\r':
		default:
			if expectKey && (c == '-' || (c >= '0' && c <= '9')) {
				j := i + 1
				for j < len(data) && data[j] >= '0' && data[j] <= '9' {
					j++
				}
				out = append(out, data[last:i]...)
				out = append(out, '"')
				out = append(out, data[i:j]...)
				out = append(out, '"')
				last = j
				i = j - 1
			}
			expectKey = false
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}
