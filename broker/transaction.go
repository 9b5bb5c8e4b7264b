package broker

import (
	"context"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

// Transactions follow RocketMQ's design (PROTOCOL.md §8): a half message is stored in
// RMQ_SYS_TRANS_HALF_TOPIC, invisible to consumers; END_TRANSACTION commits it (a copy goes to its
// real topic, sysFlag COMMIT, preparedTransactionOffset pointing at the half) or rolls it back; either
// way an op record in RMQ_SYS_TRANS_OP_HALF_TOPIC (tag "d", body = the half's queue offset) marks it
// resolved. Unresolved halves older than transactionTimeOut are checked back with
// CHECK_TRANSACTION_STATE on a live connection of their producer group, at most transactionCheckMax
// times, then parked in TRANS_CHECK_MAX_TIME_TOPIC.
//
// The set of unresolved halves lives in memory (transactions resolve within seconds; the set is
// small) and is rebuilt at start from the half and op topics. A commit whose op record was lost in a
// crash is recognised by its committed copy in the commit log, so a half is resolved exactly once.

const opTag = "d"

// halfState is an unresolved half message.
type halfState struct {
	queueOffset     int64 // in the half topic
	commitLogOffset int64
	storeTime       time.Time
	group           string
	checks          int
	immunity        time.Duration
}

type transactions struct {
	b  *Broker
	mu struct {
		sync.Mutex
		pending map[int64]*halfState // half queue offset → state
	}
}

func newTransactions(b *Broker) *transactions {
	t := &transactions{b: b}
	t.mu.pending = make(map[int64]*halfState)
	return t
}

// forEachMessage calls f for every message of a queue from its first offset.
func (b *Broker) forEachMessage(topic string, queueID int32, f func(*message.Message)) error {
	off := b.store.MinOffset(topic, queueID)
	for {
		msgs, err := b.readMessages(topic, queueID, off, 32)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			if max := b.store.MaxOffset(topic, queueID); off < max {
				off++ // an unreadable entry (removed segment): skip it
				continue
			}
			return nil
		}
		for _, m := range msgs {
			f(m)
			off = m.QueueOffset + 1
		}
	}
}

func halfFrom(m *message.Message) *halfState {
	h := &halfState{queueOffset: m.QueueOffset, commitLogOffset: m.CommitLogOffset,
		storeTime: time.UnixMilli(m.StoreTimestamp), group: m.Property(message.PropertyProducerGroup)}
	if s, err := strconv.Atoi(m.Property(message.PropertyCheckImmunityTime)); err == nil && s > 0 {
		h.immunity = time.Duration(s) * time.Second
	}
	if n, err := strconv.Atoi(m.Property(message.PropertyTransactionCheckTimes)); err == nil {
		h.checks = n
	}
	return h
}

// load rebuilds the unresolved halves: every half without an op record, minus those whose committed
// copy is in the commit log (a crash between the commit and its op record).
func (t *transactions) load() error {
	b := t.b
	resolved := make(map[int64]bool)
	err := b.forEachMessage(topicTransOpHalf, 0, func(m *message.Message) {
		if off, err := strconv.ParseInt(string(m.Body), 10, 64); err == nil {
			resolved[off] = true
		}
	})
	if err != nil {
		return err
	}
	err = b.forEachMessage(topicTransHalf, 0, func(m *message.Message) {
		if !resolved[m.QueueOffset] {
			t.mu.pending[m.QueueOffset] = halfFrom(m)
		}
	})
	if err != nil || len(t.mu.pending) == 0 {
		return err
	}
	byLogOffset := make(map[int64]*halfState, len(t.mu.pending))
	from := int64(math.MaxInt64)
	for _, h := range t.mu.pending {
		byLogOffset[h.commitLogOffset] = h
		from = min(from, h.commitLogOffset)
	}
	committed, err := b.scanCommits(from, byLogOffset)
	if err != nil {
		return err
	}
	for _, h := range committed {
		delete(t.mu.pending, h.queueOffset)
		t.markResolved(h)
	}
	if n := len(t.mu.pending); n > 0 {
		b.log.Info("unresolved transactions found; they will be checked back", "count", n)
	}
	return nil
}

// scanCommits walks the commit log from offset from and returns the halves of want whose committed
// copy it finds.
func (b *Broker) scanCommits(from int64, want map[int64]*halfState) ([]*halfState, error) {
	var found []*halfState
	err := b.scanLog(from, func(v *message.RecordView) {
		if message.TransactionType(v.SysFlag) == message.TransactionCommitType {
			if h := want[v.PreparedTransactionOffset]; h != nil {
				found = append(found, h)
			}
		}
	})
	return found, err
}

// storeHalf turns a transactional send into a half message and stores it.
func (t *transactions) storeHalf(ctx context.Context, m *message.Message) (store.AppendResult, error) {
	if _, err := t.b.ensureTopic(topicTransHalf, 1, body.PermRead|body.PermWrite); err != nil {
		return store.AppendResult{Status: store.ServiceNotAvailable}, err
	}
	m.SetProperty(message.PropertyRealTopic, m.Topic)
	m.SetProperty(message.PropertyRealQueueID, strconv.Itoa(int(m.QueueID)))
	m.SysFlag = message.WithTransactionType(m.SysFlag, message.TransactionNotType)
	m.Topic, m.QueueID = topicTransHalf, 0
	res, err := t.b.store.Append(ctx, m)
	if res.Status == store.PutOK || res.Status == store.FlushDiskTimeout {
		t.mu.Lock()
		t.mu.pending[res.QueueOffset] = halfFrom(m)
		t.mu.Unlock()
	}
	return res, err
}

// markResolved appends the op record of a half.
func (t *transactions) markResolved(h *halfState) error {
	if _, err := t.b.ensureTopic(topicTransOpHalf, 1, body.PermRead|body.PermWrite); err != nil {
		return err
	}
	op := &message.Message{Topic: topicTransOpHalf, Body: []byte(strconv.FormatInt(h.queueOffset, 10)),
		Properties: map[string]string{message.PropertyTags: opTag}, BornTimestamp: time.Now().UnixMilli(), BornHost: t.b.storeHost}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := t.b.store.Append(ctx, op)
	if res.Status != store.PutOK && res.Status != store.FlushDiskTimeout {
		return err
	}
	return nil
}

// take removes a half from the unresolved set; nil if it is not (or no longer) unresolved.
func (t *transactions) take(queueOffset int64) *halfState {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.mu.pending[queueOffset]
	delete(t.mu.pending, queueOffset)
	return h
}

func (t *transactions) putBack(h *halfState) {
	t.mu.Lock()
	t.mu.pending[h.queueOffset] = h
	t.mu.Unlock()
}

// handleEndTransaction answers END_TRANSACTION (PROTOCOL.md §8.2). An unknown state gets no answer,
// as from RocketMQ; the check-back asks again later.
func (b *Broker) handleEndTransaction(ctx context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("producerGroup")
	halfOffset := r.Int64("tranStateTableOffset")
	logOffset := r.Int64("commitLogOffset")
	kind := r.Int32("commitOrRollback")
	fromCheck := r.OptBool("fromTransactionCheck", false)
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if kind != message.TransactionCommitType && kind != message.TransactionRollbackType {
		return nil
	}
	h := b.txns.take(halfOffset)
	if h == nil {
		// Already resolved (a repeated answer, or a check racing the first answer): nothing to do.
		return remoting.NewResponse(code.Success, "")
	}
	half, err := b.store.LookupMessage(logOffset)
	if err != nil || half.Topic != topicTransHalf || half.QueueOffset != halfOffset || h.commitLogOffset != logOffset {
		b.txns.putBack(h)
		return remoting.Errorf(code.SystemError, "END_TRANSACTION: no half message at commitLogOffset %d / tranStateTableOffset %d", logOffset, halfOffset)
	}
	if pg := half.Property(message.PropertyProducerGroup); pg != group {
		b.txns.putBack(h)
		return remoting.Errorf(code.SystemError, "END_TRANSACTION: the producer group %s is not the half message's group %s", group, pg)
	}
	if kind == message.TransactionCommitType {
		qid, _ := strconv.Atoi(half.Property(message.PropertyRealQueueID))
		final := &message.Message{Topic: half.Property(message.PropertyRealTopic), QueueID: int32(qid), Flag: half.Flag,
			Body: half.Body, Properties: half.Properties, SysFlag: message.WithTransactionType(half.SysFlag, message.TransactionCommitType),
			BornTimestamp: half.BornTimestamp, BornHost: half.BornHost, ReconsumeTimes: half.ReconsumeTimes,
			PreparedTransactionOffset: logOffset}
		if resp := b.divertDelayed([]*message.Message{final}); resp != nil {
			delete(final.Properties, message.PropertyDelayLevel)
		}
		res, err := b.store.Append(ctx, final)
		if res.Status != store.PutOK && res.Status != store.FlushDiskTimeout {
			b.txns.putBack(h)
			return remoting.Errorf(code.SystemError, "END_TRANSACTION: storing the committed message: %v", err)
		}
	}
	if err := b.txns.markResolved(h); err != nil {
		b.log.Error("writing a transaction op record failed; the half will be recognised at restart", "err", err)
	}
	b.log.Debug("transaction resolved", "group", group, "commit", kind == message.TransactionCommitType, "from_check", fromCheck)
	return remoting.NewResponse(code.Success, "")
}

// checkLoop asks producers about halves left unresolved past transactionTimeOut.
func (t *transactions) checkLoop() {
	t.b.every(t.b.opts.TransactionCheckInterval, nil, t.checkOnce)
}

func (t *transactions) checkOnce(now time.Time) {
	b := t.b
	t.mu.Lock()
	var due []*halfState
	for _, h := range t.mu.pending {
		timeout := b.opts.TransactionTimeout
		if h.immunity > 0 {
			timeout = h.immunity
		}
		if now.Sub(h.storeTime) >= timeout {
			due = append(due, h)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(due, func(a, c *halfState) int { return int(a.queueOffset - c.queueOffset) })
	for _, h := range due {
		if h.checks >= b.opts.TransactionCheckMax {
			t.discard(h)
			continue
		}
		chans := b.clients.producers(h.group)
		if len(chans) == 0 {
			continue // nobody to ask; try again next round
		}
		half, err := b.store.LookupMessage(h.commitLogOffset)
		if err != nil {
			b.log.Warn("unresolved half message unreadable; dropping it", "offset", h.commitLogOffset, "err", err)
			if t.take(h.queueOffset) != nil {
				t.markResolved(h)
			}
			continue
		}
		shown := *half
		shown.Topic = half.Property(message.PropertyRealTopic)
		if qid, err := strconv.Atoi(half.Property(message.PropertyRealQueueID)); err == nil {
			shown.QueueID = int32(qid)
		}
		rec, err := message.AppendRecord(nil, &shown)
		if err != nil {
			continue
		}
		uniq := half.UniqKey()
		req := remoting.NewRequest(code.CheckTransactionState, remoting.Fields{
			"tranStateTableOffset", strconv.FormatInt(h.queueOffset, 10),
			"commitLogOffset", strconv.FormatInt(h.commitLogOffset, 10),
			"msgId", uniq,
			"transactionId", uniq,
			"offsetMsgId", message.OffsetMsgID(half.StoreHost, h.commitLogOffset),
			"topic", shown.Topic,
		}, rec)
		ch := chans[int(h.checks)%len(chans)]
		ctx, cancel := context.WithTimeout(context.Background(), clientCallTimeout)
		err = ch.conn.InvokeOneway(ctx, req)
		cancel()
		t.mu.Lock()
		h.checks++
		t.mu.Unlock()
		if err != nil {
			b.log.Debug("transaction check failed", "group", h.group, "client", ch.clientID, "err", err)
		}
	}
}

// discard parks a half that was checked transactionCheckMax times in TRANS_CHECK_MAX_TIME_TOPIC.
func (t *transactions) discard(h *halfState) {
	b := t.b
	if t.take(h.queueOffset) == nil {
		return
	}
	half, err := b.store.LookupMessage(h.commitLogOffset)
	if err == nil {
		if _, err := b.ensureTopic(topicTransCheckMax, 1, body.PermRead|body.PermWrite); err == nil {
			half.Topic, half.QueueID = topicTransCheckMax, 0
			half.SetProperty(message.PropertyTransactionCheckTimes, strconv.Itoa(h.checks))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b.store.Append(ctx, half)
			cancel()
		}
	}
	t.markResolved(h)
	b.log.Warn("transaction never resolved; parked in "+topicTransCheckMax, "group", h.group, "checks", h.checks)
}
