package broker

import (
	"context"
	"math/rand/v2"
	"strconv"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

// handleSendBack answers CONSUMER_SEND_MSG_BACK (PROTOCOL.md §7.2): a message the consumer failed to
// process goes to %RETRY%<group> with delay level 3 + reconsumeTimes (or the level asked for), and to
// %DLQ%<group> once it has been retried maxReconsumeTimes times or the level is negative. The Go
// client ignores the answer, so every failure here is logged.
func (b *Broker) handleSendBack(ctx context.Context, conn *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	off := r.Int64("offset")
	group := r.String("group")
	delayLevel := r.Int32("delayLevel")
	hdrMax, hasMax := r.OptInt32("maxReconsumeTimes", 0), req.Ext("maxReconsumeTimes") != ""
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	fail := func(c code.Response, format string, args ...any) *remoting.Command {
		resp := remoting.Errorf(c, format, args...)
		b.log.Warn("send-back failed", "group", group, "offset", off, "remark", resp.Remark)
		return resp
	}
	cfg, err := b.groups.get(group)
	if err != nil {
		return fail(code.SystemError, "%v", err)
	}
	if cfg == nil {
		return fail(code.SubscriptionGroupNotExist, "subscription group [%s] does not exist", group)
	}
	if b.opts.BrokerPermission&body.PermWrite == 0 {
		return fail(code.NoPermission, "the broker[%s] sending message is forbidden", b.addr)
	}
	if cfg.RetryQueueNums <= 0 {
		return remoting.NewResponse(code.Success, "") // retries are off for this group: drop it
	}
	orig, err := b.store.LookupMessage(off)
	if err != nil {
		return fail(code.SystemError, "look up message at commit-log offset %d: %v", off, err)
	}
	props := orig.Properties
	if props == nil {
		props = make(map[string]string)
	}
	if props[message.PropertyRetryTopic] == "" {
		props[message.PropertyRetryTopic] = orig.Topic
	}
	maxTimes := cfg.RetryMaxTimes
	if hasMax && req.Version >= 121 {
		maxTimes = hdrMax
	}
	out := &message.Message{Flag: orig.Flag, Body: orig.Body, Properties: props, SysFlag: orig.SysFlag,
		BornTimestamp: orig.BornTimestamp, BornHost: orig.BornHost, ReconsumeTimes: orig.ReconsumeTimes + 1}
	if orig.ReconsumeTimes >= maxTimes || delayLevel < 0 {
		out.Topic, out.QueueID = dlqPrefix+group, 0
		if _, err := b.ensureTopic(out.Topic, 1, body.PermRead|body.PermWrite); err != nil {
			return fail(code.SystemError, "%v", err)
		}
		delete(props, message.PropertyDelayLevel)
		b.log.Info("message moved to the dead-letter queue", "group", group, "topic", props[message.PropertyRetryTopic],
			"reconsume_times", orig.ReconsumeTimes, "msg_id", orig.UniqKey())
	} else {
		tc, err := b.ensureTopic(retryPrefix+group, max(cfg.RetryQueueNums, 1), body.PermRead|body.PermWrite)
		if err != nil {
			return fail(code.SystemError, "%v", err)
		}
		if tc.Perm&body.PermWrite == 0 {
			return fail(code.NoPermission, "the topic[%s] sending message is forbidden", tc.TopicName)
		}
		out.Topic, out.QueueID = tc.TopicName, rand.Int32N(max(tc.WriteQueueNums, 1))
		if delayLevel == 0 {
			delayLevel = 3 + orig.ReconsumeTimes
		}
		props[message.PropertyDelayLevel] = strconv.Itoa(int(delayLevel))
	}
	if props[message.PropertyOriginMessageID] == "" {
		props[message.PropertyOriginMessageID] = message.OffsetMsgID(orig.StoreHost, orig.CommitLogOffset)
	}
	if resp := b.divertDelayed([]*message.Message{out}); resp != nil {
		return fail(resp.ResponseCode(), "%s", resp.Remark)
	}
	res, err := b.store.Append(ctx, out)
	if res.Status != store.PutOK && res.Status != store.FlushDiskTimeout {
		return fail(code.SystemError, "storing the retry message: %v", err)
	}
	return remoting.NewResponse(code.Success, "")
}
