package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
)

// FlushDiskType says when an append is acknowledged.
type FlushDiskType int

const (
	// AsyncFlush acknowledges an append once its bytes are in the page
	// cache (they survive a process crash, not a power cut); a background
	// flusher fsyncs every FlushInterval.
	AsyncFlush FlushDiskType = iota
	// SyncFlush acknowledges an append only after an fsync covering it
	// (group commit: concurrent appends share one fsync).
	SyncFlush
)

func (t FlushDiskType) String() string {
	switch t {
	case AsyncFlush:
		return "ASYNC_FLUSH"
	case SyncFlush:
		return "SYNC_FLUSH"
	}
	return "FlushDiskType(" + strconv.Itoa(int(t)) + ")"
}

// Options configure a Store. The zero value of every field means its
// default, set by EnsureDefaults; defaults are RocketMQ's
// (FEATURES.md §4.6) unless said otherwise.
type Options struct {
	// FS is the filesystem. Default vfs.Default.
	FS vfs.FS
	// SegmentSize is the size of a commit-log segment. Default 1 GiB.
	// It is fixed for a store's lifetime (segment names depend on it).
	SegmentSize int64
	// CQEntriesPerFile is the number of 20-byte entries in one
	// consume-queue file. Default 300,000.
	CQEntriesPerFile int
	// FlushDiskType: AsyncFlush (the default) or SyncFlush.
	FlushDiskType FlushDiskType
	// FlushInterval is the async flusher's period. Default 500 ms.
	FlushInterval time.Duration
	// FlushLeastBytes: the async flusher skips a tick while fewer bytes
	// than this are unflushed (unless FlushThoroughInterval has passed).
	// Default 16 KiB (4 pages). Negative means always flush.
	FlushLeastBytes int64
	// FlushThoroughInterval forces an async flush of any unflushed bytes.
	// Default 10 s.
	FlushThoroughInterval time.Duration
	// SyncFlushTimeout bounds the wait of a SyncFlush append; on expiry it
	// returns FlushDiskTimeout. Default 5 s.
	SyncFlushTimeout time.Duration
	// CheckpointInterval is how often consume queues and the index are
	// fsynced and the checkpoint rewritten. Default 1 s.
	CheckpointInterval time.Duration
	// FileReservedTime is how long a commit-log segment is kept after its
	// last write. Default 72 h.
	FileReservedTime time.Duration
	// DeleteWhen lists the hours of the day (local time, "04" or "04;05")
	// at which expired segments are deleted. Default "04".
	DeleteWhen string
	// CleanInterval is how often disk usage is checked and expired files
	// deleted. Default 10 s.
	CleanInterval time.Duration
	// DiskMaxUsedRatio: above it, expired segments are deleted at any
	// hour. Default 0.75.
	DiskMaxUsedRatio float64
	// DiskForceCleanRatio: above it, the oldest segments are deleted even
	// if not expired. Default 0.85.
	DiskForceCleanRatio float64
	// DiskFullRatio: at or above it, appends are refused with DiskFull
	// until usage drops again. Default 0.90.
	DiskFullRatio float64
	// DeleteFilesBatchMax caps the segments deleted per clean. Default 10.
	DeleteFilesBatchMax int
	// MaxMessageSize caps a message body. Default 4 MiB.
	MaxMessageSize int
	// DisableIndex turns the key index off. Default false (index on).
	DisableIndex bool
	// IndexSlots is the hash slot count of an index file. Default 5,000,000.
	IndexSlots int
	// IndexEntries is the entry capacity of an index file. Default 20,000,000.
	IndexEntries int
	// MaxTransferBytes and MaxTransferCount bound one GetMessages answer
	// after its first message. Defaults 256 KiB and 32.
	MaxTransferBytes int
	MaxTransferCount int
	// StoreHost is written as STOREHOST into messages that have none.
	// Default 127.0.0.1:10911 (brokers set their client-facing address).
	StoreHost netip.AddrPort
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives significant events. Default: discard.
	Logger *slog.Logger
	// Listener receives store events. Default: none.
	Listener EventListener
}

// EventListener is a set of optional callbacks. They are called from store
// goroutines and must not block or call back into the store's write path.
type EventListener struct {
	// MessageArrived is called by the dispatcher after entries of a queue
	// become readable; maxOffset is the queue's new max offset. Brokers use
	// it to wake long-polling pulls. It is not called for the records
	// recovery redispatches while Open runs.
	MessageArrived func(topic string, queueID int32, maxOffset int64)
	// WritesStopped is called once when an I/O error stops all writes.
	WritesStopped func(err error)
}

// EnsureDefaults fills zero fields with defaults and returns o (a new
// Options if o is nil).
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	setDefault(&o.SegmentSize, 1<<30)
	setDefault(&o.CQEntriesPerFile, 300_000)
	setDefault(&o.FlushInterval, 500*time.Millisecond)
	setDefault(&o.FlushLeastBytes, 16<<10)
	setDefault(&o.FlushThoroughInterval, 10*time.Second)
	setDefault(&o.SyncFlushTimeout, 5*time.Second)
	setDefault(&o.CheckpointInterval, time.Second)
	setDefault(&o.FileReservedTime, 72*time.Hour)
	setDefault(&o.DeleteWhen, "04")
	setDefault(&o.CleanInterval, 10*time.Second)
	setDefault(&o.DiskMaxUsedRatio, 0.75)
	setDefault(&o.DiskForceCleanRatio, 0.85)
	setDefault(&o.DiskFullRatio, 0.90)
	setDefault(&o.DeleteFilesBatchMax, 10)
	setDefault(&o.MaxMessageSize, 4<<20)
	setDefault(&o.IndexSlots, 5_000_000)
	setDefault(&o.IndexEntries, 20_000_000)
	setDefault(&o.MaxTransferBytes, 256<<10)
	setDefault(&o.MaxTransferCount, 32)
	if !o.StoreHost.IsValid() {
		o.StoreHost = netip.MustParseAddrPort("127.0.0.1:10911")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate reports options that cannot work. Call it after EnsureDefaults.
func (o *Options) Validate() error {
	var errs []error
	if o.SegmentSize < 4096 || o.SegmentSize > 1<<31-1 {
		errs = append(errs, fmt.Errorf("SegmentSize %d not in [4096, 2^31)", o.SegmentSize))
	}
	if o.CQEntriesPerFile < 1 {
		errs = append(errs, fmt.Errorf("CQEntriesPerFile %d < 1", o.CQEntriesPerFile))
	}
	if o.FlushDiskType != AsyncFlush && o.FlushDiskType != SyncFlush {
		errs = append(errs, fmt.Errorf("unknown FlushDiskType %d", o.FlushDiskType))
	}
	if _, err := parseDeleteWhen(o.DeleteWhen); err != nil {
		errs = append(errs, err)
	}
	if !(o.DiskMaxUsedRatio <= o.DiskForceCleanRatio && o.DiskForceCleanRatio <= o.DiskFullRatio && o.DiskFullRatio <= 1) {
		errs = append(errs, fmt.Errorf("disk ratios must satisfy max used %.2f <= force clean %.2f <= full %.2f <= 1",
			o.DiskMaxUsedRatio, o.DiskForceCleanRatio, o.DiskFullRatio))
	}
	if int64(o.MaxMessageSize)+1024 > o.SegmentSize {
		errs = append(errs, fmt.Errorf("MaxMessageSize %d does not fit a %d-byte segment", o.MaxMessageSize, o.SegmentSize))
	}
	if o.IndexSlots < 1 || o.IndexEntries < 1 {
		errs = append(errs, fmt.Errorf("IndexSlots %d and IndexEntries %d must be positive", o.IndexSlots, o.IndexEntries))
	}
	if len(errs) > 0 {
		return fmt.Errorf("store: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

// String renders the options as RocketMQ broker.conf lines (key=value),
// which Parse reads back.
func (o *Options) String() string {
	var b strings.Builder
	for _, k := range optionKeys {
		fmt.Fprintf(&b, "%s=%s\n", k.name, k.get(o))
	}
	return b.String()
}

// Parse sets options from RocketMQ broker.conf lines (key=value; blank
// lines and lines starting with # are skipped). Unknown keys are an error.
func (o *Options) Parse(text string) error {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		known, err := o.Set(strings.TrimSpace(key), strings.TrimSpace(value))
		if err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("store: unknown option %q", key)
		}
	}
	return nil
}

// Set sets the option a RocketMQ broker.conf key names. It returns
// known=false for keys that are not store options (so a config loader can
// offer them to other components and report the rest).
func (o *Options) Set(key, value string) (known bool, err error) {
	for _, k := range optionKeys {
		if k.name == key {
			if err := k.set(o, value); err != nil {
				return true, fmt.Errorf("store: option %s=%q: %w", key, value, err)
			}
			return true, nil
		}
	}
	return false, nil
}

type optionKey struct {
	name string
	get  func(*Options) string
	set  func(*Options, string) error
}

func intKey[T ~int | ~int64](name string, field func(*Options) *T, unit T) optionKey {
	return optionKey{name,
		func(o *Options) string { return strconv.FormatInt(int64(*field(o)/unit), 10) },
		func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			*field(o) = T(n) * unit
			return err
		}}
}

func durationKey(name string, field func(*Options) *time.Duration, unit time.Duration) optionKey {
	return intKey(name, field, unit)
}

func ratioKey(name string, field func(*Options) *float64) optionKey {
	return optionKey{name,
		func(o *Options) string { return strconv.Itoa(int(*field(o)*100 + 0.5)) },
		func(o *Options, v string) error {
			n, err := strconv.Atoi(v)
			*field(o) = float64(n) / 100
			return err
		}}
}

// optionKeys maps broker.conf keys (MessageStoreConfig names) to Options.
var optionKeys = []optionKey{
	intKey("mappedFileSizeCommitLog", func(o *Options) *int64 { return &o.SegmentSize }, 1),
	{"mappedFileSizeConsumeQueue", // bytes in broker.conf, entries here
		func(o *Options) string { return strconv.Itoa(o.CQEntriesPerFile * 20) },
		func(o *Options, v string) error {
			n, err := strconv.Atoi(v)
			o.CQEntriesPerFile = n / 20
			return err
		}},
	{"flushDiskType",
		func(o *Options) string { return o.FlushDiskType.String() },
		func(o *Options, v string) error {
			switch v {
			case "ASYNC_FLUSH":
				o.FlushDiskType = AsyncFlush
			case "SYNC_FLUSH":
				o.FlushDiskType = SyncFlush
			default:
				return errors.New("want ASYNC_FLUSH or SYNC_FLUSH")
			}
			return nil
		}},
	durationKey("flushIntervalCommitLog", func(o *Options) *time.Duration { return &o.FlushInterval }, time.Millisecond),
	intKey("flushCommitLogLeastPages", func(o *Options) *int64 { return &o.FlushLeastBytes }, 4096),
	durationKey("flushCommitLogThoroughInterval", func(o *Options) *time.Duration { return &o.FlushThoroughInterval }, time.Millisecond),
	durationKey("syncFlushTimeout", func(o *Options) *time.Duration { return &o.SyncFlushTimeout }, time.Millisecond),
	durationKey("flushIntervalConsumeQueue", func(o *Options) *time.Duration { return &o.CheckpointInterval }, time.Millisecond),
	durationKey("fileReservedTime", func(o *Options) *time.Duration { return &o.FileReservedTime }, time.Hour),
	{"deleteWhen",
		func(o *Options) string { return o.DeleteWhen },
		func(o *Options, v string) error { o.DeleteWhen = v; _, err := parseDeleteWhen(v); return err }},
	durationKey("cleanResourceInterval", func(o *Options) *time.Duration { return &o.CleanInterval }, time.Millisecond),
	ratioKey("diskMaxUsedSpaceRatio", func(o *Options) *float64 { return &o.DiskMaxUsedRatio }),
	ratioKey("diskSpaceCleanForciblyRatio", func(o *Options) *float64 { return &o.DiskForceCleanRatio }),
	ratioKey("diskSpaceWarningLevelRatio", func(o *Options) *float64 { return &o.DiskFullRatio }),
	intKey("deleteFileBatchMax", func(o *Options) *int { return &o.DeleteFilesBatchMax }, 1),
	intKey("maxMessageSize", func(o *Options) *int { return &o.MaxMessageSize }, 1),
	{"messageIndexEnable",
		func(o *Options) string { return strconv.FormatBool(!o.DisableIndex) },
		func(o *Options, v string) error {
			b, err := strconv.ParseBool(v)
			o.DisableIndex = !b
			return err
		}},
	intKey("maxHashSlotNum", func(o *Options) *int { return &o.IndexSlots }, 1),
	intKey("maxIndexNum", func(o *Options) *int { return &o.IndexEntries }, 1),
	intKey("maxTransferBytesOnMessageInMemory", func(o *Options) *int { return &o.MaxTransferBytes }, 1),
	intKey("maxTransferCountOnMessageInMemory", func(o *Options) *int { return &o.MaxTransferCount }, 1),
}

func parseDeleteWhen(s string) ([]int, error) {
	var hours []int
	for item := range strings.SplitSeq(s, ";") {
		h, err := strconv.Atoi(strings.TrimSpace(item))
		if err != nil || h < 0 || h > 23 {
			return nil, fmt.Errorf("DeleteWhen %q: %q is not an hour 0-23", s, item)
		}
		hours = append(hours, h)
	}
	return hours, nil
}
