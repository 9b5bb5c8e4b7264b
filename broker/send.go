package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
	"github.com/apogeemq/apogee/timer"
)

// sendField is a field of a send request header by its long name (SendMessageRequestHeader, codes 10
// and 324) and its one-letter name (SendMessageRequestHeaderV2, codes 310, 320 and 325).
type sendField struct{ long, short string }

var (
	fieldProducerGroup     = sendField{"producerGroup", "a"}
	fieldTopic             = sendField{"topic", "b"}
	fieldDefaultTopic      = sendField{"defaultTopic", "c"}
	fieldDefaultQueueNums  = sendField{"defaultTopicQueueNums", "d"}
	fieldQueueID           = sendField{"queueId", "e"}
	fieldSysFlag           = sendField{"sysFlag", "f"}
	fieldBornTimestamp     = sendField{"bornTimestamp", "g"}
	fieldFlag              = sendField{"flag", "h"}
	fieldProperties        = sendField{"properties", "i"}
	fieldReconsumeTimes    = sendField{"reconsumeTimes", "j"}
	fieldMaxReconsumeTimes = sendField{"maxReconsumeTimes", "l"}
	fieldBatch             = sendField{"batch", "m"}
)

// sendHeader is a parsed send request header.
type sendHeader struct {
	producerGroup         string
	topic                 string
	defaultTopic          string
	defaultTopicQueueNums int32
	queueID               int32
	sysFlag               int32
	bornTimestamp         int64
	flag                  int32
	properties            string
	reconsumeTimes        int32
	maxReconsumeTimes     int32
	hasMaxReconsumeTimes  bool
	batch                 bool
}

// shortSendNames reports whether req names send header fields by their one-letter names: a V2 code
// that carries them. Other requests use the long names.
func shortSendNames(req *remoting.Command) bool {
	c := req.RequestCode()
	return (c == code.SendMessageV2 || c == code.SendBatchMessage || c == code.SendReplyMessageV2) && req.ExtFields.Has(fieldTopic.short)
}

// name is the field's name in a header that uses short names or long ones.
func (f sendField) name(short bool) string {
	if short {
		return f.short
	}
	return f.long
}

func parseSendHeader(req *remoting.Command) (sendHeader, error) {
	short := shortSendNames(req)
	r := remoting.ReadExt(req)
	h := sendHeader{
		producerGroup:         r.String(fieldProducerGroup.name(short)),
		topic:                 r.String(fieldTopic.name(short)),
		defaultTopic:          r.String(fieldDefaultTopic.name(short)),
		defaultTopicQueueNums: r.Int32(fieldDefaultQueueNums.name(short)),
		queueID:               r.Int32(fieldQueueID.name(short)),
		sysFlag:               r.Int32(fieldSysFlag.name(short)),
		bornTimestamp:         r.Int64(fieldBornTimestamp.name(short)),
		flag:                  r.Int32(fieldFlag.name(short)),
		properties:            r.OptString(fieldProperties.name(short)),
		reconsumeTimes:        r.OptInt32(fieldReconsumeTimes.name(short), 0),
		maxReconsumeTimes:     r.OptInt32(fieldMaxReconsumeTimes.name(short), 0),
		batch:                 r.OptBool(fieldBatch.name(short), false),
	}
	h.hasMaxReconsumeTimes = req.ExtFields.Has(fieldMaxReconsumeTimes.name(short))
	return h, r.Err()
}

// answeredByFlusher reports whether a send under SYNC_FLUSH returns without waiting for its fsync
// (handleSend leaves the answer to the store's flusher): a single message that is not a
// transactional half message. It reads two header fields, as it runs for every send.
func answeredByFlusher(req *remoting.Command) bool {
	if req.RequestCode() == code.SendBatchMessage {
		return false
	}
	short := shortSendNames(req)
	return !strings.EqualFold(req.Ext(fieldBatch.name(short)), "true") &&
		!strings.Contains(req.Ext(fieldProperties.name(short)), message.PropertyTransactionPrepared)
}

// appendStoredProperties appends to dst how a single message's encoded properties are stored: its
// items as they came, without WAIT (RocketMQ drops it) and with CLUSTER set to this broker's cluster,
// without a map. ok is false when the map path must handle them: a property the send path acts on
// (a delay level, a timer, a transaction), or a value containing \x01, which the map path refuses.
// Items ParseProperties would skip are dropped; a name given twice stays twice (readers keep the
// last, as the map did).
func appendStoredProperties(dst []byte, raw, cluster string) (out []byte, ok bool) {
	out = dst
	for s := raw; s != ""; {
		var name, value string
		name, value, s = message.CutProperty(s)
		switch name {
		case "", message.PropertyWaitStoreMsgOK, message.PropertyCluster:
			continue
		case message.PropertyDelayLevel, message.PropertyTransactionPrepared,
			timer.PropertyDelaySec, timer.PropertyDelayMs, timer.PropertyDeliverMs:
			return dst, false
		}
		if strings.IndexByte(value, message.NameValueSeparator) >= 0 {
			return dst, false
		}
		out = append(append(append(append(out, name...), message.NameValueSeparator), value...), message.PropertySeparator)
	}
	out = append(append(append(out, message.PropertyCluster...), message.NameValueSeparator), cluster...)
	return out, true
}

// sendAnswer is a send answer with room for its fields and their values, pooled: the transport
// gives it back through Command.Release once it has encoded it.
type sendAnswer struct {
	cmd    remoting.Command
	fields [10]string
	vals   []byte // the values appendResponse writes; fields alias it
}

var sendAnswers sync.Pool

func init() {
	sendAnswers.New = func() any {
		a := new(sendAnswer)
		a.cmd.Release = a.release // bound once, for the answer's life in the pool
		return a
	}
}

func (a *sendAnswer) release() {
	release := a.cmd.Release
	a.cmd = remoting.Command{Release: release}
	clear(a.fields[:])
	if cap(a.vals) > 4<<10 {
		a.vals = nil // a large batch's ids: do not keep the room
	}
	a.vals = a.vals[:0]
	sendAnswers.Put(a)
}

// sendResponse starts a send answer: RocketMQ puts MSG_REGION and TRACE_ON on every one.
func (b *Broker) sendResponse(c code.Response, remark string) *remoting.Command {
	return &b.newSendAnswer(c, remark).cmd
}

func (b *Broker) newSendAnswer(c code.Response, remark string) *sendAnswer {
	a := sendAnswers.Get().(*sendAnswer)
	a.cmd.Code, a.cmd.Language, a.cmd.Version, a.cmd.Flag, a.cmd.Remark =
		int16(c), remoting.LangJava, remoting.Version, remoting.FlagResponse, remark
	traceOn := "false"
	if isTrue(b.opts.TraceOn) {
		traceOn = "true"
	}
	a.cmd.ExtFields = append(a.fields[:0], message.PropertyMsgRegion, b.opts.RegionID, message.PropertyTraceSwitch, traceOn)
	return a
}

// sendError is sendResponse with a formatted remark, for refusals.
func (b *Broker) sendError(c code.Response, format string, args ...any) *remoting.Command {
	return b.sendResponse(c, fmt.Sprintf(format, args...))
}

// handleSend answers SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE (PROTOCOL.md §5.2).
//
// It runs inline (transport.Inliner): the header's strings and the body alias the connection's read
// buffer, valid until it returns. The common case, one message to an existing topic with properties
// stored as they came, uses them only until the store has copied the record, and makes no
// allocation: its message comes from a pool, and so does its answer. Every other path may keep the
// header's strings, so it copies them first (sendHeader.own).
func (b *Broker) handleSend(ctx context.Context, conn *transport.Conn, req *remoting.Command) *remoting.Command {
	h, err := parseSendHeader(req)
	if err != nil {
		return b.sendError(code.SystemError, "%s: %v", req.RequestCode(), err)
	}
	if b.opts.BrokerPermission&body.PermWrite == 0 {
		return b.sendError(code.NoPermission, "the broker[%s] sending message is forbidden", b.addr)
	}
	if err := body.ValidateTopic(h.topic); err != nil {
		return b.sendError(code.SystemError, "%v", err)
	}
	if notSendable[h.topic] {
		return b.sendError(code.SystemError, "the topic[%s] is a system topic; sending to it is not allowed", h.topic)
	}
	single := !h.batch && req.RequestCode() != code.SendBatchMessage
	var pooled *singleMessage // the common case's message, given back once the store has it
	if single && !strings.HasPrefix(h.topic, retryPrefix) {
		pooled = singleMessages.Get().(*singleMessage)
		var ok bool
		if pooled.props, ok = appendStoredProperties(pooled.props[:0], h.properties, b.opts.BrokerClusterName); !ok {
			pooled.release()
			pooled = nil
		}
	}
	tc := b.topics.get(h.topic)
	if pooled == nil || tc == nil {
		h.own()
	}
	if tc == nil {
		var resp *remoting.Command
		if tc, resp = b.topicForSend(&h); resp != nil {
			return resp
		}
	}
	if tc.Perm&body.PermWrite == 0 {
		return b.sendError(code.NoPermission, "the topic[%s] sending message is forbidden", h.topic)
	}
	queues := max(tc.WriteQueueNums, tc.ReadQueueNums)
	if h.queueID >= queues {
		return b.sendError(code.SystemError, "queueId %d is out of range: topic %s has %d queues (0..%d)", h.queueID, h.topic, queues, queues-1)
	}
	if h.queueID < 0 {
		h.queueID = rand.Int32N(max(tc.WriteQueueNums, 1))
	}

	bornHost := peerAddr(conn)
	var msgs []*message.Message
	switch {
	case !single:
		if msgs, err = message.DecodeBatch(req.Body); err != nil {
			return b.sendError(code.MessageIllegal, "the batch body is malformed: %v", err)
		}
		if len(msgs) == 0 {
			return b.sendError(code.MessageIllegal, "the batch is empty")
		}
	case pooled != nil:
		pooled.m.Flag, pooled.m.Body = h.flag, req.Body
		pooled.m.EncodedProperties = unsafe.String(unsafe.SliceData(pooled.props), len(pooled.props))
		msgs = pooled.list[:]
	default:
		one := newSingleMessage()
		one.m.Flag, one.m.Body = h.flag, req.Body
		one.m.Properties = message.ParseProperties(h.properties)
		msgs = one.list[:]
	}
	for _, m := range msgs {
		m.Topic, m.QueueID = tc.TopicName, h.queueID
		m.SysFlag = h.sysFlag
		if single {
			m.Flag = h.flag
		}
		m.BornTimestamp, m.BornHost = h.bornTimestamp, bornHost
		m.ReconsumeTimes = h.reconsumeTimes
		if m.EncodedProperties == "" {
			m.DeleteProperty(message.PropertyWaitStoreMsgOK)
			m.SetProperty(message.PropertyCluster, b.opts.BrokerClusterName)
		}
		if len(m.Body) > b.opts.Store.MaxMessageSize {
			return b.sendError(code.MessageIllegal, "the message body is %d bytes; the limit (maxMessageSize) is %d bytes: make it smaller or raise maxMessageSize",
				len(m.Body), b.opts.Store.MaxMessageSize)
		}
	}
	if pooled != nil {
		// Nothing below keeps the message: the store copies the record and what it indexes, and the
		// answer needs only the queue.
		defer pooled.release()
	}
	if strings.HasPrefix(h.topic, retryPrefix) {
		if resp := b.routeRetry(&h, msgs); resp != nil {
			return resp
		}
	}
	var res store.AppendResult
	if msgs[0].Property(message.PropertyTransactionPrepared) == "true" {
		if len(msgs) > 1 {
			return b.sendError(code.MessageIllegal, "transactional messages cannot be batched")
		}
		if isTrue(b.opts.RejectTransactionMessage) {
			return b.sendError(code.NoPermission, "the broker[%s] sending transaction message is forbidden (rejectTransactionMessage=true)", b.addr)
		}
		res, err = b.txns.storeHalf(ctx, msgs[0])
		return b.appendResponse(msgs[0].QueueID, res, err)
	}
	if isTimer, resp := b.divertTimer(msgs); resp != nil {
		return resp
	} else if !isTimer {
		if resp := b.divertDelayed(msgs); resp != nil {
			return resp
		}
	}
	if len(msgs) == 1 && !h.batch {
		if conn != nil && b.opts.Store.FlushDiskType == store.SyncFlush {
			// Answered when the group's fsync is done, by the store's flusher: no goroutine waits.
			fs := flushedSends.Get().(*flushedSend)
			fs.b, fs.reply, fs.queueID = b, conn.Later(req), msgs[0].QueueID
			b.store.AppendThen(msgs[0], fs.done)
			return nil
		}
		res, err = b.store.Append(ctx, msgs[0])
	} else {
		res, err = b.store.AppendBatch(ctx, msgs)
	}
	return b.appendResponse(msgs[0].QueueID, res, err)
}

// flushedSend answers a send under SYNC_FLUSH once the store's flusher says its fsync is done. It
// is pooled, with its done bound once, so a send costs no closure.
type flushedSend struct {
	b       *Broker
	reply   transport.Reply
	queueID int32
	done    func(store.AppendResult, error) // fs.complete
}

var flushedSends sync.Pool

func init() {
	flushedSends.New = func() any {
		fs := new(flushedSend)
		fs.done = fs.complete
		return fs
	}
}

func (fs *flushedSend) complete(res store.AppendResult, err error) {
	b, reply, queueID := fs.b, fs.reply, fs.queueID
	fs.b, fs.reply = nil, transport.Reply{}
	flushedSends.Put(fs)
	reply.Send(b.appendResponse(queueID, res, err))
}

// own copies the header's strings, which alias the request, for a path that may keep them.
func (h *sendHeader) own() {
	h.producerGroup = strings.Clone(h.producerGroup)
	h.topic = strings.Clone(h.topic)
	h.defaultTopic = strings.Clone(h.defaultTopic)
	h.properties = strings.Clone(h.properties)
}

// singleMessage is the message of a send that carries one, with the slice handleSend passes on
// and, when pooled, the bytes of its stored properties.
type singleMessage struct {
	m     message.Message
	list  [1]*message.Message
	props []byte // m.EncodedProperties, when pooled
}

var singleMessages = sync.Pool{New: func() any { return newSingleMessage() }}

func newSingleMessage() *singleMessage {
	one := new(singleMessage)
	one.list[0] = &one.m
	return one
}

func (one *singleMessage) release() {
	one.m = message.Message{}
	if cap(one.props) > 4<<10 {
		one.props = nil
	}
	singleMessages.Put(one)
}

// appendResponse maps a store result to the send answer (PROTOCOL.md §5.2 step 8); queueID is the
// messages' queue.
func (b *Broker) appendResponse(queueID int32, res store.AppendResult, err error) *remoting.Command {
	var c code.Response
	switch res.Status {
	case store.PutOK:
		c = code.Success
	case store.FlushDiskTimeout:
		c = code.FlushDiskTimeout
	case store.MessageIllegal, store.PropertiesSizeExceeded:
		return b.sendError(code.MessageIllegal, "message refused: %v", err)
	case store.DiskFull:
		return b.sendError(code.ServiceNotAvailable, "the broker's disk is full; writes are refused until space is freed (reads keep working): %v", err)
	case store.ServiceNotAvailable:
		return b.sendError(code.ServiceNotAvailable, "the store is not accepting writes: %v", err)
	default:
		return b.sendError(code.SystemError, "store failed: %v", err)
	}
	a := b.newSendAnswer(c, "")
	if c != code.Success && err != nil {
		a.cmd.Remark = err.Error()
	}
	// The three values are written into the answer's buffer and sliced from it: the answer is
	// pooled, and the transport releases it only once it has encoded them.
	buf := a.vals[:0]
	if len(res.RecordOffsets) == 0 {
		buf = message.AppendOffsetMsgID(buf, b.storeHost, res.CommitLogOffset)
	}
	for i, off := range res.RecordOffsets {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = message.AppendOffsetMsgID(buf, b.storeHost, off)
	}
	idsEnd := len(buf)
	buf = strconv.AppendInt(buf, int64(queueID), 10)
	queueIDEnd := len(buf)
	buf = strconv.AppendInt(buf, res.QueueOffset, 10)
	a.vals = buf
	vals := unsafe.String(unsafe.SliceData(buf), len(buf))
	a.cmd.ExtFields = append(a.cmd.ExtFields, "msgId", vals[:idsEnd], "queueId", vals[idsEnd:queueIDEnd], "queueOffset", vals[queueIDEnd:])
	return &a.cmd
}

// topicForSend finds the send's topic, creating it when RocketMQ would: from the defaultTopic
// template when auto-creation is on, and always for retry topics.
func (b *Broker) topicForSend(h *sendHeader) (*body.TopicConfig, *remoting.Command) {
	if tc := b.topics.get(h.topic); tc != nil {
		return tc, nil
	}
	if strings.HasPrefix(h.topic, retryPrefix) {
		tc, err := b.ensureTopic(h.topic, 1, body.PermRead|body.PermWrite)
		if err != nil {
			return nil, b.sendError(code.SystemError, "%v", err)
		}
		return tc, nil
	}
	tmpl := b.topics.get(h.defaultTopic)
	if !isTrue(b.opts.AutoCreateTopicEnable) || tmpl == nil || tmpl.Perm&body.PermInherit == 0 {
		return nil, b.sendError(code.TopicNotExist, "topic[%s] does not exist on broker %s and auto-creation is off: create it first (apogee admin or mqadmin updateTopic) or set autoCreateTopicEnable=true",
			h.topic, b.opts.BrokerName)
	}
	queues := min(max(h.defaultTopicQueueNums, 1), tmpl.WriteQueueNums)
	tc, created, err := b.topics.createIfAbsent(&body.TopicConfig{
		TopicName: h.topic, ReadQueueNums: queues, WriteQueueNums: queues,
		Perm: tmpl.Perm &^ body.PermInherit, TopicFilterType: tmpl.TopicFilterType,
	})
	if err != nil {
		return nil, b.sendError(code.SystemError, "creating topic %s: %v", h.topic, err)
	}
	if created {
		b.log.Info("topic auto-created", "topic", h.topic, "queues", queues, "template", h.defaultTopic)
		b.triggerRegister()
	}
	return tc, nil
}

// ensureTopic returns a topic's config, creating it with the given queues and perm if it does not
// exist (retry and DLQ topics), and registers a new topic with the NameServers at once.
func (b *Broker) ensureTopic(name string, queues int32, perm int32) (*body.TopicConfig, error) {
	tc, created, err := b.topics.createIfAbsent(&body.TopicConfig{TopicName: name, ReadQueueNums: queues, WriteQueueNums: queues,
		Perm: perm, TopicFilterType: "SINGLE_TAG"})
	if err != nil {
		return nil, err
	}
	if created {
		b.log.Info("topic created", "topic", name, "queues", queues)
		b.triggerRegister()
	}
	return tc, nil
}

// routeRetry handles a client re-sending a message to a retry topic itself (the Java client's
// fallback when CONSUMER_SEND_MSG_BACK fails): past the group's maximum it goes to the DLQ.
func (b *Broker) routeRetry(h *sendHeader, msgs []*message.Message) *remoting.Command {
	group := strings.TrimPrefix(h.topic, retryPrefix)
	cfg, err := b.groups.get(group)
	if err != nil {
		return b.sendError(code.SystemError, "%v", err)
	}
	if cfg == nil {
		return b.sendError(code.SubscriptionGroupNotExist, "subscription group %s does not exist", group)
	}
	maxTimes := cfg.RetryMaxTimes
	if h.hasMaxReconsumeTimes {
		maxTimes = h.maxReconsumeTimes
	}
	if h.reconsumeTimes < maxTimes {
		return nil
	}
	dlq := dlqPrefix + group
	if _, err := b.ensureTopic(dlq, 1, body.PermRead|body.PermWrite); err != nil {
		return b.sendError(code.SystemError, "%v", err)
	}
	for _, m := range msgs {
		m.Topic, m.QueueID = dlq, 0
		m.DeleteProperty(message.PropertyDelayLevel)
	}
	return nil
}

func peerAddr(conn *transport.Conn) netip.AddrPort {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
