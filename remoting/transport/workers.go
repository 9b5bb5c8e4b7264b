package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a worker goroutine waits for more work before it exits.
const workerIdle = 10 * time.Second

// workers runs tasks (request handlers, async callbacks) each on a goroutine of its own, but reuses
// goroutines that finished a task instead of starting a new one per task. A fresh goroutine starts on
// a small stack and grows it by copying on its first deep call (a send handler with the store under
// it is one); a reused one keeps its grown stack. Profiles of the send path showed stack growth at
// about a tenth of the broker's CPU before this.
//
// A task never waits for a free worker: when none is idle, a new one starts. So the pool bounds
// nothing; the callers bound concurrency (Conn.inflight).
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only when a worker is waiting
	idle  time.Duration
	quit  chan struct{} // closed by stop: idle workers exit
	once  sync.Once
	live  atomic.Int32 // worker goroutines alive, for tests
	began atomic.Int64 // worker goroutines started, for tests
}

func newWorkers(idle time.Duration) *workers {
	return &workers{tasks: make(chan func()), idle: idle, quit: make(chan struct{})}
}

// stop makes idle workers exit, and busy ones when their task ends. Tasks run after stop still run,
// each on a goroutine of its own.
func (w *workers) stop() { w.once.Do(func() { close(w.quit) }) }

// run runs task on an idle worker, or on a new one.
func (w *workers) run(task func()) {
	select {
	case w.tasks <- task:
	default:
		w.live.Add(1)
		w.began.Add(1)
		go w.loop(task)
	}
}

// loop runs task, then takes further tasks until none came for a whole idle period.
func (w *workers) loop(task func()) {
	defer w.live.Add(-1)
	task()
	task = nil // let what the task referenced (a request's frame) be collected while idle
	tick := time.NewTicker(w.idle)
	defer tick.Stop()
	busy := false
	for {
		select {
		case task = <-w.tasks:
			task()
			task = nil
			busy = true
		case <-w.quit:
			return
		case <-tick.C:
			if !busy {
				return
			}
			busy = false
		}
	}
}
