package timer

import (
	"errors"
	"fmt"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
)

// Options configure a Wheel. The zero value of every field means its
// default, set by EnsureDefaults.
type Options struct {
	// FS is the filesystem. Default vfs.Default.
	FS vfs.FS
	// SlotDuration is the width of one wheel slot. A slot is read into
	// memory shortly before it starts and its entries fire at their own
	// millisecond, so it bounds memory per loaded slot, not precision.
	// Default 1 s (RocketMQ's timerPrecisionMs). Fixed for a directory's
	// lifetime: Open fails with ErrOptionsChanged if it differs.
	SlotDuration time.Duration
	// MaxDelay is how far ahead of now Add accepts a timer (ErrTooFar
	// beyond). Default 72 h (RocketMQ's timerMaxDelaySec=259200).
	MaxDelay time.Duration
	// Slots is the number of slots in the ring. Timers further than
	// Slots*SlotDuration ahead of the delivery cursor are parked in the
	// last slot and re-added when it is read (a roll), so any value works;
	// it trades wheel file size (32 bytes a slot) for rolls. Default
	// MaxDelay/SlotDuration plus one hour of slots (262,800 = 8.4 MB).
	// Fixed for a directory's lifetime.
	Slots int
	// EntriesPerSegment is the number of 48-byte entries in one timer-log
	// segment file. Default 1<<20 (48 MiB a segment).
	EntriesPerSegment int
	// SyncAdd makes Add return only after an fsync covers its entry
	// (group commit: concurrent Adds share one fsync). Default false: Add
	// returns once the entry is in the page cache, which survives a
	// process crash (kill -9) but not a power cut before the next flush.
	SyncAdd bool
	// FlushInterval is how often the flusher fsyncs the log and the wheel
	// and persists the delivery checkpoint. Acknowledged deliveries since
	// the last checkpoint are delivered again after a crash. Default 200 ms.
	FlushInterval time.Duration
	// Lookahead is how long before a slot starts it is read into memory.
	// Default 200 ms.
	Lookahead time.Duration
	// MaxBatch caps the entries passed to one deliver call. Default 256.
	MaxBatch int
	// RetryInterval is the wait before retrying a batch whose deliver
	// call failed. Default 1 s.
	RetryInterval time.Duration
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
	setDefault(&o.SlotDuration, time.Second)
	setDefault(&o.MaxDelay, 72*time.Hour)
	setDefault(&o.Slots, int((o.MaxDelay+time.Hour+o.SlotDuration-1)/o.SlotDuration))
	setDefault(&o.EntriesPerSegment, 1<<20)
	setDefault(&o.FlushInterval, 200*time.Millisecond)
	setDefault(&o.Lookahead, 200*time.Millisecond)
	setDefault(&o.MaxBatch, 256)
	setDefault(&o.RetryInterval, time.Second)
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
	if o.SlotDuration < time.Millisecond || o.SlotDuration%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("SlotDuration %v is not a positive whole number of milliseconds", o.SlotDuration))
	}
	if o.Slots < 2 || o.Slots > 1<<28 {
		errs = append(errs, fmt.Errorf("Slots %d not in [2, 2^28]", o.Slots))
	}
	if o.EntriesPerSegment < 1 || o.EntriesPerSegment > 1<<25 {
		errs = append(errs, fmt.Errorf("EntriesPerSegment %d not in [1, 2^25]", o.EntriesPerSegment))
	}
	if o.MaxDelay <= 0 || o.FlushInterval <= 0 || o.Lookahead < 0 || o.RetryInterval <= 0 || o.MaxBatch < 1 {
		errs = append(errs, errors.New("MaxDelay, FlushInterval, RetryInterval and MaxBatch must be positive, Lookahead not negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("timer: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

// String renders the options as key=value lines, for logs.
func (o *Options) String() string {
	return fmt.Sprintf("SlotDuration=%v\nMaxDelay=%v\nSlots=%d\nEntriesPerSegment=%d\nSyncAdd=%t\nFlushInterval=%v\nLookahead=%v\nMaxBatch=%d\nRetryInterval=%v\n",
		o.SlotDuration, o.MaxDelay, o.Slots, o.EntriesPerSegment, o.SyncAdd, o.FlushInterval, o.Lookahead, o.MaxBatch, o.RetryInterval)
}
