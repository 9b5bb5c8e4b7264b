package transport

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

func TestWorkersReuseAndNeverQueue(t *testing.T) {
	w := newWorkers()
	defer w.stop()
	done := make(chan struct{})
	for range 100 { // one at a time: each task finds the previous task's worker idle
		w.run(func() { done <- struct{}{} })
		<-done
		time.Sleep(time.Millisecond) // for the worker to be back waiting
	}
	if n := w.began.Load(); n > 10 {
		t.Fatalf("%d goroutines started for 100 sequential tasks; want the worker reused", n)
	}

	// A blocked task does not hold up the next one: it gets a worker of its own.
	block := make(chan struct{})
	w.run(func() { <-block })
	ran := make(chan struct{})
	w.run(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a task waited behind a blocked one")
	}
	close(block)
}

func TestWorkersExitWhenTooManyIdleOrStopped(t *testing.T) {
	w := newWorkers()
	const burst = maxIdleWorkers + 50
	release := make(chan struct{})
	for range burst { // each blocks, so each gets a worker of its own
		w.run(func() { <-release })
	}
	waitFor(t, func() bool { return w.live.Load() == burst })
	close(release)
	// All finish at once: those beyond maxIdleWorkers exit, the rest wait for work.
	waitFor(t, func() bool { return w.live.Load() == maxIdleWorkers })

	w.stop()
	waitFor(t, func() bool { return w.live.Load() == 0 })
	ran := make(chan struct{})
	w.run(func() { close(ran) }) // still runs after stop
	<-ran
}

func TestInlineHandlersRunOnTheReader(t *testing.T) {
	mux := NewMux()
	block, blocked := make(chan struct{}), make(chan struct{})
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(block) }) }
	defer release() // before the server's cleanup, which waits for the handler
	mux.HandleInline(codeEcho, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		if string(req.Body) == "block" {
			close(blocked)
			<-block
		}
		return remoting.NewResponse(code.Success, string(req.Body))
	})
	ts := startServer(t, Options{Handler: mux})
	cl := newClient(t, ClientOptions{})
	first := make(chan error, 1)
	go func() {
		_, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, []byte("block")))
		first <- err
	}()
	<-blocked
	// The blocked inline handler holds up the next request on the same connection: it runs on the
	// reader, which proves no goroutine was started for it.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cl.Invoke(short, ts.addr, remoting.NewRequest(codeEcho, nil, []byte("next"))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request behind a blocked inline handler: %v, want it held", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, []byte("after")))
	if err != nil || resp.Remark != "after" {
		t.Fatalf("after the block: %v %v", resp, err)
	}
	other := NewMux()
	echo := remoting.NewRequest(codeEcho, nil, nil)
	other.HandleInline(codeEcho, nil)
	other.HandleFunc(codeEcho, nil) // Handle clears the inline mark
	if other.Inline(echo) {
		t.Fatal("HandleFunc kept the inline mark")
	}
	other.HandleInlineIf(codeEcho, nil, func(req *remoting.Command) bool { return len(req.Body) == 0 })
	if !other.Inline(echo) || other.Inline(remoting.NewRequest(codeEcho, nil, []byte("x"))) {
		t.Fatal("HandleInlineIf did not decide per request")
	}
}

func TestLaterAnswersAfterTheHandlerReturns(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc(codeEcho, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		reply := c.Later(req)
		time.AfterFunc(100*time.Millisecond, func() { reply.Send(remoting.NewResponse(code.Success, "later")) })
		return nil
	})
	ts := startServer(t, Options{Handler: mux})
	cl := newClient(t, ClientOptions{})
	resp, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, nil))
	if err != nil || resp.Remark != "later" {
		t.Fatalf("%v %v", resp, err)
	}
	// A graceful shutdown waits for an answer still to come.
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, nil))
		errc <- err
	}()
	waitFor(t, func() bool { return len(ts.Conns()) == 1 })
	time.Sleep(20 * time.Millisecond) // the request is in, its answer 100 ms away
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("answer lost in the shutdown: %v", err)
	}
}

// TestAsyncCallbacksEachOnce: answers read together get their callbacks run in batches; every call
// still gets exactly one callback with its own answer, also when the connection drops meanwhile.
func TestAsyncCallbacksEachOnce(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	const n = 2000
	var mu sync.Mutex
	calls := make(map[int]int)
	var wrong atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		body := []byte(strconv.Itoa(i))
		err := cl.InvokeAsync(context.Background(), ts.addr, remoting.NewRequest(codeEcho, nil, body), 5*time.Second,
			func(resp *remoting.Command, err error) {
				defer wg.Done()
				if err == nil && string(resp.Body) != strconv.Itoa(i) {
					wrong.Add(1)
				}
				mu.Lock()
				calls[i]++
				mu.Unlock()
			})
		if err != nil {
			t.Fatal(err)
		}
		if i == n-1 { // drop the connection with calls in flight
			conn, _ := cl.Conn(context.Background(), ts.addr)
			conn.Close()
		}
	}
	wg.Wait()
	if wrong.Load() > 0 {
		t.Fatalf("%d callbacks got another call's answer", wrong.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if calls[i] != 1 {
			t.Fatalf("call %d: %d callbacks", i, calls[i])
		}
	}
}

// TestLaterCountsInFlight: at most MaxInflightPerConn answers are owed through Later; further
// handlers wait in Later, and once as many wait, the reader stops taking requests.
func TestLaterCountsInFlight(t *testing.T) {
	const limit = 4
	release := make(chan struct{})
	var handled atomic.Int32
	mux := NewMux()
	mux.HandleFunc(codeEcho, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		handled.Add(1)
		reply := c.Later(req)
		go func() {
			<-release
			reply.Send(remoting.NewResponse(code.Success, "later"))
		}()
		return nil
	})
	ts := startServer(t, Options{Handler: mux, MaxInflightPerConn: limit})
	cl := newClient(t, ClientOptions{})
	const n = 10
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range n {
		wg.Add(1)
		err := cl.InvokeAsync(context.Background(), ts.addr, remoting.NewRequest(codeEcho, nil, nil), 10*time.Second, func(_ *remoting.Command, err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// limit answers owed, limit handlers waiting in Later for one of them, and nothing else read.
	waitFor(t, func() bool { return handled.Load() == 2*limit })
	time.Sleep(100 * time.Millisecond) // time for another request to be taken, were it allowed
	if got := handled.Load(); got != 2*limit {
		t.Fatalf("%d requests handled with %d answers owed and a limit of %d", got, limit, limit)
	}
	close(release)
	wg.Wait()
	if handled.Load() != n || failed.Load() != 0 {
		t.Fatalf("handled %d of %d, %d failed", handled.Load(), n, failed.Load())
	}
}
