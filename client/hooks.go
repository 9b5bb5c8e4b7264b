package client

import "time"

// Hook receives client events for metrics or tracing. A hook may implement any of the hook
// interfaces below (SendHook, ConsumeHook); the client calls the ones it implements, synchronously on
// the goroutine of the event, so hooks must be fast and safe for concurrent use.
type Hook any

// SendHook is told about every send attempt: its topic, the broker it went to ("" when no broker
// could be chosen), how long it took, and its error (nil on success).
type SendHook interface {
	OnSend(topic, broker string, latency time.Duration, err error)
}

// ConsumeHook is told about every message a PushConsumer's handler handled: its queue, how long the
// handler took, and what it returned.
type ConsumeHook interface {
	OnConsume(queue MessageQueue, latency time.Duration, err error)
}

// WithHooks adds hooks for metrics and tracing. Default: none.
func WithHooks(hooks ...Hook) Opt {
	return commonOpt(func(c *commonCfg) { c.hooks = append(c.hooks, hooks...) })
}

func (c *commonCfg) onSend(topic, broker string, latency time.Duration, err error) {
	for _, h := range c.hooks {
		if sh, ok := h.(SendHook); ok {
			sh.OnSend(topic, broker, latency, err)
		}
	}
}

func (c *commonCfg) onConsume(mq MessageQueue, latency time.Duration, err error) {
	for _, h := range c.hooks {
		if ch, ok := h.(ConsumeHook); ok {
			ch.OnConsume(mq, latency, err)
		}
	}
}
