package client

import (
	"log/slog"
	"time"
)

// Opt is an option every kind of client accepts (Producer, Admin, PullConsumer).
type Opt interface {
	ProducerOpt
	AdminOpt
	PullConsumerOpt
	PushConsumerOpt
}

// ProducerOpt configures a Producer. Every Opt is a ProducerOpt.
type ProducerOpt interface{ applyProducer(*producerCfg) }

// AdminOpt configures an Admin. Every Opt is an AdminOpt.
type AdminOpt interface{ applyAdmin(*commonCfg) }

// PullConsumerOpt configures a PullConsumer. Every Opt and ConsumerOpt is a PullConsumerOpt.
type PullConsumerOpt interface{ applyPullConsumer(*pullCfg) }

// PushConsumerOpt configures a PushConsumer. Every Opt and ConsumerOpt is a PushConsumerOpt.
type PushConsumerOpt interface{ applyPushConsumer(*pushCfg) }

// commonCfg is what every client shares.
type commonCfg struct {
	nameServers       []string
	logger            *slog.Logger
	routeRefresh      time.Duration
	heartbeatInterval time.Duration
	requestTimeout    time.Duration
	dialTimeout       time.Duration
	instanceName      string
	hooks             []Hook
}

func defaultCommon() commonCfg {
	return commonCfg{
		logger:            slog.New(slog.DiscardHandler),
		routeRefresh:      30 * time.Second,
		heartbeatInterval: 30 * time.Second,
		requestTimeout:    3 * time.Second,
		dialTimeout:       3 * time.Second,
	}
}

type commonOpt func(*commonCfg)

func (o commonOpt) applyProducer(c *producerCfg) { o(&c.common) }
func (o commonOpt) applyAdmin(c *commonCfg)      { o(c) }
func (o commonOpt) applyPullConsumer(c *pullCfg) { o(&c.common) }
func (o commonOpt) applyPushConsumer(c *pushCfg) { o(&c.common) }

// WithNameServers sets the NameServer addresses (host:port) routes are fetched from; they are tried in
// turn. Default: none, which makes every call that needs a route fail with ErrNoNameServer.
func WithNameServers(addrs ...string) Opt {
	return commonOpt(func(c *commonCfg) { c.nameServers = append([]string(nil), addrs...) })
}

// WithLogger sets the logger for connection and route events (never one line per message).
// Default: discard. nil also means discard.
func WithLogger(l *slog.Logger) Opt {
	return commonOpt(func(c *commonCfg) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithRouteRefresh sets how often the routes of the topics in use are fetched again from the
// NameServers (RocketMQ's pollNameServerInterval). A failed send refreshes its topic at once whatever
// this is. Default 30 s; zero or negative keeps the default.
func WithRouteRefresh(d time.Duration) Opt {
	return commonOpt(func(c *commonCfg) { setPositive(&c.routeRefresh, d) })
}

// WithHeartbeatInterval sets how often the client announces its groups to the brokers it knows
// (RocketMQ's heartbeatBrokerInterval). Default 30 s; zero or negative keeps the default.
func WithHeartbeatInterval(d time.Duration) Opt {
	return commonOpt(func(c *commonCfg) { setPositive(&c.heartbeatInterval, d) })
}

// WithRequestTimeout bounds a single request (a route lookup, an admin call, one send attempt) when the
// caller's context has no earlier deadline (RocketMQ's mqClientApiTimeout). Default 3 s; zero or
// negative keeps the default.
func WithRequestTimeout(d time.Duration) Opt {
	return commonOpt(func(c *commonCfg) { setPositive(&c.requestTimeout, d) })
}

// WithDialTimeout bounds connecting to a server. Default 3 s; zero or negative keeps the default.
func WithDialTimeout(d time.Duration) Opt {
	return commonOpt(func(c *commonCfg) { setPositive(&c.dialTimeout, d) })
}

// WithInstanceName sets the instance part of the client id (ip@instance), which brokers use to tell
// clients apart. Default: the process id and a per-client counter, so two clients of one process
// never share an id.
func WithInstanceName(name string) Opt {
	return commonOpt(func(c *commonCfg) { c.instanceName = name })
}

// setPositive sets *dst to v when v is positive: options whose zero or negative value keeps the default.
func setPositive[T int | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}
