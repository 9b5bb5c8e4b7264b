package transport

import (
	"sync"
	"sync/atomic"
)

// maxIdleWorkers bounds the worker goroutines kept waiting for work; a worker that finishes a task
// when as many are idle exits instead.
const maxIdleWorkers = 256

// workers runs tasks (request handlers, async callbacks) each on a goroutine of its own, but reuses
// goroutines that finished a task instead of starting a new one per task. A fresh goroutine starts on
// a small stack and grows it by copying on its first deep call (a send handler with the store under
// it is one); a reused one keeps its grown stack. Profiles of the send path showed stack growth at
// about a tenth of the broker's CPU before this.
//
// A task never waits for a free worker: when none is idle, a new one starts. So the pool bounds
// nothing; the callers bound concurrency (Conn.inflight). Idle workers wait on a plain channel
// receive, with no timer: a select over a timer and a quit channel per task showed in profiles of
// asynchronous sends. Their number is bounded by maxIdleWorkers instead of an idle timeout.
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only when a worker is waiting; closed by stop
	mu    sync.RWMutex
	done  bool         // stop was called. Protected by mu.
	idle  atomic.Int32 // workers waiting for a task
	live  atomic.Int32 // worker goroutines alive, for tests
	began atomic.Int64 // worker goroutines started, for tests
}

func newWorkers() *workers {
	return &workers{tasks: make(chan func())}
}

// stop makes idle workers exit, and busy ones when their task ends. Tasks run after stop still run,
// each on a goroutine of its own.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.done = true
		close(w.tasks)
	}
}

// run runs task on an idle worker, or on a new one.
func (w *workers) run(task func()) {
	w.mu.RLock()
	if !w.done {
		select {
		case w.tasks <- task:
			w.mu.RUnlock()
			return
		default:
		}
	}
	w.mu.RUnlock()
	w.live.Add(1)
	w.began.Add(1)
	go w.loop(task)
}

// loop runs task, then takes further tasks while the pool is open and not too many wait.
func (w *workers) loop(task func()) {
	defer w.live.Add(-1)
	for {
		task()
		task = nil // let what the task referenced (a request's frame) be collected while idle
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		next, ok := <-w.tasks
		w.idle.Add(-1)
		if !ok {
			return
		}
		task = next
	}
}
