package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

const (
	codeEcho  code.Request = 9001
	codeSlow  code.Request = 9002
	codePanic code.Request = 9003
	codeWait  code.Request = 9004 // waits for the handler context, like a long poll
	// codeEchoInline echoes on the reader goroutine; the request's body is only valid until the
	// handler returns, so the answer carries a copy.
	codeEchoInline code.Request = 9005
)

type testServer struct {
	*Server
	addr     string
	accepted atomic.Int32
	closed   chan *Conn
}

func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	mux := NewMux()
	mux.HandleFunc(codeEcho, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(code.Success, "echo")
		resp.ExtFields = req.ExtFields
		resp.Body = req.Body
		return resp
	})
	mux.HandleInline(codeEchoInline, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(code.Success, "echo")
		resp.Body = bytes.Clone(req.Body)
		return resp
	})
	mux.HandleFunc(codeSlow, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
		}
		return remoting.NewResponse(code.Success, "slow")
	})
	mux.HandleFunc(codePanic, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		panic("boom")
	})
	mux.HandleFunc(codeWait, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		<-ctx.Done()
		return remoting.NewResponse(code.PullNotFound, "woken by shutdown")
	})
	if opts.Handler == nil {
		opts.Handler = mux
	}
	ts := &testServer{closed: make(chan *Conn, 16)}
	opts.OnConnClose = func(c *Conn) { ts.closed <- c }
	ts.Server = NewServer(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	counting := &countingListener{Listener: ln, n: &ts.accepted}
	served := make(chan error, 1)
	go func() { served <- ts.Serve(counting) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.Shutdown(ctx)
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ts
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func newClient(t *testing.T, opts ClientOptions) *Client {
	c := NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestInvokeBothFormsAndReuse(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		req := remoting.NewRequest(codeEcho, remoting.Fields{"k", "v"}, []byte("payload"))
		req.SerializeType = st
		resp, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Remark != "echo" || resp.Ext("k") != "v" || string(resp.Body) != "payload" || !resp.IsResponse() {
			t.Fatalf("bad response %+v", resp)
		}
		if resp.SerializeType != st {
			t.Errorf("answered in %v to a %v request", resp.SerializeType, st)
		}
		if req.Opaque != 0 {
			t.Error("Invoke modified the request")
		}
	}
	if n := ts.accepted.Load(); n != 1 {
		t.Errorf("%d connections for two calls, want 1", n)
	}
}

func TestUnknownCode(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	resp, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(4242, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode() != code.RequestCodeNotSupported || !strings.Contains(resp.Remark, "4242") {
		t.Fatalf("got %v %q", resp.ResponseCode(), resp.Remark)
	}
}

// A request waiting in its handler must not hold up other requests of the same connection.
func TestConcurrentHandlingOnOneConn(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	ctx := ctxTimeout(t, 5*time.Second)
	slowDone := make(chan error, 1)
	go func() {
		_, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeSlow, nil, nil))
		slowDone <- err
	}()
	var wg sync.WaitGroup
	var fastBeforeSlow atomic.Int32
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte(strings.Repeat("x", i*100))
			resp, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeEcho, nil, body))
			if err != nil || string(resp.Body) != string(body) {
				t.Errorf("echo %d: %v", i, err)
			}
			select {
			case <-slowDone:
			default:
				fastBeforeSlow.Add(1)
			}
		}()
	}
	wg.Wait()
	if fastBeforeSlow.Load() != 50 {
		t.Errorf("only %d fast calls finished before the slow one", fastBeforeSlow.Load())
	}
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
}

func TestAsyncAndTimeouts(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	got := make(chan *remoting.Command, 1)
	err := cl.InvokeAsync(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, []byte("a")), 0,
		func(resp *remoting.Command, err error) {
			if err != nil {
				t.Error(err)
			}
			got <- resp
		})
	if err != nil {
		t.Fatal(err)
	}
	if resp := <-got; string(resp.Body) != "a" {
		t.Fatalf("async body %q", resp.Body)
	}

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := cl.Invoke(short, ts.addr, remoting.NewRequest(codeSlow, nil, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync timeout: %v", err)
	}
	errs := make(chan error, 1)
	short2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := cl.InvokeAsync(short2, ts.addr, remoting.NewRequest(codeSlow, nil, nil), 0, func(_ *remoting.Command, err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("async timeout: %v", err)
	}
	// The same with the timeout argument (the sweep) instead of a context deadline, sync and async.
	if _, err := cl.InvokeTimeout(context.Background(), ts.addr, remoting.NewRequest(codeSlow, nil, nil), 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sync timeout by sweep: %v", err)
	}
	begin := time.Now()
	if err := cl.InvokeAsync(context.Background(), ts.addr, remoting.NewRequest(codeSlow, nil, nil), 50*time.Millisecond, func(_ *remoting.Command, err error) { errs <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("async timeout by sweep: %v", err)
	}
	if d := time.Since(begin); d < 50*time.Millisecond {
		t.Fatalf("async call failed after %s, before its 50ms timeout", d)
	}
	// The late responses are dropped and the connection stays usable.
	time.Sleep(400 * time.Millisecond)
	if _, err := cl.Invoke(ctxTimeout(t, 5*time.Second), ts.addr, remoting.NewRequest(codeEcho, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

// rawConn speaks the frame format by hand, to send what a well-behaved client never would.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	ts := startServer(t, Options{MaxFrameLength: 1 << 20})
	cl := newClient(t, ClientOptions{})
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeEcho, nil, nil)); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"oversized":  {0x7f, 0, 0, 0},
		"negative":   {0xff, 0xff, 0xff, 0xff},
		"garbage":    append([]byte{0, 0, 0, 12, 0, 0, 0, 8}, "not json"...),
		"bad form":   {0, 0, 0, 6, 9, 0, 0, 2, '{', '}'},
		"bad header": {0, 0, 0, 4, 0, 0, 0, 9},
	}
	for name, frame := range bad {
		c := rawConn(t, ts.addr)
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: connection still open, read %d bytes", name, n)
		}
		select {
		case <-ts.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: close hook did not run", name)
		}
	}
	// The well-behaved client's connection was not disturbed.
	if _, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeEcho, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if n := ts.accepted.Load(); n != 1+int32(len(bad)) {
		t.Errorf("accepted %d", n)
	}
}

func TestPendingCallsFailWhenConnectionDrops(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	ctx := ctxTimeout(t, 10*time.Second)
	errs := make(chan error, 2)
	go func() {
		_, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeWait, nil, nil))
		errs <- err
	}()
	cl.InvokeAsync(ctx, ts.addr, remoting.NewRequest(codeWait, nil, nil), 0, func(_ *remoting.Command, err error) { errs <- err })
	waitFor(t, func() bool { return len(ts.Conns()) == 1 })
	time.Sleep(50 * time.Millisecond) // let both requests reach the server
	start := time.Now()
	ts.Conns()[0].Close()
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrConnClosed) {
			t.Fatalf("got %v, want ErrConnClosed", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pending calls failed after %v", d)
	}
	// The next call dials again.
	if _, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeEcho, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOnewayGetsNoResponse(t *testing.T) {
	handled := make(chan struct{}, 1)
	mux := NewMux()
	mux.HandleFunc(codeEcho, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		handled <- struct{}{}
		return remoting.NewResponse(code.Success, "")
	})
	ts := startServer(t, Options{Handler: mux})
	c := rawConn(t, ts.addr)
	req := remoting.NewRequest(codeEcho, nil, nil)
	req.Flag = remoting.FlagOneway
	frame, _ := remoting.AppendFrame(nil, req)
	c.Write(frame)
	<-handled
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); n != 0 || !isTimeout(err) {
		t.Fatalf("read %d bytes, err %v: a oneway request was answered", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestIdleConnectionsExpire(t *testing.T) {
	ts := startServer(t, Options{IdleTimeout: 100 * time.Millisecond})
	c := rawConn(t, ts.addr)
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("got %v, want EOF", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("closed after %v", d)
	}
}

func TestHandlerPanicIsAnswered(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	ctx := ctxTimeout(t, 5*time.Second)
	resp, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codePanic, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode() != code.SystemError {
		t.Fatalf("got %v", resp.ResponseCode())
	}
	if _, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeEcho, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

// Shutdown wakes waiting handlers and still delivers their answers.
func TestGracefulShutdownDeliversAnswers(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	ctx := ctxTimeout(t, 5*time.Second)
	got := make(chan *remoting.Command, 1)
	go func() {
		resp, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(codeWait, nil, nil))
		if err != nil {
			t.Error(err)
		}
		got <- resp
	}()
	waitFor(t, func() bool { return len(ts.Conns()) == 1 })
	time.Sleep(50 * time.Millisecond)
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if resp := <-got; resp == nil || resp.ResponseCode() != code.PullNotFound {
		t.Fatalf("got %+v", resp)
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// The server can call the client over the connection the client opened, as brokers do.
func TestServerToClientRequest(t *testing.T) {
	mux := NewMux()
	serverConns := make(chan *Conn, 1)
	mux.HandleFunc(code.HeartBeat, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		serverConns <- c
		return remoting.NewResponse(code.Success, "")
	})
	ts := startServer(t, Options{Handler: mux})
	clientMux := NewMux()
	clientMux.HandleFunc(code.GetConsumerRunningInfo, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(code.Success, "")
		resp.Body = []byte("running " + req.Ext("clientId"))
		return resp
	})
	cl := newClient(t, ClientOptions{Handler: clientMux})
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := cl.Invoke(ctx, ts.addr, remoting.NewRequest(code.HeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	sc := <-serverConns
	resp, err := sc.Invoke(ctx, remoting.NewRequest(code.GetConsumerRunningInfo, remoting.Fields{"clientId", "c1"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != "running c1" {
		t.Fatalf("got %q", resp.Body)
	}
}

func TestClientErrors(t *testing.T) {
	cl := NewClient(ClientOptions{DialTimeout: time.Second})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := cl.Invoke(ctxTimeout(t, 5*time.Second), addr, remoting.NewRequest(codeEcho, nil, nil)); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("dial error %v should name the address", err)
	}
	cl.Close()
	if _, err := cl.Invoke(ctxTimeout(t, 5*time.Second), addr, remoting.NewRequest(codeEcho, nil, nil)); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("got %v", err)
	}
}

// Frames written concurrently arrive whole: a raw reader parses every response.
func TestOrderedWritesUnderLoad(t *testing.T) {
	ts := startServer(t, Options{})
	c := rawConn(t, ts.addr)
	const n = 200
	go func() {
		for i := range n {
			// Both echoes: requests served inline read their body where the reader buffered it,
			// the others get a copy, as the reader goes on reading into that buffer.
			req := remoting.NewRequest([]code.Request{codeEcho, codeEchoInline}[i%2], nil, bytes.Repeat([]byte{byte(i)}, (i%7)*3000))
			req.Opaque = int32(i + 1)
			frame, _ := remoting.AppendFrame(nil, req)
			c.Write(frame)
		}
	}()
	seen := make(map[int32]bool)
	for len(seen) < n {
		frame, err := remoting.ReadFrame(c, remoting.DefaultMaxFrameLength)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := remoting.DecodeFrame(frame)
		if err != nil {
			t.Fatal(err)
		}
		// Small bodies are copied into the write buffer and large ones written from where they are:
		// both must arrive whole and in their own frame.
		i := int(resp.Opaque - 1)
		if !bytes.Equal(resp.Body, bytes.Repeat([]byte{byte(i)}, (i%7)*3000)) {
			t.Fatalf("opaque %d: body of %d bytes is not the one sent", resp.Opaque, len(resp.Body))
		}
		seen[resp.Opaque] = true
	}
}

// TestPipelinedAnswerBodies checks answers that arrive together: the callbacks run after the reader
// has read on, so an answer's body must not alias the reader's buffer.
func TestPipelinedAnswerBodies(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{})
	conn, err := cl.Conn(ctxTimeout(t, 5*time.Second), ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range n {
		size := 100 + i%5*300
		if i%50 == 7 {
			size = 50 << 10 // larger than the reader's buffer: read into a frame of its own
		}
		want := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size)
		wg.Add(1)
		err := conn.InvokeAsync(context.Background(), remoting.NewRequest(codeEchoInline, nil, want), 10*time.Second, func(resp *remoting.Command, err error) {
			defer wg.Done()
			if err != nil || !bytes.Equal(resp.Body, want) {
				bad.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d of %d answers failed or carried another body", bad.Load(), n)
	}
}

// TestCallToStuckPeerKeepsItsTimeout checks that a synchronous call, which writes its request on
// its own goroutine, does not wait on a peer that stopped reading longer than its timeout.
func TestCallToStuckPeerKeepsItsTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // never read: the socket buffers fill
		}
	}()
	cl := newClient(t, ClientOptions{}) // the write timeout is the default, 30 s
	conn, err := cl.Conn(ctxTimeout(t, 5*time.Second), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	}()
	body := make([]byte, 8<<20) // more than loopback socket buffers hold
	began := time.Now()
	_, err = conn.InvokeTimeout(context.Background(), remoting.NewRequest(codeEcho, nil, body), 300*time.Millisecond)
	if err == nil {
		t.Fatal("a call to a peer that reads nothing succeeded")
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Fatalf("the call returned after %v, not within its timeout of 300ms", waited)
	}
}

// TestCallDeadlineDoesNotOutliveItsWrite checks that the write deadline a synchronous call puts on
// the socket is gone for later writes when the connection has no write timeout of its own.
func TestCallDeadlineDoesNotOutliveItsWrite(t *testing.T) {
	ts := startServer(t, Options{})
	cl := newClient(t, ClientOptions{WriteTimeout: -1})
	conn, err := cl.Conn(ctxTimeout(t, 5*time.Second), ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.InvokeTimeout(context.Background(), remoting.NewRequest(codeEcho, nil, nil), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the call's deadline has passed
	done := make(chan error, 1)
	err = conn.InvokeAsync(context.Background(), remoting.NewRequest(codeEcho, nil, nil), 5*time.Second, func(_ *remoting.Command, err error) { done <- err })
	if err == nil {
		err = <-done
	}
	if err != nil {
		t.Fatalf("a write after the call's deadline failed: %v", err)
	}
}

// TestAnswersAreReleasedOnceEncoded hands out answers from a small pool that Command.Release
// refills, scrambling each answer as it goes back: every answer must arrive as it was made, and
// every one, a oneway request's included, must come back. The inline handler answers with its
// request's header strings as they are, which alias the reader's buffer: the answer is encoded
// before the reader reads on.
func TestAnswersAreReleasedOnceEncoded(t *testing.T) {
	const codeInline, codeWorker = code.Request(9101), code.Request(9102)
	pool := make(chan *remoting.Command, 4)
	var made, released atomic.Int32
	answer := func(v string) *remoting.Command {
		var resp *remoting.Command
		select {
		case resp = <-pool:
		default:
			made.Add(1)
			resp = &remoting.Command{}
			resp.Release = func() {
				released.Add(1)
				resp.ExtFields = remoting.Fields{"v", "released"}
				resp.Remark = "released"
				select {
				case pool <- resp:
				default:
				}
			}
		}
		release := resp.Release
		*resp = remoting.Command{Code: int16(code.Success), Flag: remoting.FlagResponse, Remark: "ok", ExtFields: remoting.Fields{"v", v}, Release: release}
		return resp
	}
	mux := NewMux()
	mux.HandleInline(codeInline, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		return answer(req.Ext("v"))
	})
	mux.HandleFunc(codeWorker, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		return answer(req.Ext("v"))
	})
	ts := startServer(t, Options{Handler: mux})
	cl := newClient(t, ClientOptions{})
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		req := remoting.NewRequest([]code.Request{codeInline, codeWorker}[i%2], remoting.Fields{"v", fmt.Sprintf("value-%d", i)}, nil)
		req.SerializeType = []remoting.SerializeType{remoting.JSON, remoting.RocketMQ}[i/2%2]
		wg.Add(1)
		if err := cl.InvokeAsync(context.Background(), ts.addr, req, 5*time.Second, func(resp *remoting.Command, err error) {
			defer wg.Done()
			if err != nil || resp.Ext("v") != fmt.Sprintf("value-%d", i) || resp.Remark != "ok" {
				t.Errorf("request %d answered %v %v", i, resp, err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	oneway := remoting.NewRequest(codeInline, remoting.Fields{"v", "oneway"}, nil)
	if err := cl.InvokeOneway(context.Background(), ts.addr, oneway); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); released.Load() < n+1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := released.Load(); got != n+1 {
		t.Fatalf("%d answers released, want %d", got, n+1)
	}
	if made.Load() >= n {
		t.Errorf("%d answers made for %d requests: the pool was never reused", made.Load(), n)
	}
}

// TestSyncCallsGetTheirOwnAnswers mixes synchronous calls that time out, are cancelled and succeed,
// with answers that arrive late: InvokeTimeout recycles its calls, and a recycled call must never
// see the answer of an earlier one.
func TestSyncCallsGetTheirOwnAnswers(t *testing.T) {
	const codeDelayed = code.Request(9103)
	mux := NewMux()
	mux.HandleFunc(codeDelayed, func(ctx context.Context, c *Conn, req *remoting.Command) *remoting.Command {
		if d, _ := time.ParseDuration(req.Ext("delay")); d > 0 {
			time.Sleep(d)
		}
		resp := remoting.NewResponse(code.Success, "")
		resp.ExtFields = remoting.Fields{"v", req.Ext("v")}
		return resp
	})
	ts := startServer(t, Options{Handler: mux})
	cl := newClient(t, ClientOptions{})
	conn, err := cl.Conn(context.Background(), ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var answered, failed atomic.Int32
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				v := fmt.Sprintf("%d-%d", g, i)
				delay := time.Duration((g*7+i*13)%5) * 15 * time.Millisecond // 0 to 60 ms
				req := remoting.NewRequest(codeDelayed, remoting.Fields{"v", v, "delay", delay.String()}, nil)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(10+(i%3)*20)*time.Millisecond)
				resp, err := conn.InvokeTimeout(ctx, req, time.Duration(5+(i%4)*25)*time.Millisecond)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				answered.Add(1)
				if got := resp.Ext("v"); got != v {
					t.Errorf("call %s got the answer of %s", v, got)
				}
			}
		}()
	}
	wg.Wait()
	if answered.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("%d answered, %d failed: the test needs both", answered.Load(), failed.Load())
	}
}
