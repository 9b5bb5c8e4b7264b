package timer

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RocketMQ 5 names for timer messages (MessageConst, TimerMessageStore).
const (
	// PropertyDelaySec is a delay in seconds from the time the broker
	// receives the message. It wins over the other two.
	PropertyDelaySec = "TIMER_DELAY_SEC"
	// PropertyDelayMs is a delay in milliseconds; it wins over
	// PropertyDeliverMs.
	PropertyDelayMs = "TIMER_DELAY_MS"
	// PropertyDeliverMs is an absolute delivery time in Unix ms.
	PropertyDeliverMs = "TIMER_DELIVER_MS"
	// PropertyOutMs is set by the broker on the stored timer message to
	// the delivery time it computed (Unix ms).
	PropertyOutMs = "TIMER_OUT_MS"
	// Topic is the system topic timer messages are stored in until due.
	Topic = "rmq_sys_wheel_timer"
)

// ErrIllegal is returned by DeliverTime for a property that is not a
// number or a time beyond the maximum delay (RocketMQ answers
// WHEEL_TIMER_MSG_ILLEGAL).
var ErrIllegal = errors.New("timer: illegal timer message")

// DeliverTime computes a timer message's delivery time from its
// properties the way RocketMQ 5 does: TIMER_DELAY_SEC, else TIMER_DELAY_MS
// (both relative to now), else TIMER_DELIVER_MS; get returns "" for a
// missing property. isTimer is false when no property is set or the time
// is not after now (RocketMQ then stores the message as a normal one). A
// time more than maxDelay ahead is ErrIllegal. Unlike RocketMQ, which
// rounds the time down to its 1 s precision and so may deliver up to a
// second early, the millisecond is kept.
func DeliverTime(get func(name string) string, now func() time.Time, maxDelay time.Duration) (deliverAt time.Time, isTimer bool, err error) {
	var ms int64
	delaySec, delayMs, deliverMs := get(PropertyDelaySec), get(PropertyDelayMs), get(PropertyDeliverMs)
	if delaySec == "" && delayMs == "" && deliverMs == "" {
		return time.Time{}, false, nil // nearly every message: no reading of the clock
	}
	nowMs := now().UnixMilli()
	switch {
	case delaySec != "":
		sec, err := strconv.ParseInt(delaySec, 10, 64)
		if err != nil || sec > maxDelay.Milliseconds()/1000+1 {
			return time.Time{}, false, fmt.Errorf("%w: %s=%q", ErrIllegal, PropertyDelaySec, delaySec)
		}
		ms = nowMs + sec*1000
	case delayMs != "":
		d, err := strconv.ParseInt(delayMs, 10, 64)
		if err != nil || d > maxDelay.Milliseconds()+1 {
			return time.Time{}, false, fmt.Errorf("%w: %s=%q", ErrIllegal, PropertyDelayMs, delayMs)
		}
		ms = nowMs + d
	default: // deliverMs
		ms, err = strconv.ParseInt(deliverMs, 10, 64)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("%w: %s=%q", ErrIllegal, PropertyDeliverMs, deliverMs)
		}
	}
	if ms <= nowMs {
		return time.UnixMilli(ms), false, nil
	}
	if ms-nowMs > maxDelay.Milliseconds() {
		return time.Time{}, false, fmt.Errorf("%w: delivery %d ms ahead, more than %v", ErrIllegal, ms-nowMs, maxDelay)
	}
	return time.UnixMilli(ms), true, nil
}
