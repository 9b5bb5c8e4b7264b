package broker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// handleHeartbeat registers a client's producer and consumer groups (PROTOCOL.md §2.4, HEART_BEAT):
// every consumer group gets its config and its retry topic (registered with the NameServers at once),
// and a membership change is pushed to the group's members.
func (b *Broker) handleHeartbeat(_ context.Context, conn *transport.Conn, req *remoting.Command) *remoting.Command {
	var hb body.HeartbeatData
	if err := json.Unmarshal(req.Body, &hb); err != nil {
		return remoting.Errorf(code.SystemError, "HEART_BEAT: the body is not heartbeat data: %v", err)
	}
	if hb.ClientID == "" {
		return remoting.Errorf(code.SystemError, "HEART_BEAT: clientID is empty")
	}
	now := time.Now()
	for _, cd := range hb.ConsumerDataSet {
		if cd == nil || cd.GroupName == "" {
			continue
		}
		cfg, err := b.groups.get(cd.GroupName)
		if err != nil {
			return remoting.Errorf(code.SystemError, "HEART_BEAT: %v", err)
		}
		if cfg != nil {
			retry := retryPrefix + cd.GroupName
			if _, err := b.ensureTopic(retry, max(cfg.RetryQueueNums, 1), body.PermRead|body.PermWrite); err != nil {
				return remoting.Errorf(code.SystemError, "HEART_BEAT: %v", err)
			}
		}
		if b.clients.registerConsumer(cd, newChannel(conn, hb.ClientID, req, now)) {
			b.log.Info("consumer joined", "group", cd.GroupName, "client", hb.ClientID, "model", cd.MessageModel)
			go b.notifyIDsChanged(cd.GroupName)
		}
	}
	for _, pd := range hb.ProducerDataSet {
		if pd != nil && pd.GroupName != "" {
			b.clients.registerProducer(pd.GroupName, newChannel(conn, hb.ClientID, req, now))
		}
	}
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleUnregisterClient(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	clientID := r.String("clientID")
	producerGroup, consumerGroup := r.OptString("producerGroup"), r.OptString("consumerGroup")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	for _, g := range b.clients.unregister(clientID, producerGroup, consumerGroup) {
		b.log.Info("consumer left (unregistered)", "group", g, "client", clientID)
		go b.notifyIDsChanged(g)
	}
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleGetConsumerList(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("consumerGroup")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	ids := b.clients.consumerIDs(group)
	if len(ids) == 0 {
		return remoting.Errorf(code.SystemError, "no consumer for this group, %s", group)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.ConsumerList{ConsumerIDList: ids})
	return resp
}

func decodeLockRequest(req *remoting.Command) (*body.LockBatchRequest, *remoting.Command) {
	var lr body.LockBatchRequest
	if err := json.Unmarshal(req.Body, &lr); err != nil {
		return nil, remoting.Errorf(code.SystemError, "%s: the body is not a lock request: %v", req.RequestCode(), err)
	}
	if lr.ConsumerGroup == "" || lr.ClientID == "" {
		return nil, remoting.Errorf(code.SystemError, "%s: consumerGroup and clientId are required", req.RequestCode())
	}
	return &lr, nil
}

func (b *Broker) handleLockBatch(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	lr, bad := decodeLockRequest(req)
	if bad != nil {
		return bad
	}
	locked := b.locks.lock(lr.ConsumerGroup, lr.ClientID, lr.MQSet, time.Now())
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.LockBatchResponse{LockOKMQSet: locked})
	return resp
}

func (b *Broker) handleUnlockBatch(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	lr, bad := decodeLockRequest(req)
	if bad != nil {
		return bad
	}
	b.locks.unlock(lr.ConsumerGroup, lr.ClientID, lr.MQSet)
	return remoting.NewResponse(code.Success, "")
}

// handleCheckClientConfig answers a Java consumer's check of its subscription: TAG expressions are
// accepted, SQL92 is not supported.
func (b *Broker) handleCheckClientConfig(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	var cc struct {
		SubscriptionData *body.SubscriptionData `json:"subscriptionData"`
	}
	if err := json.Unmarshal(req.Body, &cc); err != nil {
		return remoting.Errorf(code.SystemError, "CHECK_CLIENT_CONFIG: %v", err)
	}
	if sd := cc.SubscriptionData; sd != nil && sd.ExpressionType != "" && sd.ExpressionType != body.ExpressionTag {
		return remoting.Errorf(code.SystemError, "the broker does not support consumer filtering by %s; use TAG", sd.ExpressionType)
	}
	return remoting.NewResponse(code.Success, "")
}
