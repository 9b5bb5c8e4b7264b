package namesrv

import (
	"context"
	"strconv"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// standardJSONVersion is RocketMQ V4_9_4: clients of this version and later are sent route bodies in
// standard JSON; older ones get fastjson's bare numeric keys, as a Java NameServer sends them.
const standardJSONVersion = 401

func keyForm(req *remoting.Command) body.KeyForm {
	if req.Version >= standardJSONVersion || remoting.ReadExt(req).OptBool("acceptStandardJsonOnly", false) {
		return body.QuotedKeys
	}
	return body.BareKeys
}

func (s *Server) handleGetRouteInfo(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	topic := ext.String("topic")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	route := s.routes.TopicRoute(topic)
	if route == nil {
		return remoting.Errorf(code.TopicNotExist, "No topic route info in name server for the topic: %s", topic)
	}
	if s.orderMessageEnable() {
		route.OrderTopicConf, _ = s.kv.Get(OrderTopicConfigNamespace, topic)
	}
	resp := success()
	resp.Body = body.EncodeTopicRoute(route, keyForm(req))
	return resp
}

func (s *Server) handleGetClusterInfo(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	resp := success()
	resp.Body = body.EncodeClusterInfo(s.routes.ClusterInfo(), keyForm(req))
	return resp
}

func topicList(topics []string, brokerAddr string) *remoting.Command {
	if topics == nil {
		topics = []string{}
	}
	resp := success()
	resp.Body = body.Marshal(body.TopicList{TopicList: topics, BrokerAddr: brokerAddr})
	return resp
}

func (s *Server) handleGetAllTopics(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	return topicList(s.routes.Topics(), "")
}

func (s *Server) handleDeleteTopic(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	topic := ext.String("topic")
	cluster := ext.OptString("clusterName")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	s.routes.DeleteTopic(topic, cluster)
	s.log.Info("topic route deleted", "topic", topic, "cluster", cluster)
	return success()
}

func (s *Server) handleGetTopicsByCluster(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	cluster := ext.String("cluster")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	return topicList(s.routes.TopicsByCluster(cluster), "")
}

func (s *Server) handleGetSystemTopics(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	return topicList(s.routes.SystemTopics())
}

// Topic sys flags (RocketMQ's TopicSysFlag).
const (
	flagUnit    = 1 << 0
	flagUnitSub = 1 << 1
)

func (s *Server) handleGetUnitTopics(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	var keep func(int32) bool
	switch req.RequestCode() {
	case code.GetUnitTopicList:
		keep = func(f int32) bool { return f&flagUnit != 0 }
	case code.GetHasUnitSubTopicList:
		keep = func(f int32) bool { return f&flagUnitSub != 0 }
	default: // GetHasUnitSubUnunitTopicList
		keep = func(f int32) bool { return f&flagUnit == 0 && f&flagUnitSub != 0 }
	}
	return topicList(s.routes.TopicsWithSysFlag(keep), "")
}

func (s *Server) handleChangeWritePerm(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	name := ext.String("brokerName")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	add := req.RequestCode() == code.AddWritePermOfBroker
	n := s.routes.ChangeWritePerm(name, add)
	resp := success()
	if add {
		resp.SetExt("addTopicCount", strconv.Itoa(n))
	} else {
		resp.SetExt("wipeTopicCount", strconv.Itoa(n))
	}
	s.log.Info("broker write permission changed", "broker", name, "writable", add, "topics", n)
	return resp
}
