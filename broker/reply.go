package broker

import (
	"context"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// handleSendReply answers SEND_REPLY_MESSAGE(_V2), the reply half of request/reply: the reply is
// pushed with PUSH_REPLY_MESSAGE_TO_CLIENT over the connection of the requesting client (named by the
// REPLY_TO_CLIENT property, known from its producer heartbeats) and stored in its reply topic.
func (b *Broker) handleSendReply(ctx context.Context, conn *transport.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendHeader(req)
	if err != nil {
		return b.sendError(code.SystemError, "%s: %v", req.RequestCode(), err)
	}
	tc, resp := b.topicForSend(&h)
	if resp != nil {
		return resp
	}
	if h.queueID < 0 || h.queueID >= max(tc.WriteQueueNums, 1) {
		h.queueID = 0
	}
	props := message.ParseProperties(h.properties)
	if props == nil {
		props = make(map[string]string, 2)
	}
	props[message.PropertyCluster] = b.opts.BrokerClusterName
	replyTo := props[message.PropertyReplyToClient]
	ch := b.clients.producerByClientID(replyTo)
	if ch == nil {
		return b.sendError(code.SystemError, "push reply message fail, channel of <%s> not found", replyTo)
	}
	m := &message.Message{Topic: h.topic, QueueID: h.queueID, Flag: h.flag, Body: req.Body, Properties: props,
		SysFlag: h.sysFlag, BornTimestamp: h.bornTimestamp, BornHost: peerAddr(conn), ReconsumeTimes: h.reconsumeTimes}
	res, err := b.store.Append(ctx, m)
	appended := b.appendResponse(m.QueueID, res, err)

	pushed := make(map[string]string, len(props)+1)
	for k, v := range props {
		pushed[k] = v
	}
	pushed["PUSH_REPLY_TIME"] = strconv.FormatInt(time.Now().UnixMilli(), 10)
	push := remoting.NewRequest(code.PushReplyMessageToClient, remoting.Fields{
		"producerGroup", h.producerGroup,
		"topic", h.topic,
		"defaultTopic", h.defaultTopic,
		"defaultTopicQueueNums", strconv.Itoa(int(h.defaultTopicQueueNums)),
		"queueId", strconv.Itoa(int(h.queueID)),
		"sysFlag", strconv.Itoa(int(h.sysFlag)),
		"bornTimestamp", strconv.FormatInt(h.bornTimestamp, 10),
		"flag", strconv.Itoa(int(h.flag)),
		"properties", string(message.AppendProperties(nil, pushed)),
		"reconsumeTimes", strconv.Itoa(int(h.reconsumeTimes)),
		"unitMode", "false",
		"bornHost", peerAddr(conn).String(),
		"storeHost", b.addr,
		"storeTimestamp", strconv.FormatInt(m.StoreTimestamp, 10),
	}, req.Body)
	cctx, cancel := context.WithTimeout(ctx, clientCallTimeout)
	defer cancel()
	pr, err := ch.conn.Invoke(cctx, push)
	if err != nil || pr.ResponseCode() != code.Success {
		remark := "no answer"
		if err != nil {
			remark = err.Error()
		} else {
			remark = pr.Remark
		}
		return b.sendError(code.SystemError, "push reply message to <%s> failed: %s", replyTo, remark)
	}
	return appended
}
