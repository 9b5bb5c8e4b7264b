package client

import (
	"context"
	"fmt"
	"strconv"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// TransactionState is the outcome of a local transaction.
type TransactionState int

// Transaction states.
const (
	// TransactionUnknown leaves the decision for later: the broker asks the producer group's
	// TransactionChecker (by default after 6 s, up to 15 times).
	TransactionUnknown TransactionState = iota
	// TransactionCommit makes the message visible to consumers.
	TransactionCommit
	// TransactionRollback discards the message.
	TransactionRollback
)

func (s TransactionState) String() string {
	switch s {
	case TransactionCommit:
		return "COMMIT_MESSAGE"
	case TransactionRollback:
		return "ROLLBACK_MESSAGE"
	}
	return "UNKNOW"
}

// sysFlag returns the END_TRANSACTION commitOrRollback value.
func (s TransactionState) sysFlag() int32 {
	switch s {
	case TransactionCommit:
		return message.TransactionCommitType
	case TransactionRollback:
		return message.TransactionRollbackType
	}
	return message.TransactionNotType
}

// TransactionChecker answers a broker that asks how a transaction ended whose outcome it never got
// (the producer crashed, or returned TransactionUnknown). m is the half message as sent, with its
// UNIQ_KEY (m.UniqKey()) identifying the transaction. It runs on a goroutine of the connection and
// must be safe for concurrent use.
type TransactionChecker func(ctx context.Context, m *message.Message) TransactionState

// WithTransactionChecker sets the check-back listener of a transactional producer. With it the
// producer announces its group to the brokers at once (through TBW102's route) so that they can ask
// it about transactions left open, even ones a previous process began. Default: none; check-backs
// are then ignored and open transactions are resolved only by SendTransaction's own outcome.
func WithTransactionChecker(c TransactionChecker) ProducerOpt {
	return producerOpt(func(cfg *producerCfg) { cfg.checker = c })
}

// transactionHandler answers CHECK_TRANSACTION_STATE for p.
func (p *Producer) transactionHandler() transport.Handler {
	mux := transport.NewMux()
	mux.HandleFunc(code.CheckTransactionState, func(ctx context.Context, conn *transport.Conn, req *remoting.Command) *remoting.Command {
		p.answerCheck(ctx, conn, req)
		return nil // CHECK_TRANSACTION_STATE is oneway
	})
	return mux
}

func (p *Producer) answerCheck(ctx context.Context, conn *transport.Conn, req *remoting.Command) {
	log := p.cfg.common.logger
	if p.cfg.checker == nil {
		return
	}
	r := remoting.ReadExt(req)
	halfOffset := r.Int64("tranStateTableOffset")
	logOffset := r.Int64("commitLogOffset")
	if err := r.Err(); err != nil {
		log.Warn("bad CHECK_TRANSACTION_STATE", "err", err)
		return
	}
	msgs, err := decodeMessages(req.Body)
	if err != nil || len(msgs) != 1 {
		log.Warn("bad CHECK_TRANSACTION_STATE body", "records", len(msgs), "err", err)
		return
	}
	m := msgs[0]
	if g := m.Property(message.PropertyProducerGroup); g != p.cfg.group {
		log.Warn("CHECK_TRANSACTION_STATE for another producer group", "group", g)
		return
	}
	state := p.cfg.checker(ctx, m)
	end := endTransactionRequest(p.cfg.group, halfOffset, logOffset, m.UniqKey(), state, true)
	if err := conn.InvokeOneway(ctx, end); err != nil {
		log.Warn("answering a transaction check failed", "msg_id", m.UniqKey(), "err", err)
	}
}

func endTransactionRequest(group string, halfOffset, logOffset int64, uniqKey string, state TransactionState, fromCheck bool) *remoting.Command {
	return remoting.NewRequest(code.EndTransaction, remoting.Fields{
		"producerGroup", group,
		"tranStateTableOffset", strconv.FormatInt(halfOffset, 10),
		"commitLogOffset", strconv.FormatInt(logOffset, 10),
		"commitOrRollback", strconv.Itoa(int(state.sysFlag())),
		"fromTransactionCheck", strconv.FormatBool(fromCheck),
		"msgId", uniqKey,
		"transactionId", uniqKey,
	}, nil)
}

// announceTransactional fetches TBW102's route, so heartbeats reach every broker, and heartbeats.
func (p *Producer) announceTransactional(ctx context.Context) {
	p.c.routes.update(ctx, body.AutoCreateTopicTemplate)
	p.heartbeat(ctx)
}

// SendTransaction sends msg as a half message (invisible to consumers), runs exec, and ends the
// transaction with exec's outcome: TransactionCommit delivers the message, TransactionRollback
// discards it, TransactionUnknown leaves it to the TransactionChecker. exec runs only if the half
// message was stored; its outcome is sent without waiting (as RocketMQ's clients do), so the broker
// may still check back if that message is lost. msg may not have a delay level.
func (p *Producer) SendTransaction(ctx context.Context, msg *Message, exec func(ctx context.Context, res *SendResult) TransactionState) (*SendResult, TransactionState, error) {
	if err := p.checkOpen(); err != nil {
		return nil, TransactionUnknown, err
	}
	if msg != nil && msg.DelayLevel != 0 {
		return nil, TransactionUnknown, fmt.Errorf("%w: a transactional message cannot carry a delay level", ErrInvalidMessage)
	}
	req, err := p.prepare(msg)
	if err != nil {
		return nil, TransactionUnknown, err
	}
	if p.announced.CompareAndSwap(false, true) {
		if _, err := p.c.routes.get(ctx, msg.Topic, true); err == nil {
			p.heartbeat(ctx) // the broker must know the group before it can check back
		} else {
			p.announced.Store(false)
		}
	}
	props := message.ParseProperties(req.properties)
	props[message.PropertyTransactionPrepared] = "true"
	props[message.PropertyProducerGroup] = p.cfg.group
	req.properties = string(message.AppendProperties(nil, props))
	req.sysFlag = message.WithTransactionType(req.sysFlag, message.TransactionPreparedType)
	res, err := p.sendWithRetries(ctx, msg, req)
	if err != nil {
		return nil, TransactionUnknown, err
	}
	state := exec(ctx, res)
	_, logOffset, err := message.ParseOffsetMsgID(res.OffsetMsgID)
	if err != nil {
		return res, state, fmt.Errorf("client: the broker's message id %q: %w", res.OffsetMsgID, err)
	}
	addr := p.c.routes.masterAddr(res.Queue.BrokerName)
	if addr == "" {
		return res, state, fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, res.Queue.BrokerName)
	}
	end := endTransactionRequest(p.cfg.group, res.QueueOffset, logOffset, res.MsgID, state, false)
	if err := p.c.tc.InvokeOneway(ctx, addr, end); err != nil {
		return res, state, fmt.Errorf("client: END_TRANSACTION to %s: %w", addr, err)
	}
	return res, state, nil
}
