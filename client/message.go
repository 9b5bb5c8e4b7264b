package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting/body"
)

// Message is a message to send.
type Message struct {
	// Topic is where the message goes. Required.
	Topic string
	// Body is the payload. Required (RocketMQ refuses empty bodies).
	Body []byte
	// Tags is the tag consumers filter on (the TAGS property); "" means none.
	Tags string
	// Keys are indexed by the broker, so the message can be found with Admin.QueryMessageByKey (the
	// KEYS property, space-separated on the wire: a key must not contain a space).
	Keys []string
	// ShardingKey makes the send ordered: the producer's QueueSelector picks the queue from it, so
	// messages with the same key land in the same queue in send order, and a failed send is retried
	// on that queue only. "" means any queue (round-robin with fault avoidance).
	ShardingKey string
	// DelayLevel delays delivery by the broker's level (1 = 1 s, 2 = 5 s, 3 = 10 s, ... 18 = 2 h with
	// the default messageDelayLevel); 0 means no delay. Not allowed in a batch.
	DelayLevel int
	// DeliverAt makes the message a timer message (RocketMQ 5's TIMER_DELIVER_MS): the broker delivers
	// it at that millisecond, up to its timerMaxDelaySec (3 days by default) ahead. A time not in the
	// future means now. The zero value means no timer. Not allowed in a batch or with DelayLevel.
	DeliverAt time.Time
	// Flag is stored verbatim and handed to consumers (RocketMQ's Message.flag).
	Flag int32
	// Properties are user properties; names and values must not contain \x01 or \x02. Reserved names
	// (TAGS, KEYS, DELAY, UNIQ_KEY, ...) set here are overridden by the fields above.
	Properties map[string]string
}

// propertyTimerDeliverMs is RocketMQ 5's absolute delivery time of a timer message (Unix ms).
const propertyTimerDeliverMs = "TIMER_DELIVER_MS"

// properties returns the wire properties of m with uniqKey as UNIQ_KEY (kept if the caller set one).
func (m *Message) properties(uniqKey string) (map[string]string, error) {
	props := make(map[string]string, len(m.Properties)+4)
	for k, v := range m.Properties {
		props[k] = v
	}
	if m.Tags != "" {
		props[message.PropertyTags] = m.Tags
	}
	if len(m.Keys) > 0 {
		for _, k := range m.Keys {
			if k == "" || strings.ContainsAny(k, " ") {
				return nil, fmt.Errorf("%w: key %q is empty or contains a space", ErrInvalidMessage, k)
			}
		}
		props[message.PropertyKeys] = strings.Join(m.Keys, " ")
	}
	if m.DelayLevel < 0 {
		return nil, fmt.Errorf("%w: delay level %d is negative", ErrInvalidMessage, m.DelayLevel)
	}
	if m.DelayLevel > 0 {
		props[message.PropertyDelayLevel] = fmt.Sprint(m.DelayLevel)
	}
	if !m.DeliverAt.IsZero() {
		if m.DelayLevel > 0 {
			return nil, fmt.Errorf("%w: a message has either a delay level or a delivery time, not both", ErrInvalidMessage)
		}
		props[propertyTimerDeliverMs] = strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)
	}
	if props[message.PropertyUniqKey] == "" {
		props[message.PropertyUniqKey] = uniqKey
	}
	if err := message.ValidateProperties(props); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return props, nil
}

func (m *Message) validate() error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	if err := body.ValidateTopic(m.Topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if len(m.Body) == 0 {
		return fmt.Errorf("%w: the body is empty", ErrInvalidMessage)
	}
	return nil
}

// SendStatus is how a broker stored a sent message.
type SendStatus int

// Send statuses. Anything but SendOK means the message is stored on the master but the broker could
// not confirm the flush or the replication it was configured to wait for.
const (
	SendOK SendStatus = iota
	SendFlushDiskTimeout
	SendFlushSlaveTimeout
	SendSlaveNotAvailable
)

func (s SendStatus) String() string {
	switch s {
	case SendOK:
		return "SEND_OK"
	case SendFlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case SendFlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case SendSlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	}
	return fmt.Sprintf("SendStatus(%d)", int(s))
}

// SendResult is what the broker answered to a successful send.
type SendResult struct {
	Status SendStatus
	// MsgID is the message's client id (UNIQ_KEY), what consumers see as the message id. For a batch,
	// the ids of its messages joined with commas.
	MsgID string
	// OffsetMsgID is the broker's id of the stored message (store host and commit-log offset), usable
	// with Admin.ViewMessage. For a batch, the ids joined with commas.
	OffsetMsgID string
	// Queue is the queue the message was stored in.
	Queue MessageQueue
	// QueueOffset is the message's offset in the queue (for a batch, the first message's).
	QueueOffset int64
	// RegionID is the broker's region (MSG_REGION).
	RegionID string
}
