package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
	"github.com/apogeemq/apogee/timer"
)

// Broker is a running broker replica.
type Broker struct {
	opts        Options
	log         *slog.Logger
	addr        string         // ip:port announced to NameServers and clients
	storeHost   netip.AddrPort // the same, as written into messages
	delayLevels []time.Duration

	store   *store.Store
	topics  *topicTable
	groups  *groupTable
	offsets *offsetTable
	clients *clientRegistry
	locks   *queueLocks
	waiters *pullWaiters
	sched   *scheduler
	txns    *transactions
	timers  *timers

	rpc      *transport.Server
	nsClient *transport.Client

	started     time.Time
	registerNow chan struct{} // cap 1: a topic changed, register at once
	stop        chan struct{}
	stopOnce    sync.Once
	loops       sync.WaitGroup
	served      chan error
}

// Open opens the broker's store and metadata under opts.StorePathRootDir, starts serving on ln and
// registers with the NameServers. The broker runs until Shutdown.
func Open(opts Options, ln net.Listener) (*Broker, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	levels, _ := parseDelayLevels(opts.MessageDelayLevel)
	b := &Broker{
		opts:        opts,
		log:         opts.Logger,
		started:     time.Now(),
		delayLevels: levels,
		clients:     newClientRegistry(),
		locks:       newQueueLocks(),
		waiters:     newPullWaiters(),
		registerNow: make(chan struct{}, 1),
		stop:        make(chan struct{}),
		served:      make(chan error, 1),
	}
	host, err := announcedIP(opts.BrokerIP1, ln.Addr())
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	b.storeHost = netip.AddrPortFrom(host, uint16(port))
	b.addr = b.storeHost.String()

	root := opts.StorePathRootDir
	if err := os.MkdirAll(filepath.Join(root, "config"), 0o755); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if b.topics, err = openTopicTable(filepath.Join(root, "config", "topics.json"), &opts); err != nil {
		return nil, err
	}
	if b.groups, err = openGroupTable(filepath.Join(root, "config", "subscriptionGroup.json"), isTrue(opts.AutoCreateSubscriptionGroup)); err != nil {
		return nil, err
	}
	if b.offsets, err = openOffsetTable(filepath.Join(root, "config", "consumerOffset.json")); err != nil {
		return nil, err
	}
	if b.sched, err = openScheduler(b, filepath.Join(root, "config", "delayOffset.json")); err != nil {
		return nil, err
	}

	sopts := opts.Store
	sopts.StoreHost = b.storeHost
	userArrived := sopts.Listener.MessageArrived
	sopts.Listener.MessageArrived = func(topic string, queueID int32, maxOffset int64) {
		b.waiters.wake(topic, queueID)
		switch topic {
		case topicSchedule:
			b.sched.arrived(queueID)
		case timer.Topic:
			b.timers.arrived()
		}
		if userArrived != nil {
			userArrived(topic, queueID, maxOffset)
		}
	}
	if b.store, err = store.Open(root, &sopts); err != nil {
		return nil, fmt.Errorf("broker: open store: %w", err)
	}
	if b.timers, err = openTimers(b, root); err != nil {
		b.store.Close()
		return nil, err
	}
	if err := b.timers.recover(); err != nil {
		b.timers.wheel.Close()
		b.store.Close()
		return nil, fmt.Errorf("broker: recover timer delivery: %w", err)
	}
	if err := b.sched.recover(); err != nil {
		b.store.Close()
		return nil, fmt.Errorf("broker: recover delay progress: %w", err)
	}
	b.txns = newTransactions(b)
	if err := b.txns.load(); err != nil {
		b.store.Close()
		return nil, fmt.Errorf("broker: load transactions: %w", err)
	}
	if info := b.store.Recovery(); !info.Clean {
		b.log.Warn("recovered after an unclean stop", "revalidated_records", info.Records,
			"from", info.From, "to", info.To, "torn_tail", fmt.Sprint(info.TornTail), "took", info.Duration)
	}

	b.nsClient = transport.NewClient(transport.ClientOptions{Logger: b.log})
	mux := transport.NewMux()
	b.routes(mux)
	b.rpc = transport.NewServer(transport.Options{Handler: mux, Logger: b.log, OnConnClose: b.connClosed,
		MaxFrameLength: max(remoting.DefaultMaxFrameLength, 2*opts.Store.MaxMessageSize)})
	go func() { b.served <- b.rpc.Serve(ln) }()

	// Register before announcing, so that "serving" means clients can already find the broker's routes.
	b.registerAll()
	b.startLoop(b.registrationLoop)
	b.startLoop(b.offsetFlushLoop)
	b.startLoop(b.clientExpiryLoop)
	b.sched.start()
	b.startLoop(b.txns.checkLoop)
	b.startLoop(b.timers.enqueueLoop)
	b.startLoop(b.timers.runLoop)
	b.log.Info("broker serving", "addr", b.addr, "cluster", opts.BrokerClusterName, "broker", opts.BrokerName,
		"id", opts.BrokerID, "flush", opts.Store.FlushDiskType, "namesrv", opts.NamesrvAddr)
	return b, nil
}

// announcedIP picks the IPv4 address clients are told to use.
func announcedIP(configured string, listen net.Addr) (netip.Addr, error) {
	if configured != "" {
		return netip.ParseAddr(configured)
	}
	if ta, ok := listen.(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok && a.Unmap().Is4() && !a.IsUnspecified() {
			return a.Unmap(), nil
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range addrs {
			if ipn, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(ipn.IP); ok && a.Unmap().Is4() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
					return a.Unmap(), nil
				}
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
}

// Addr returns the address the broker announces (brokerIP1:port).
func (b *Broker) Addr() string { return b.addr }

// Store returns the message store, for embedding and tests.
func (b *Broker) Store() *store.Store { return b.store }

func (b *Broker) startLoop(f func()) {
	b.loops.Add(1)
	go func() {
		defer b.loops.Done()
		f()
	}()
}

// Shutdown unregisters from the NameServers, stops serving (requests in flight finish until ctx
// ends), persists consumer offsets and closes the store.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() { close(b.stop) })
	b.loops.Wait()
	b.unregisterAll(ctx)
	var errs []error
	if err := b.rpc.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := <-b.served; err != nil && !errors.Is(err, transport.ErrServerClosed) {
		errs = append(errs, err)
	}
	if err := b.offsets.persist(); err != nil {
		errs = append(errs, err)
	}
	if err := b.timers.wheel.Close(); err != nil {
		errs = append(errs, fmt.Errorf("broker: close timer wheel: %w", err))
	}
	if err := b.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("broker: close store: %w", err))
	}
	b.nsClient.Close()
	b.log.Info("broker stopped", "addr", b.addr)
	return errors.Join(errs...)
}

func (b *Broker) connClosed(c *transport.Conn) {
	for _, group := range b.clients.connClosed(c) {
		b.log.Info("consumer left (connection closed)", "group", group, "remote", c.RemoteAddr().String())
		b.notifyIDsChanged(group)
	}
}

// every runs f on each tick of interval, and whenever kick delivers (a nil kick never does), until
// the broker stops.
func (b *Broker) every(interval time.Duration, kick <-chan struct{}, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			f(now)
		case <-kick:
			f(time.Now())
		}
	}
}

func (b *Broker) clientExpiryLoop() {
	b.every(10*time.Second, nil, func(now time.Time) {
		for _, group := range b.clients.expire(now.Add(-b.opts.ChannelExpiredTimeout)) {
			b.log.Info("consumer expired (no heartbeat)", "group", group, "timeout", b.opts.ChannelExpiredTimeout)
			b.notifyIDsChanged(group)
		}
	})
}

func (b *Broker) offsetFlushLoop() {
	b.every(b.opts.FlushConsumerOffsetInterval, nil, func(time.Time) {
		if err := b.offsets.persist(); err != nil {
			b.log.Error("persisting consumer offsets failed", "err", err)
		}
	})
}

// triggerRegister asks the registration loop to register now (after a topic change).
func (b *Broker) triggerRegister() {
	select {
	case b.registerNow <- struct{}{}:
	default:
	}
}

func (b *Broker) registrationLoop() {
	b.every(b.opts.RegisterNameServerPeriod, b.registerNow, func(time.Time) { b.registerAll() })
}

// registerAll registers with every NameServer in parallel.
func (b *Broker) registerAll() {
	if len(b.opts.NamesrvAddr) == 0 {
		return
	}
	w := b.topics.wrapper()
	if b.opts.BrokerPermission&body.PermWrite == 0 || b.opts.BrokerPermission&body.PermRead == 0 {
		for _, tc := range w.TopicConfigTable {
			tc.Perm &= b.opts.BrokerPermission
		}
	}
	data := body.EncodeRegisterBroker(&body.RegisterBrokerBody{TopicConfigSerializeWrapper: *w})
	ext := remoting.Fields{
		"brokerName", b.opts.BrokerName,
		"brokerAddr", b.addr,
		"clusterName", b.opts.BrokerClusterName,
		"haServerAddr", b.addr,
		"brokerId", strconv.FormatInt(b.opts.BrokerID, 10),
		"compressed", "false",
		"bodyCrc32", strconv.Itoa(int(body.BodyCRC32(data))),
	}
	var wg sync.WaitGroup
	for _, ns := range b.opts.NamesrvAddr {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), b.opts.RegisterBrokerTimeout)
			defer cancel()
			resp, err := b.nsClient.Invoke(ctx, ns, remoting.NewRequest(code.RegisterBroker, ext, data))
			switch {
			case err != nil:
				b.log.Warn("register with NameServer failed", "namesrv", ns, "err", err)
			case resp.ResponseCode() != code.Success:
				b.log.Warn("NameServer refused registration", "namesrv", ns, "code", resp.ResponseCode(), "remark", resp.Remark)
			}
		}()
	}
	wg.Wait()
}

func (b *Broker) unregisterAll(ctx context.Context) {
	for _, ns := range b.opts.NamesrvAddr {
		req := remoting.NewRequest(code.UnregisterBroker, remoting.Fields{
			"brokerName", b.opts.BrokerName,
			"brokerAddr", b.addr,
			"clusterName", b.opts.BrokerClusterName,
			"brokerId", strconv.FormatInt(b.opts.BrokerID, 10),
		}, nil)
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := b.nsClient.Invoke(cctx, ns, req); err != nil {
			b.log.Warn("unregister from NameServer failed", "namesrv", ns, "err", err)
		}
		cancel()
	}
}
