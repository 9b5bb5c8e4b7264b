package client

import (
	"sync"
	"sync/atomic"
	"time"
)

// RocketMQ 5's latency table (MQFaultStrategy): a send that took at least latencySteps[i] makes its
// broker unavailable for isolationSteps[i].
var (
	latencySteps   = [...]time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 550 * time.Millisecond, 1800 * time.Millisecond, 3 * time.Second, 5 * time.Second, 15 * time.Second}
	isolationSteps = [...]time.Duration{0, 0, 2 * time.Second, 5 * time.Second, 6 * time.Second, 10 * time.Second, 30 * time.Second}
)

// failedSendLatency is the latency a failed send counts as (RocketMQ 5 uses 10 s for isolation).
const failedSendLatency = 10 * time.Second

// isolationFor returns how long a broker is avoided after a send that took latency.
func isolationFor(latency time.Duration) time.Duration {
	for i := len(latencySteps) - 1; i >= 0; i-- {
		if latency >= latencySteps[i] {
			return isolationSteps[i]
		}
	}
	return 0
}

// faultTable remembers which brokers answered slowly or failed, so queue selection avoids them until
// their isolation ends. It is safe for concurrent use.
type faultTable struct {
	now      func() time.Time
	isolated atomic.Int32 // len(mu.until): while 0, which is nearly always, no send takes the lock

	mu struct {
		sync.Mutex
		until map[string]time.Time // broker name → avoided until. Protected by mu.
	}
}

func newFaultTable(now func() time.Time) *faultTable {
	f := &faultTable{now: now}
	f.mu.until = map[string]time.Time{}
	return f
}

// record notes the outcome of a send to broker.
func (f *faultTable) record(broker string, latency time.Duration, failed bool) {
	if failed {
		latency = max(latency, failedSendLatency)
	}
	d := isolationFor(latency)
	if d <= 0 && f.isolated.Load() == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.mu.until, broker)
	} else {
		f.mu.until[broker] = f.now().Add(d)
	}
	f.isolated.Store(int32(len(f.mu.until)))
}

// available reports whether broker is not isolated now.
func (f *faultTable) available(broker string) bool {
	if f.isolated.Load() == 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.mu.until[broker]
	return !ok || !f.now().Before(until)
}
