package client

import (
	"fmt"
	"slices"
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

// appendProperties appends the wire properties of m to dst (name\x01value pairs joined by \x02): the
// user properties in name order, so that the encoding is deterministic, then the reserved ones m's
// fields set, and last UNIQ_KEY: the user's, or a new id from ids for time now. The UNIQ_KEY sent is
// dst[uniqAt:] of the result. It builds no map and no string: this runs once per message sent.
func (m *Message) appendProperties(dst []byte, ids *message.UniqIDGenerator, now time.Time) (_ []byte, uniqAt int, _ error) {
	if m.DelayLevel < 0 {
		return dst, 0, fmt.Errorf("%w: delay level %d is negative", ErrInvalidMessage, m.DelayLevel)
	}
	if m.DelayLevel > 0 && !m.DeliverAt.IsZero() {
		return dst, 0, fmt.Errorf("%w: a message has either a delay level or a delivery time, not both", ErrInvalidMessage)
	}
	for _, k := range m.Keys {
		if k == "" || strings.IndexByte(k, ' ') >= 0 {
			return dst, 0, fmt.Errorf("%w: key %q is empty or contains a space", ErrInvalidMessage, k)
		}
	}
	uniqKey := ""
	start := len(dst)
	add := func(name string) {
		if len(dst) > start {
			dst = append(dst, message.PropertySeparator)
		}
		dst = append(append(dst, name...), message.NameValueSeparator)
	}
	if len(m.Properties) > 0 {
		if v := m.Properties[message.PropertyUniqKey]; v != "" {
			uniqKey = v
		}
		var stack [16]string
		names := stack[:0]
		for k, v := range m.Properties {
			if message.HasSeparator(k) || message.HasSeparator(v) {
				return dst, 0, fmt.Errorf("%w: %w", ErrInvalidMessage, message.ErrBadProperty)
			}
			if k != "" && v != "" && !m.overrides(k) {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		for _, k := range names {
			add(k)
			dst = append(dst, m.Properties[k]...)
		}
	}
	if m.Tags != "" {
		if message.HasSeparator(m.Tags) {
			return dst, 0, fmt.Errorf("%w: %w", ErrInvalidMessage, message.ErrBadProperty)
		}
		add(message.PropertyTags)
		dst = append(dst, m.Tags...)
	}
	if len(m.Keys) > 0 {
		add(message.PropertyKeys)
		for i, k := range m.Keys {
			if message.HasSeparator(k) {
				return dst, 0, fmt.Errorf("%w: %w", ErrInvalidMessage, message.ErrBadProperty)
			}
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, k...)
		}
	}
	if m.DelayLevel > 0 {
		add(message.PropertyDelayLevel)
		dst = strconv.AppendInt(dst, int64(m.DelayLevel), 10)
	}
	if !m.DeliverAt.IsZero() {
		add(propertyTimerDeliverMs)
		dst = strconv.AppendInt(dst, m.DeliverAt.UnixMilli(), 10)
	}
	add(message.PropertyUniqKey)
	uniqAt = len(dst)
	if uniqKey != "" {
		dst = append(dst, uniqKey...)
	} else {
		dst = ids.AppendNextAt(dst, now)
	}
	if len(dst)-start > message.MaxPropertiesLength {
		return dst, 0, fmt.Errorf("%w: %w", ErrInvalidMessage, message.ErrPropertiesTooLong)
	}
	return dst, uniqAt, nil
}

// overrides reports whether property name is set by one of m's fields (or is UNIQ_KEY, which
// appendProperties writes last), so a user property of that name is not written.
func (m *Message) overrides(name string) bool {
	switch name {
	case message.PropertyTags:
		return m.Tags != ""
	case message.PropertyKeys:
		return len(m.Keys) > 0
	case message.PropertyDelayLevel:
		return m.DelayLevel > 0
	case propertyTimerDeliverMs:
		return !m.DeliverAt.IsZero()
	case message.PropertyUniqKey:
		return true
	}
	return false
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
