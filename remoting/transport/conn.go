package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

var (
	// ErrConnClosed is returned (wrapped with the cause) by calls on a closed connection, and to every
	// call still waiting for a response when its connection drops.
	ErrConnClosed = errors.New("transport: connection closed")

	// ErrServerClosed is returned by Server.Serve after Shutdown.
	ErrServerClosed = errors.New("transport: server closed")

	// ErrClientClosed is returned by Client calls after Close.
	ErrClientClosed = errors.New("transport: client closed")
)

// smallBody is the size up to which a body is copied next to its header, so the frame goes out as
// one buffer; larger bodies are written from where they are.
const smallBody = 4 << 10

// connConfig is what a Conn needs from its Server or Client. Zero values are replaced by defaults in
// the owners' constructors.
type connConfig struct {
	handler        Handler
	maxFrame       int
	idleTimeout    time.Duration // no read for this long closes the connection; 0 = never
	writeTimeout   time.Duration
	maxInflight    int
	maxQueuedBytes int
	logger         *slog.Logger
	onClose        func(*Conn)
}

// call is a request waiting for its response. Exactly one of ch and cb is set.
type call struct {
	ch        chan result
	cb        func(*remoting.Command, error)
	stopAfter func() bool // stops the context watcher of an async call
}

type result struct {
	resp *remoting.Command
	err  error
}

// Conn is one remoting connection, accepted by a Server or dialed by a Client. Its methods are safe for
// concurrent use.
type Conn struct {
	nc     net.Conn
	cfg    *connConfig
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc

	nextOpaque atomic.Int32
	handlers   sync.WaitGroup // request handlers and async callbacks in flight
	inflight   chan struct{}  // semaphore bounding concurrent handlers

	pending struct {
		sync.Mutex
		calls map[int32]*call
		err   error // set once the connection is closed; no new calls after
	}

	out struct {
		sync.Mutex
		bufs   net.Buffers
		bytes  int
		closed bool // no more frames are accepted
	}
	outReady chan struct{} // cap 1: frames were queued
	outSpace chan struct{} // cap 1: the writer drained the queue

	closeOnce sync.Once
	closeErr  error
	closing   chan struct{} // closed when closing starts; the writer flushes and stops
	done      chan struct{} // closed when the connection is fully closed
	writerEnd chan struct{} // closed when the writer goroutine has returned
	readerEnd chan struct{} // closed when the reader goroutine has returned
	draining  atomic.Bool   // a graceful close stopped the reader on purpose

	values sync.Map
}

func newConn(nc net.Conn, cfg *connConfig, parent context.Context) *Conn {
	c := &Conn{
		nc:        nc,
		cfg:       cfg,
		inflight:  make(chan struct{}, cfg.maxInflight),
		outReady:  make(chan struct{}, 1),
		outSpace:  make(chan struct{}, 1),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		writerEnd: make(chan struct{}),
		readerEnd: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.pending.calls = make(map[int32]*call)
	return c
}

// start runs the connection's reader and writer; wg tracks both.
func (c *Conn) start(wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	go func() {
		defer wg.Done()
		c.readLoop()
	}()
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns this side's address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.closeErr
	default:
		return nil
	}
}

// Set attaches a value to the connection, for handlers that keep per-connection state.
func (c *Conn) Set(key, value any) { c.values.Store(key, value) }

// Get returns a value attached with Set.
func (c *Conn) Get(key any) (any, bool) { return c.values.Load(key) }

// Close closes the connection at once. Calls waiting for responses fail with ErrConnClosed.
func (c *Conn) Close() error {
	c.closeWith(fmt.Errorf("%w: closed locally", ErrConnClosed))
	<-c.done
	return nil
}

// Invoke sends req and waits for its response until ctx ends. req is not modified.
func (c *Conn) Invoke(ctx context.Context, req *remoting.Command) (*remoting.Command, error) {
	cl := &call{ch: make(chan result, 1)}
	opaque, err := c.register(cl)
	if err != nil {
		return nil, err
	}
	if err := c.sendRequest(ctx, req, opaque, 0); err != nil {
		c.take(opaque)
		return nil, err
	}
	select {
	case r := <-cl.ch:
		return r.resp, r.err
	case <-ctx.Done():
		if c.take(opaque) == nil {
			r := <-cl.ch // the response won the race
			return r.resp, r.err
		}
		return nil, ctx.Err()
	}
}

// InvokeAsync sends req and calls cb exactly once, on its own goroutine, with the response or with the
// error that ended the call (ctx's error, or ErrConnClosed). If InvokeAsync returns an error, cb is
// not called.
func (c *Conn) InvokeAsync(ctx context.Context, req *remoting.Command, cb func(*remoting.Command, error)) error {
	cl := &call{cb: cb}
	opaque, err := c.register(cl)
	if err != nil {
		return err
	}
	// The watcher is installed under the pending lock's protection by the take protocol: whoever takes
	// the call from the table first completes it.
	cl.stopAfter = context.AfterFunc(ctx, func() {
		if c.take(opaque) != nil {
			c.runCallback(cb, nil, ctx.Err())
		}
	})
	if err := c.sendRequest(ctx, req, opaque, 0); err != nil {
		if c.take(opaque) != nil {
			cl.stopAfter()
			return err
		}
		return nil // already completed by the context watcher or a close
	}
	return nil
}

// InvokeOneway sends req with the oneway flag; no response is expected. It returns once the request is
// queued for writing.
func (c *Conn) InvokeOneway(ctx context.Context, req *remoting.Command) error {
	return c.sendRequest(ctx, req, c.nextOpaque.Add(1), remoting.FlagOneway)
}

func (c *Conn) register(cl *call) (int32, error) {
	opaque := c.nextOpaque.Add(1)
	c.pending.Lock()
	defer c.pending.Unlock()
	if c.pending.err != nil {
		return 0, c.pending.err
	}
	c.pending.calls[opaque] = cl
	return opaque, nil
}

// take removes and returns the pending call for opaque, or nil if another path completed it.
func (c *Conn) take(opaque int32) *call {
	c.pending.Lock()
	defer c.pending.Unlock()
	cl := c.pending.calls[opaque]
	delete(c.pending.calls, opaque)
	return cl
}

func (c *Conn) complete(cl *call, resp *remoting.Command, err error) {
	if cl.ch != nil {
		cl.ch <- result{resp, err}
		return
	}
	if cl.stopAfter != nil {
		cl.stopAfter()
	}
	c.runCallback(cl.cb, resp, err)
}

func (c *Conn) runCallback(cb func(*remoting.Command, error), resp *remoting.Command, err error) {
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		cb(resp, err)
	}()
}

func (c *Conn) sendRequest(ctx context.Context, req *remoting.Command, opaque int32, extraFlag int32) error {
	r := *req
	r.Opaque = opaque
	r.Flag = (r.Flag &^ remoting.FlagResponse) | extraFlag
	return c.send(ctx, &r)
}

// send encodes cmd and queues it for the writer, waiting while the write queue is over its limit.
func (c *Conn) send(ctx context.Context, cmd *remoting.Command) error {
	body := cmd.Body
	bodyLen := len(body)
	inline := bodyLen <= smallBody
	capacity := 256
	if inline {
		capacity += bodyLen
	}
	buf, err := remoting.AppendFrameHeader(make([]byte, 0, capacity), cmd, bodyLen)
	if err != nil {
		return err
	}
	if bodyLen > c.cfg.maxFrame {
		return fmt.Errorf("%w: body of %d bytes exceeds the frame limit %d", remoting.ErrFrameTooLarge, bodyLen, c.cfg.maxFrame)
	}
	if inline {
		buf = append(buf, body...)
	}
	size := len(buf)
	if !inline {
		size += bodyLen
	}
	for {
		c.out.Lock()
		if c.out.closed {
			c.out.Unlock()
			return c.closedErr()
		}
		if c.out.bytes == 0 || c.out.bytes+size <= c.cfg.maxQueuedBytes {
			c.out.bufs = append(c.out.bufs, buf)
			if !inline {
				c.out.bufs = append(c.out.bufs, body)
			}
			c.out.bytes += size
			c.out.Unlock()
			select {
			case c.outReady <- struct{}{}:
			default:
			}
			return nil
		}
		c.out.Unlock()
		select {
		case <-c.outSpace:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.closedErr()
		}
	}
}

func (c *Conn) closedErr() error {
	c.pending.Lock()
	defer c.pending.Unlock()
	if c.pending.err != nil {
		return c.pending.err
	}
	return ErrConnClosed
}

// writeLoop owns writes to the socket: it takes whatever frames are queued and writes them with one
// vectored write, so concurrent responses are batched and never interleaved.
func (c *Conn) writeLoop() {
	defer close(c.writerEnd)
	for {
		select {
		case <-c.outReady:
		case <-c.closing:
			// Flush what is queued (a graceful close queues its last responses first), then stop.
			c.flush()
			return
		}
		if err := c.flush(); err != nil {
			// closeWith waits for this goroutine to end, so it cannot run here.
			go c.closeWith(fmt.Errorf("%w: write: %v", ErrConnClosed, err))
			return
		}
	}
}

func (c *Conn) flush() error {
	c.out.Lock()
	bufs := c.out.bufs
	c.out.bufs = nil
	c.out.bytes = 0
	c.out.Unlock()
	if len(bufs) == 0 {
		return nil
	}
	select {
	case c.outSpace <- struct{}{}:
	default:
	}
	if c.cfg.writeTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	}
	_, err := bufs.WriteTo(c.nc)
	return err
}

func (c *Conn) readLoop() {
	defer close(c.readerEnd)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		if c.cfg.idleTimeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.cfg.idleTimeout))
		}
		frame, err := remoting.ReadFrame(br, c.cfg.maxFrame)
		if err != nil {
			c.readFailed(err)
			return
		}
		cmd, err := remoting.DecodeFrame(frame)
		if err != nil {
			c.readFailed(err)
			return
		}
		if cmd.IsResponse() {
			if cl := c.take(cmd.Opaque); cl != nil {
				c.complete(cl, cmd, nil)
			} // else: the caller gave up, or the peer answered a oneway call; drop it
			continue
		}
		select {
		case c.inflight <- struct{}{}:
		case <-c.closing:
			return
		}
		c.handlers.Add(1)
		go c.serve(cmd)
	}
}

func (c *Conn) readFailed(err error) {
	if c.draining.Load() {
		return // gracefulClose stopped the reader and closes the connection itself
	}
	var ne net.Error
	switch {
	case errors.Is(err, remoting.ErrMalformedFrame), errors.Is(err, remoting.ErrFrameTooLarge):
		c.cfg.logger.Warn("closing connection after a bad frame", "remote", c.nc.RemoteAddr().String(), "err", err)
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("idle for %s", c.cfg.idleTimeout)
		c.cfg.logger.Debug("closing idle connection", "remote", c.nc.RemoteAddr().String())
	case err == io.EOF:
		err = errors.New("closed by peer")
	}
	c.closeWith(fmt.Errorf("%w: %v", ErrConnClosed, err))
}

func (c *Conn) serve(req *remoting.Command) {
	defer func() {
		<-c.inflight
		c.handlers.Done()
	}()
	resp := c.dispatch(req)
	if resp == nil || req.IsOneway() {
		return
	}
	resp.Opaque = req.Opaque
	resp.Flag |= remoting.FlagResponse
	resp.SerializeType = req.SerializeType
	if err := c.send(context.Background(), resp); err != nil && !errors.Is(err, ErrConnClosed) {
		c.cfg.logger.Warn("cannot send response", "remote", c.nc.RemoteAddr().String(), "request", req.String(), "err", err)
		fallback := remoting.Errorf(code.SystemError, "response could not be encoded: %v", err)
		fallback.Opaque, fallback.Flag, fallback.SerializeType = req.Opaque, remoting.FlagResponse, req.SerializeType
		c.send(context.Background(), fallback)
	}
}

// dispatch runs the handler. A panicking handler is a bug in Apogee, not the peer's fault: it is logged
// with its stack and answered with SYSTEM_ERROR, and the server keeps serving, as net/http does.
func (c *Conn) dispatch(req *remoting.Command) (resp *remoting.Command) {
	defer func() {
		if v := recover(); v != nil {
			c.cfg.logger.Error("handler panic", "request", req.String(), "panic", v, "stack", string(debug.Stack()))
			resp = remoting.Errorf(code.SystemError, "internal error handling %s", req.RequestCode())
		}
	}()
	return c.cfg.handler.ServeRemoting(c.ctx, c, req)
}

// closeWith closes the connection once with cause: pending calls fail, handlers' contexts are
// cancelled, queued frames are flushed (best effort), and the close hook runs.
func (c *Conn) closeWith(cause error) {
	c.closeOnce.Do(func() {
		c.closeErr = cause
		c.pending.Lock()
		c.pending.err = cause
		calls := c.pending.calls
		c.pending.calls = nil
		c.pending.Unlock()
		c.out.Lock()
		c.out.closed = true
		c.out.Unlock()
		c.cancel()
		close(c.closing)
		<-c.writerEnd
		c.nc.Close()
		for _, cl := range calls {
			c.complete(cl, nil, cause)
		}
		close(c.done)
		if c.cfg.onClose != nil {
			c.cfg.onClose(c)
		}
	})
}

// gracefulClose stops reading requests, lets the handlers in flight finish and their responses go out,
// then closes. If ctx ends first the connection is closed at once. The handlers' context must already
// be cancelled (the server cancels it) so that waiting handlers return promptly.
func (c *Conn) gracefulClose(ctx context.Context, cause error) {
	c.draining.Store(true)
	c.nc.SetReadDeadline(time.Now())
	finished := make(chan struct{})
	go func() {
		<-c.readerEnd
		c.handlers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	c.closeWith(cause)
	<-c.done
}
