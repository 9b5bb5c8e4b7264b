package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/internal/props"
	"github.com/apogeemq/apogee/store"
)

// Role is a broker's replication role (RocketMQ's brokerRole).
type Role int

// Roles.
const (
	AsyncMaster Role = iota // acknowledge after the local write
	SyncMaster              // acknowledge after a slave confirms (needs HA)
	Slave                   // follow a master
)

var roleNames = []string{"ASYNC_MASTER", "SYNC_MASTER", "SLAVE"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Options configure a Broker. Fields carry RocketMQ's broker.conf names (see Keys) so that an existing
// broker.conf works as is. The zero value of each field selects its default.
type Options struct {
	// BrokerClusterName is the cluster the broker registers in. Default "DefaultCluster".
	BrokerClusterName string
	// BrokerName names the broker group (master and slaves share it). Default "broker-a".
	BrokerName string
	// BrokerID is 0 for a master, > 0 for a slave. Default 0.
	BrokerID int64
	// BrokerRole is ASYNC_MASTER (default), SYNC_MASTER or SLAVE.
	BrokerRole Role
	// NamesrvAddr lists the NameServers to register with ("host:port;host:port"). Default none: the
	// broker runs unregistered (only useful in tests).
	NamesrvAddr []string
	// ListenAddr is the address to listen on. Default ":10911" (listenPort).
	ListenAddr string
	// BrokerIP1 is the IPv4 address announced to NameServers and clients and written as STOREHOST.
	// Default: the listen address's IP if it is a concrete IPv4 address, else the first non-loopback
	// IPv4 address of the host, else 127.0.0.1.
	BrokerIP1 string
	// StorePathRootDir is the data directory (commit log, queues, metadata). Default "./data".
	StorePathRootDir string
	// AutoCreateTopicEnable lets a send to an unknown topic create it from TBW102. Default true.
	AutoCreateTopicEnable *bool
	// AutoCreateSubscriptionGroup creates a group's config on first use. Default true.
	AutoCreateSubscriptionGroup *bool
	// DefaultTopicQueueNums is the queue count of TBW102 and so the upper bound of auto-created
	// topics. Default 8.
	DefaultTopicQueueNums int32
	// BrokerPermission gates all sends and pulls (6 = read and write). Default 6.
	BrokerPermission int32
	// RegisterNameServerPeriod is how often the broker re-registers. Default 30 s; RocketMQ clamps it to
	// [10 s, 60 s], Apogee only requires it to be positive so tests can run fast.
	RegisterNameServerPeriod time.Duration
	// RegisterBrokerTimeout bounds one registration call. Default 24 s (registerBrokerTimeoutMills).
	RegisterBrokerTimeout time.Duration
	// FlushConsumerOffsetInterval is how often consumer offsets are persisted. Default 5 s.
	FlushConsumerOffsetInterval time.Duration
	// ChannelExpiredTimeout drops clients silent for this long. Default 120 s.
	ChannelExpiredTimeout time.Duration
	// LongPollingEnable holds pulls that find nothing until a message arrives or their suspend timeout
	// passes. Default true; false holds them at most ShortPollingTime.
	LongPollingEnable *bool
	// ShortPollingTime caps the hold of a pull when long polling is off. Default 1 s.
	ShortPollingTime time.Duration
	// MessageDelayLevel lists the delay levels. Default "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m
	// 20m 30m 1h 2h".
	MessageDelayLevel string
	// RegionID is returned as MSG_REGION on sends. Default "DefaultRegion".
	RegionID string
	// TraceOn is returned as TRACE_ON on sends. Default true.
	TraceOn *bool

	// TransactionTimeout is how old an unresolved half message must be before it is checked back.
	// Default 6 s.
	TransactionTimeout time.Duration
	// TransactionCheckInterval is how often unresolved half messages are checked back. Default 30 s.
	TransactionCheckInterval time.Duration
	// TransactionCheckMax is how many check-backs a half message gets before it is parked in
	// TRANS_CHECK_MAX_TIME_TOPIC. Default 15.
	TransactionCheckMax int
	// TimerPrecision is the slot width of the timer wheel (timerPrecisionMs). Timers fire at their own
	// millisecond whatever it is; it bounds the memory of a loaded slot. Default 1 s. Fixed once the
	// wheel exists.
	TimerPrecision time.Duration
	// TimerMaxDelay is how far ahead a timer message may be due (timerMaxDelaySec). Default 72 h.
	TimerMaxDelay time.Duration
	// RejectTransactionMessage refuses transactional sends. Default false.
	RejectTransactionMessage *bool

	// Store configures the message store; its fields are set from the store keys of broker.conf
	// (flushDiskType, mappedFileSizeCommitLog, fileReservedTime, deleteWhen, maxMessageSize, ...).
	Store store.Options

	// Logger receives one line per significant event. Default: discard.
	Logger *slog.Logger
}

func boolPtr(b bool) *bool { return &b }

// isTrue reads an optional boolean option.
func isTrue(b *bool) bool { return b != nil && *b }

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.BrokerClusterName == "" {
		o.BrokerClusterName = "DefaultCluster"
	}
	if o.BrokerName == "" {
		o.BrokerName = "broker-a"
	}
	if o.ListenAddr == "" {
		o.ListenAddr = ":10911"
	}
	if o.StorePathRootDir == "" {
		o.StorePathRootDir = "./data"
	}
	if o.AutoCreateTopicEnable == nil {
		o.AutoCreateTopicEnable = boolPtr(true)
	}
	if o.AutoCreateSubscriptionGroup == nil {
		o.AutoCreateSubscriptionGroup = boolPtr(true)
	}
	if o.DefaultTopicQueueNums <= 0 {
		o.DefaultTopicQueueNums = 8
	}
	if o.BrokerPermission == 0 {
		o.BrokerPermission = 6
	}
	if o.RegisterNameServerPeriod <= 0 {
		o.RegisterNameServerPeriod = 30 * time.Second
	}
	if o.RegisterBrokerTimeout <= 0 {
		o.RegisterBrokerTimeout = 24 * time.Second
	}
	if o.FlushConsumerOffsetInterval <= 0 {
		o.FlushConsumerOffsetInterval = 5 * time.Second
	}
	if o.ChannelExpiredTimeout <= 0 {
		o.ChannelExpiredTimeout = 120 * time.Second
	}
	if o.LongPollingEnable == nil {
		o.LongPollingEnable = boolPtr(true)
	}
	if o.ShortPollingTime <= 0 {
		o.ShortPollingTime = time.Second
	}
	if o.MessageDelayLevel == "" {
		o.MessageDelayLevel = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
	}
	if o.RegionID == "" {
		o.RegionID = "DefaultRegion"
	}
	if o.TransactionTimeout <= 0 {
		o.TransactionTimeout = 6 * time.Second
	}
	if o.TransactionCheckInterval <= 0 {
		o.TransactionCheckInterval = 30 * time.Second
	}
	if o.TransactionCheckMax <= 0 {
		o.TransactionCheckMax = 15
	}
	if o.TimerPrecision <= 0 {
		o.TimerPrecision = time.Second
	}
	if o.TimerMaxDelay <= 0 {
		o.TimerMaxDelay = 72 * time.Hour
	}
	if o.RejectTransactionMessage == nil {
		o.RejectTransactionMessage = boolPtr(false)
	}
	if o.TraceOn == nil {
		o.TraceOn = boolPtr(true)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Store.Logger == nil {
		o.Store.Logger = o.Logger
	}
	o.Store.EnsureDefaults()
}

// Validate reports settings that cannot work. Call it after EnsureDefaults.
func (o *Options) Validate() error {
	var errs []error
	if o.BrokerID < 0 {
		errs = append(errs, fmt.Errorf("brokerId %d: must be 0 (master) or positive (slave)", o.BrokerID))
	}
	if o.BrokerRole == Slave && o.BrokerID == 0 {
		errs = append(errs, errors.New("brokerRole=SLAVE needs a brokerId > 0"))
	}
	if o.BrokerRole != Slave && o.BrokerID != 0 {
		errs = append(errs, fmt.Errorf("brokerId=%d needs brokerRole=SLAVE (a master has brokerId 0)", o.BrokerID))
	}
	if o.BrokerRole != AsyncMaster {
		errs = append(errs, fmt.Errorf("brokerRole=%s is not supported yet: replication is not implemented; use ASYNC_MASTER", o.BrokerRole))
	}
	if _, _, err := net.SplitHostPort(o.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %v", o.ListenAddr, err))
	}
	if o.BrokerIP1 != "" {
		if a, err := netip.ParseAddr(o.BrokerIP1); err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("brokerIP1 %q: must be an IPv4 address (the official clients decode IPv4 store hosts)", o.BrokerIP1))
		}
	}
	if o.BrokerPermission&^7 != 0 {
		errs = append(errs, fmt.Errorf("brokerPermission %d: must be a combination of 4 (read), 2 (write) and 1 (inherit)", o.BrokerPermission))
	}
	if _, err := parseDelayLevels(o.MessageDelayLevel); err != nil {
		errs = append(errs, err)
	}
	if err := o.Store.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseDelayLevels reads messageDelayLevel ("1s 5s 1m 2h 1d").
func parseDelayLevels(s string) ([]time.Duration, error) {
	var levels []time.Duration
	for _, f := range strings.Fields(s) {
		if len(f) < 2 {
			return nil, fmt.Errorf("messageDelayLevel %q: %q is not a number followed by s, m, h or d", s, f)
		}
		n, err := strconv.ParseInt(f[:len(f)-1], 10, 64)
		unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[f[len(f)-1]]
		if err != nil || n <= 0 || unit == 0 {
			return nil, fmt.Errorf("messageDelayLevel %q: %q is not a number followed by s, m, h or d", s, f)
		}
		levels = append(levels, time.Duration(n)*unit)
	}
	if len(levels) == 0 {
		return nil, fmt.Errorf("messageDelayLevel is empty")
	}
	return levels, nil
}

// key is one broker.conf setting: how to apply a value and how to print the current one.
type key struct {
	set func(o *Options, v string) error
	get func(o *Options) string
}

func intKey(dst func(o *Options) *int32) key {
	return key{
		set: func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 32)
			*dst(o) = int32(n)
			return err
		},
		get: func(o *Options) string { return strconv.Itoa(int(*dst(o))) },
	}
}

func boolKey(dst func(o *Options) **bool) key {
	return key{
		set: func(o *Options, v string) error {
			b, err := strconv.ParseBool(v)
			*dst(o) = &b
			return err
		},
		get: func(o *Options) string { return strconv.FormatBool(isTrue(*dst(o))) },
	}
}

// msKey is a duration given in milliseconds, RocketMQ's unit.
func msKey(dst func(o *Options) *time.Duration) key {
	return key{
		set: func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			*dst(o) = time.Duration(n) * time.Millisecond
			return err
		},
		get: func(o *Options) string { return strconv.FormatInt(dst(o).Milliseconds(), 10) },
	}
}

func stringKey(dst func(o *Options) *string) key {
	return key{
		set: func(o *Options, v string) error { *dst(o) = v; return nil },
		get: func(o *Options) string { return *dst(o) },
	}
}

// keys is the table of broker.conf keys Apogee understands.
var keys = map[string]key{
	"brokerClusterName": stringKey(func(o *Options) *string { return &o.BrokerClusterName }),
	"brokerName":        stringKey(func(o *Options) *string { return &o.BrokerName }),
	"brokerId": {
		set: func(o *Options, v string) error { n, err := strconv.ParseInt(v, 10, 64); o.BrokerID = n; return err },
		get: func(o *Options) string { return strconv.FormatInt(o.BrokerID, 10) },
	},
	"brokerRole": {
		set: func(o *Options, v string) error {
			i := slices.Index(roleNames, strings.ToUpper(v))
			if i < 0 {
				return fmt.Errorf("want one of %s", strings.Join(roleNames, ", "))
			}
			o.BrokerRole = Role(i)
			return nil
		},
		get: func(o *Options) string { return o.BrokerRole.String() },
	},
	"namesrvAddr": {
		set: func(o *Options, v string) error {
			o.NamesrvAddr = nil
			for _, a := range strings.Split(v, ";") {
				if a = strings.TrimSpace(a); a != "" {
					if _, _, err := net.SplitHostPort(a); err != nil {
						return err
					}
					o.NamesrvAddr = append(o.NamesrvAddr, a)
				}
			}
			return nil
		},
		get: func(o *Options) string { return strings.Join(o.NamesrvAddr, ";") },
	},
	"listenPort": {
		set: func(o *Options, v string) error {
			port, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return err
			}
			host := ""
			if h, _, err := net.SplitHostPort(o.ListenAddr); err == nil {
				host = h
			}
			o.ListenAddr = net.JoinHostPort(host, strconv.FormatUint(port, 10))
			return nil
		},
		get: func(o *Options) string {
			_, p, _ := net.SplitHostPort(o.ListenAddr)
			return p
		},
	},
	"brokerIP1":                   stringKey(func(o *Options) *string { return &o.BrokerIP1 }),
	"storePathRootDir":            stringKey(func(o *Options) *string { return &o.StorePathRootDir }),
	"autoCreateTopicEnable":       boolKey(func(o *Options) **bool { return &o.AutoCreateTopicEnable }),
	"autoCreateSubscriptionGroup": boolKey(func(o *Options) **bool { return &o.AutoCreateSubscriptionGroup }),
	"longPollingEnable":           boolKey(func(o *Options) **bool { return &o.LongPollingEnable }),
	"traceOn":                     boolKey(func(o *Options) **bool { return &o.TraceOn }),
	"defaultTopicQueueNums":       intKey(func(o *Options) *int32 { return &o.DefaultTopicQueueNums }),
	"brokerPermission":            intKey(func(o *Options) *int32 { return &o.BrokerPermission }),
	"registerNameServerPeriod":    msKey(func(o *Options) *time.Duration { return &o.RegisterNameServerPeriod }),
	"registerBrokerTimeoutMills":  msKey(func(o *Options) *time.Duration { return &o.RegisterBrokerTimeout }),
	"flushConsumerOffsetInterval": msKey(func(o *Options) *time.Duration { return &o.FlushConsumerOffsetInterval }),
	"channelExpiredTimeout":       msKey(func(o *Options) *time.Duration { return &o.ChannelExpiredTimeout }),
	"shortPollingTimeMills":       msKey(func(o *Options) *time.Duration { return &o.ShortPollingTime }),
	"messageDelayLevel":           stringKey(func(o *Options) *string { return &o.MessageDelayLevel }),
	"regionId":                    stringKey(func(o *Options) *string { return &o.RegionID }),
	"transactionTimeOut":          msKey(func(o *Options) *time.Duration { return &o.TransactionTimeout }),
	"transactionCheckInterval":    msKey(func(o *Options) *time.Duration { return &o.TransactionCheckInterval }),
	"transactionCheckMax": {
		set: func(o *Options, v string) error { n, err := strconv.Atoi(v); o.TransactionCheckMax = n; return err },
		get: func(o *Options) string { return strconv.Itoa(o.TransactionCheckMax) },
	},
	"rejectTransactionMessage": boolKey(func(o *Options) **bool { return &o.RejectTransactionMessage }),
	"timerPrecisionMs":         msKey(func(o *Options) *time.Duration { return &o.TimerPrecision }),
	"timerMaxDelaySec": {
		set: func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			o.TimerMaxDelay = time.Duration(n) * time.Second
			return err
		},
		get: func(o *Options) string { return strconv.FormatInt(int64(o.TimerMaxDelay/time.Second), 10) },
	},
}

// aliases are older spellings RocketMQ still accepts.
var aliases = map[string]string{
	"mapedFileSizeCommitLog":    "mappedFileSizeCommitLog",
	"mapedFileSizeConsumeQueue": "mappedFileSizeConsumeQueue",
}

// ignoredKeys are RocketMQ settings that have no meaning for Apogee (JVM thread pools and the like):
// accepted so an existing broker.conf loads, and reported once at debug level.
var ignoredKeys = map[string]bool{
	"sendMessageThreadPoolNums": true, "pullMessageThreadPoolNums": true, "queryMessageThreadPoolNums": true,
	"adminBrokerThreadPoolNums": true, "clientManageThreadPoolNums": true, "consumerManageThreadPoolNums": true,
	"useReentrantLockWhenPutMessage": true, "waitTimeMillsInSendQueue": true, "transientStorePoolEnable": true,
	"warmMapedFileEnable": true, "osPageCacheBusyTimeOutMills": true, "storePathCommitLog": true,
	"storePathConsumeQueue": true, "storePathIndex": true, "storeCheckpoint": true, "abortFile": true,
	"brokerIP2": true, "haListenPort": true, "enableControllerMode": true, "controllerAddr": true,
}

// Apply sets options from broker.conf properties text. It returns the keys it does not know, so the
// caller can report them; a known key with a bad value is an error naming the key.
func (o *Options) Apply(text string) (unknown []string, err error) {
	kv, err := props.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	return o.ApplyMap(kv)
}

// ApplyMap is Apply for parsed properties.
func (o *Options) ApplyMap(kv map[string]string) (unknown []string, err error) {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(kv)) {
		v := kv[name]
		canonical := name
		if a, ok := aliases[name]; ok {
			canonical = a
		}
		if k, ok := keys[canonical]; ok {
			if err := k.set(o, v); err != nil {
				errs = append(errs, fmt.Errorf("broker config: %s=%q: %v", name, v, err))
			}
			continue
		}
		known, err := o.Store.Set(canonical, v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("broker config: %s=%q: %v", name, v, err))
		case known, ignoredKeys[name]:
		default:
			unknown = append(unknown, name)
		}
	}
	return unknown, errors.Join(errs...)
}

// String renders the options, the store's included, as broker.conf text; Apply of the result
// restores them.
func (o *Options) String() string {
	kv, _ := props.Parse(o.Store.String())
	for name, k := range keys {
		kv[name] = k.get(o)
	}
	return props.Format(kv)
}
