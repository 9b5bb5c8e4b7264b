package namesrv

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

func success() *remoting.Command { return remoting.NewResponse(code.Success, "") }

// badHeader answers a request whose ext fields are missing or malformed, naming the field.
func badHeader(req *remoting.Command, err error) *remoting.Command {
	return remoting.Errorf(code.SystemError, "%s: %v", req.RequestCode(), err)
}

// handleRegisterBroker decodes and checks the whole request before it touches the route table, so a
// bad registration leaves no trace.
func (s *Server) handleRegisterBroker(_ context.Context, c *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	reg := Registration{
		BrokerName:   ext.String("brokerName"),
		BrokerAddr:   ext.String("brokerAddr"),
		ClusterName:  ext.String("clusterName"),
		HAServerAddr: ext.String("haServerAddr"),
		BrokerID:     ext.Int64("brokerId"),
		Timeout:      time.Duration(ext.OptInt64("heartbeatTimeoutMillis", 0)) * time.Millisecond,
		Conn:         c,
	}
	compressed := ext.OptBool("compressed", false)
	crc := ext.OptInt32("bodyCrc32", 0)
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	if reg.BrokerName == "" || reg.BrokerAddr == "" || reg.ClusterName == "" {
		return remoting.Errorf(code.SystemError, "REGISTER_BROKER: brokerName, brokerAddr and clusterName must not be empty")
	}
	if reg.BrokerID < 0 {
		return remoting.Errorf(code.SystemError, "REGISTER_BROKER: brokerId %d is negative", reg.BrokerID)
	}
	if crc != 0 && body.BodyCRC32(req.Body) != crc {
		return remoting.Errorf(code.SystemError, "crc32 not match: the register body of %s is damaged", reg.BrokerAddr)
	}
	if len(req.Body) > 0 {
		rb, err := body.DecodeRegisterBroker(req.Body, compressed)
		if err != nil {
			return remoting.Errorf(code.SystemError, "REGISTER_BROKER from %s: %v", reg.BrokerAddr, err)
		}
		for name := range rb.TopicConfigSerializeWrapper.TopicConfigTable {
			if err := body.ValidateTopic(name); err != nil {
				return remoting.Errorf(code.SystemError, "REGISTER_BROKER from %s: %v", reg.BrokerAddr, err)
			}
		}
		reg.Topics = &rb.TopicConfigSerializeWrapper
		reg.FilterServer = rb.FilterServerList
	} else {
		reg.Topics = &body.TopicConfigWrapper{}
	}

	known := s.routes.knows(reg.BrokerAddr)
	res := s.routes.Register(reg, time.Now())
	if !known {
		s.log.Info("broker registered", "cluster", reg.ClusterName, "broker", reg.BrokerName, "id", reg.BrokerID,
			"addr", reg.BrokerAddr, "topics", len(reg.Topics.TopicConfigTable))
	}
	resp := success()
	if res.MasterAddr != "" {
		resp.SetExt("masterAddr", res.MasterAddr)
	}
	if res.HAServerAddr != "" {
		resp.SetExt("haServerAddr", res.HAServerAddr)
	}
	if table := s.kv.Namespace(OrderTopicConfigNamespace); table != nil {
		resp.Body = body.Marshal(body.KVTable{Table: table})
	}
	return resp
}

func (s *Server) handleUnregisterBroker(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	name, addr, cluster, id := ext.String("brokerName"), ext.String("brokerAddr"), ext.String("clusterName"), ext.Int64("brokerId")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	s.routes.Unregister(cluster, addr, name, id)
	s.log.Info("broker unregistered", "cluster", cluster, "broker", name, "id", id, "addr", addr)
	return success()
}

func (s *Server) handleQueryDataVersion(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	ext.String("brokerName")
	addr := ext.String("brokerAddr")
	ext.String("clusterName")
	ext.Int64("brokerId")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	var dv body.DataVersion
	if err := json.Unmarshal(req.Body, &dv); err != nil {
		return remoting.Errorf(code.SystemError, "QUERY_DATA_VERSION: the body is not a data version: %v", err)
	}
	changed, registered := s.routes.QueryDataVersion(addr, dv, time.Now())
	resp := success()
	resp.SetExt("changed", strconv.FormatBool(changed))
	if registered != nil {
		resp.Body = body.Marshal(registered)
	}
	return resp
}
