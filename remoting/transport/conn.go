package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
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
	workers        *workers // runs handlers and async callbacks
	inline         Inliner  // the handler's, if it has requests to run on the reader goroutine
}

// call is a request waiting for its response. Exactly one of ch and cb is set.
type call struct {
	ch        chan result
	cb        func(*remoting.Command, error)
	stopAfter func() bool // stops the context watcher of an async call
	deadline  int64       // calls with a timeout: when the sweep fails it (Unix ns); else 0
}

// timeoutSweep is how often a connection looks for calls past their timeout (InvokeTimeout,
// InvokeAsync). Timeouts are
// kept to within this, at the cost of one scan of the pending calls per period, instead of a timer
// per call.
const timeoutSweep = 50 * time.Millisecond

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
	owed       chan struct{}  // semaphore bounding the answers owed through Later

	pending struct {
		sync.Mutex
		calls map[int32]*call
		err   error // set once the connection is closed; no new calls after
	}

	// out holds the frames waiting for the writer. Frames are encoded back to back into chunks from
	// a pool, so queuing one allocates nothing; a body above smallBody is not copied but queued by
	// reference after the chunk part before it.
	out struct {
		sync.Mutex
		chunk  []byte      // the chunk being filled
		cut    int         // chunk[:cut] is already in segs
		segs   net.Buffers // chunk parts and large bodies, in order, before chunk[cut:]
		full   []*[]byte   // chunks to give back to the pool once written
		bytes  int
		closed bool // no more frames are accepted
	}
	outReady chan struct{} // cap 1: frames were queued
	outSpace chan struct{} // cap 1: the writer drained the queue
	wmu      sync.Mutex    // held to write to the socket: by the writer, the reader or a caller (flushNow)
	vec      net.Buffers   // reused for each vectored write. Protected by wmu.
	unsent   net.Buffers   // what of vec WriteTo has still to write. Protected by wmu.
	written  []*[]byte     // the chunks of the write in progress. Protected by wmu.
	// writeDeadline is set while the socket has a write deadline. Protected by wmu.
	writeDeadline bool

	sweepOnce sync.Once // starts the sweep of timed-out async calls

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
		owed:      make(chan struct{}, cfg.maxInflight),
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
	return c.InvokeTimeout(ctx, req, 0)
}

// InvokeTimeout is Invoke that also gives up with context.DeadlineExceeded once timeout (if
// positive) has passed. Like InvokeAsync's, the timeout costs no timer: it is kept to within
// timeoutSweep, which saves a context and a timer per call against context.WithTimeout.
func (c *Conn) InvokeTimeout(ctx context.Context, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	cl := syncCalls.Get().(*call)
	c.setDeadline(cl, timeout)
	opaque, err := c.register(cl)
	if err != nil {
		releaseSyncCall(cl)
		return nil, err
	}
	if err := c.sendRequest(ctx, req, opaque, 0, true, timeout); err != nil {
		if c.take(opaque) != nil {
			releaseSyncCall(cl)
		} // else another path completes it and sends on cl.ch: it cannot be reused
		return nil, err
	}
	var r result
	select {
	case r = <-cl.ch:
	case <-ctx.Done():
		if c.take(opaque) != nil {
			releaseSyncCall(cl)
			return nil, ctx.Err()
		}
		r = <-cl.ch // the response won the race
	}
	releaseSyncCall(cl)
	return r.resp, r.err
}

// syncCalls recycles the calls of InvokeTimeout with their channels. A call goes back once nothing
// else can send on its channel: its result was received, or its caller took it from the pending
// table itself.
var syncCalls = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

func releaseSyncCall(cl *call) {
	cl.deadline = 0
	syncCalls.Put(cl)
}

// setDeadline gives cl a deadline timeout from now, for the sweep, if timeout is positive.
func (c *Conn) setDeadline(cl *call, timeout time.Duration) {
	if timeout > 0 {
		cl.deadline = time.Now().Add(timeout).UnixNano()
		c.sweepOnce.Do(func() { go c.sweepLoop() })
	}
}

// InvokeAsync sends req and calls cb exactly once, on a goroutine of the connection's pool, with the
// response or with the error that ended the call: ctx's error, context.DeadlineExceeded once
// timeout (if positive) has passed, or ErrConnClosed. The callbacks of responses read together run
// one after another on one goroutine, so a callback that blocks delays the others of its batch. The
// timeout costs no timer; it is kept to within timeoutSweep. If InvokeAsync returns an error, cb is
// not called.
func (c *Conn) InvokeAsync(ctx context.Context, req *remoting.Command, timeout time.Duration, cb func(*remoting.Command, error)) error {
	cl := &call{cb: cb}
	c.setDeadline(cl, timeout)
	opaque, err := c.register(cl)
	if err != nil {
		return err
	}
	if ctx.Done() != nil {
		// Whoever takes the call from the pending table first completes it: the response, this
		// watcher, the sweep or a close.
		cl.stopAfter = context.AfterFunc(ctx, func() {
			if c.take(opaque) != nil {
				// Not cl: its stopAfter may still be being set.
				c.runCallbacks([]answer{{call: &call{cb: cb}, err: ctx.Err()}})
			}
		})
	}
	if err := c.sendRequest(ctx, req, opaque, 0, false, 0); err != nil {
		if c.take(opaque) != nil {
			if cl.stopAfter != nil {
				cl.stopAfter()
			}
			return err
		}
		return nil // already completed by the context watcher, the sweep or a close
	}
	return nil
}

// sweepLoop fails the calls whose timeout has passed, until the connection closes.
func (c *Conn) sweepLoop() {
	tick := time.NewTicker(timeoutSweep)
	defer tick.Stop()
	var expired []*call
	for {
		select {
		case <-c.closing:
			return
		case now := <-tick.C:
			deadline := now.UnixNano()
			c.pending.Lock()
			for opaque, cl := range c.pending.calls {
				if cl.deadline != 0 && cl.deadline <= deadline {
					delete(c.pending.calls, opaque)
					expired = append(expired, cl)
				}
			}
			c.pending.Unlock()
			for i, cl := range expired {
				c.complete(cl, nil, context.DeadlineExceeded)
				expired[i] = nil
			}
			expired = expired[:0]
		}
	}
}

// InvokeOneway sends req with the oneway flag; no response is expected. It returns once the request is
// queued for writing.
func (c *Conn) InvokeOneway(ctx context.Context, req *remoting.Command) error {
	return c.sendRequest(ctx, req, c.nextOpaque.Add(1), remoting.FlagOneway, false, 0)
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
	c.runCallbacks([]answer{{cl, resp, err}})
}

// answer is how an async call ended, waiting for its callback to run.
type answer struct {
	call *call
	resp *remoting.Command
	err  error
}

// runCallbacks runs the callbacks of answers (those read together, or a single one), one after
// another on one goroutine of the pool.
func (c *Conn) runCallbacks(answers []answer) {
	if len(answers) == 0 {
		return
	}
	c.handlers.Add(1)
	c.cfg.workers.run(func() {
		defer c.handlers.Done()
		for _, a := range answers {
			if a.call.stopAfter != nil {
				a.call.stopAfter()
			}
			a.call.cb(a.resp, a.err)
		}
	})
}

// sendRequest queues req. A caller that blocks for the answer anyway passes waits, and its own
// timeout (0: none): unless many calls are pending (the writer batches those), the request is
// written on the caller's goroutine, without a hand-off to the writer, and a write that cannot
// finish within that timeout closes the connection, as the writer's would after writeTimeout: the
// caller never waits on the socket longer than on the answer. Other callers never wait for a write.
func (c *Conn) sendRequest(ctx context.Context, req *remoting.Command, opaque int32, extraFlag int32, waits bool, timeout time.Duration) error {
	r := *req
	r.Opaque = opaque
	r.Flag = (r.Flag &^ remoting.FlagResponse) | extraFlag
	if err := c.enqueue(ctx, &r); err != nil {
		return err
	}
	if !waits || c.manyWaiting() {
		c.wakeWriter()
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := max(time.Until(dl), time.Millisecond); timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	if w := c.cfg.writeTimeout; timeout <= 0 || (w > 0 && w < timeout) {
		timeout = w
	}
	c.flushNow(timeout)
	return nil
}

// send encodes cmd and queues it for the writer, waiting while the write queue is over its limit.
func (c *Conn) send(ctx context.Context, cmd *remoting.Command) error {
	if err := c.enqueue(ctx, cmd); err != nil {
		return err
	}
	c.wakeWriter()
	return nil
}

// enqueue is send without waking the writer: the reader goroutine, answering inline requests,
// writes the answers itself once it has no complete request left to read (see readLoop).
func (c *Conn) enqueue(ctx context.Context, cmd *remoting.Command) error {
	body := cmd.Body
	bodyLen := len(body)
	if bodyLen > c.cfg.maxFrame {
		return fmt.Errorf("%w: body of %d bytes exceeds the frame limit %d", remoting.ErrFrameTooLarge, bodyLen, c.cfg.maxFrame)
	}
	estimate := bodyLen + 512 // the header's size is known once it is encoded
	for {
		c.out.Lock()
		if c.out.closed {
			c.out.Unlock()
			return c.closedErr()
		}
		if c.out.bytes == 0 || c.out.bytes+estimate <= c.cfg.maxQueuedBytes {
			err := c.queueLocked(cmd)
			c.out.Unlock()
			return err
		}
		c.out.Unlock()
		c.wakeWriter() // the queue may hold only frames nobody woke the writer for
		select {
		case <-c.outSpace:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.closedErr()
		}
	}
}

// chunkSize is the size of the buffers frames are encoded into.
const chunkSize = 64 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

// queueLocked encodes cmd into the current chunk, starting a new one when the frame may not fit.
func (c *Conn) queueLocked(cmd *remoting.Command) error {
	body := cmd.Body
	inline := len(body) <= smallBody
	need := 512
	if inline {
		need += len(body)
	}
	if c.out.chunk == nil || cap(c.out.chunk)-len(c.out.chunk) < need {
		c.sealLocked()
		p := chunks.Get().(*[]byte)
		c.out.full = append(c.out.full, p)
		c.out.chunk, c.out.cut = (*p)[:0], 0
	}
	start := len(c.out.chunk)
	// A header larger than the room left makes append move the chunk to a new array; that array is
	// garbage after the write, and the pooled one is still given back.
	buf, err := remoting.AppendFrameHeader(c.out.chunk, cmd, len(body))
	if err != nil {
		return err
	}
	if inline {
		buf = append(buf, body...)
	} else {
		// The full slice expression keeps later appends from reaching into the queued part.
		c.out.segs = append(c.out.segs, buf[c.out.cut:len(buf):len(buf)], body)
		c.out.cut = len(buf)
		c.out.bytes += len(body)
	}
	c.out.bytes += len(buf) - start
	c.out.chunk = buf
	return nil
}

// sealLocked moves the unqueued part of the current chunk to segs; the chunk is not filled further.
func (c *Conn) sealLocked() {
	if c.out.cut < len(c.out.chunk) {
		c.out.segs = append(c.out.segs, c.out.chunk[c.out.cut:len(c.out.chunk):len(c.out.chunk)])
	}
	c.out.chunk, c.out.cut = nil, 0
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
			c.wmu.Lock()
			c.flush(c.cfg.writeTimeout)
			c.wmu.Unlock()
			return
		}
		if c.manyWaiting() {
			// Many callers wait for answers, which arrive together and wake them together: let
			// the ones already runnable queue their next request before this write, so one write
			// carries many. (With few callers the wait costs more than the write it saves.)
			runtime.Gosched()
		}
		c.wmu.Lock()
		ok := c.flushOrClose(c.cfg.writeTimeout)
		c.wmu.Unlock()
		if !ok {
			return
		}
	}
}

// batchingCalls is how many pending calls make the writer yield before it writes.
const batchingCalls = 16

// manyWaiting reports whether at least batchingCalls calls wait for their answers.
func (c *Conn) manyWaiting() bool {
	c.pending.Lock()
	defer c.pending.Unlock()
	return len(c.pending.calls) >= batchingCalls
}

// flush writes everything queued with one vectored write, failing if it takes longer than
// timeout (none if not positive). The caller holds wmu.
func (c *Conn) flush(timeout time.Duration) error {
	c.out.Lock()
	c.sealLocked()
	vec := append(c.vec[:0], c.out.segs...)
	clear(c.out.segs) // drop the references to bodies
	c.out.segs = c.out.segs[:0]
	written := append(c.written[:0], c.out.full...)
	clear(c.out.full)
	c.out.full = c.out.full[:0]
	c.out.bytes = 0
	c.out.Unlock()
	if len(vec) == 0 {
		return nil
	}
	select {
	case c.outSpace <- struct{}{}:
	default:
	}
	if timeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(timeout))
		c.writeDeadline = true
	} else if c.writeDeadline {
		c.nc.SetWriteDeadline(time.Time{}) // a caller's deadline must not outlive its write
		c.writeDeadline = false
	}
	// WriteTo consumes its receiver; a field for it, not a local, which would escape per write.
	c.unsent = vec
	_, err := c.unsent.WriteTo(c.nc)
	c.unsent = nil
	clear(vec)
	c.vec = vec[:0]
	for i, p := range written {
		chunks.Put(p)
		written[i] = nil
	}
	c.written = written[:0]
	return err
}

func (c *Conn) readLoop() {
	defer close(c.readerEnd)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	answered := false           // answers of inline requests are queued and the writer was not woken
	var answers []answer        // answers to async calls read since the last hand-off to a worker
	var spare *remoting.Command // the last inline request's command, decoded into again
	defer func() { c.runCallbacks(answers) }()
	for {
		if (answered || len(answers) > 0) && !frameBuffered(br) {
			// About to wait for the peer: write the answers now, on this goroutine, rather than
			// wake the writer for them. Requests that arrived together are answered together.
			if answered {
				c.flushNow(c.cfg.writeTimeout)
				answered = false
			}
			// The same for the callbacks of async calls: one hand-off per read, not per answer.
			c.runCallbacks(answers)
			answers = nil
		}
		if c.cfg.idleTimeout > 0 && !frameBuffered(br) {
			// Only a read that may wait needs the deadline; setting it per frame showed in profiles.
			c.nc.SetReadDeadline(time.Now().Add(c.cfg.idleTimeout))
		}
		frame, peeked, err := c.nextFrame(br)
		if err != nil {
			c.readFailed(err)
			return
		}
		cmd := spare
		if cmd == nil {
			cmd = newReadCommand()
		}
		// A connection with inline handlers decodes without copying the header's strings; a
		// command that does not go to one gets a copy of them (Own). Inline handlers are sends: a
		// send header then costs no allocation.
		decode := remoting.DecodeFrameInto
		if c.cfg.inline != nil {
			decode = remoting.DecodeFrameAliased
		}
		if err := decode(cmd, frame); err != nil {
			c.readFailed(err)
			return
		}
		inline := !cmd.IsResponse() && c.cfg.inline != nil && c.cfg.inline.Inline(cmd)
		spare = nil
		if inline {
			spare = cmd // its handler is done with it when it returns
		} else if c.cfg.inline != nil {
			cmd.Own()
		}
		if peeked > 0 && !inline {
			// The body aliases the reader's buffer, which the next read reuses: only an inline
			// request is done with it by then.
			if len(cmd.Body) > 0 {
				cmd.Body = bytes.Clone(cmd.Body)
			}
			br.Discard(peeked)
		}
		if cmd.IsResponse() {
			if cl := c.take(cmd.Opaque); cl == nil {
				// The caller gave up, or the peer answered a oneway call; drop it.
			} else if cl.cb != nil {
				answers = append(answers, answer{cl, cmd, nil})
			} else {
				c.complete(cl, cmd, nil)
			}
			continue
		}
		if !c.acquire() {
			return
		}
		if inline {
			c.serveInline(cmd)
			br.Discard(peeked)
			answered = true
			continue
		}
		c.cfg.workers.run(func() { c.serve(cmd) })
	}
}

// readCommand is a command read from the connection with room for the ext fields of most headers
// (a send's answer has five, a pull's seven), allocated as one.
type readCommand struct {
	cmd    remoting.Command
	fields [16]string
}

func newReadCommand() *remoting.Command {
	rc := new(readCommand)
	rc.cmd.ExtFields = rc.fields[:0]
	return &rc.cmd
}

// acquire counts a request as in flight, waiting while the connection's limit is reached. It reports
// false when the connection closes meanwhile.
func (c *Conn) acquire() bool {
	select {
	case c.inflight <- struct{}{}:
	case <-c.closing:
		return false
	}
	c.handlers.Add(1)
	return true
}

// nextFrame returns the next frame's bytes after the length prefix. A frame that fits br's buffer
// is read into it and not copied: frame aliases br's buffer until br.Discard(peeked) or the next
// read (peeked is 0 for a larger frame, read into a buffer of its own).
func (c *Conn) nextFrame(br *bufio.Reader) (frame []byte, peeked int, err error) {
	if prefix, err := br.Peek(4); err == nil {
		n := int64(binary.BigEndian.Uint32(prefix))
		if n >= 4 && n <= int64(c.cfg.maxFrame) && 4+n <= int64(br.Size()) {
			if b, err := br.Peek(4 + int(n)); err == nil {
				return b[4:], 4 + int(n), nil
			}
		}
	}
	// A larger frame, a bad length or a failed read: ReadFrame reads it or says what is wrong.
	frame, err = remoting.ReadFrame(br, c.cfg.maxFrame)
	return frame, 0, err
}

// frameBuffered reports whether br holds a whole frame, so that reading it will not wait.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	b, _ := br.Peek(4) // does not read: 4 bytes are buffered
	return int64(binary.BigEndian.Uint32(b)) <= int64(n-4)
}

// flushNow writes what is queued from the calling goroutine, within timeout, or, if the writer is
// writing at the moment, has it write again when done.
func (c *Conn) flushNow(timeout time.Duration) {
	if !c.wmu.TryLock() {
		c.wakeWriter()
		return
	}
	c.flushOrClose(timeout)
	c.wmu.Unlock()
}

// flushOrClose flushes (the caller holds wmu) and, if the write fails, has the connection closed;
// it reports whether the write succeeded. The close runs on its own goroutine: closeWith waits for
// the writer goroutine to end, which may be the caller.
func (c *Conn) flushOrClose(timeout time.Duration) bool {
	if err := c.flush(timeout); err != nil {
		go c.closeWith(fmt.Errorf("%w: write: %v", ErrConnClosed, err))
		return false
	}
	return true
}

// wakeWriter tells the writer goroutine that frames are queued.
func (c *Conn) wakeWriter() {
	select {
	case c.outReady <- struct{}{}:
	default:
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
	c.respond(answerTo(req), c.dispatch(req), true)
}

// serveInline is serve on the reader goroutine: the answer is queued without waking the writer.
func (c *Conn) serveInline(req *remoting.Command) {
	defer func() {
		<-c.inflight
		c.handlers.Done()
	}()
	c.respond(answerTo(req), c.dispatch(req), false)
}

// Later lets a handler answer req after it has returned: the handler returns nil and calls the
// returned Reply's Send exactly once, from any goroutine, with the response. Until then the request
// counts as in flight, so a graceful shutdown waits for its answer. A broker answers SYNC_FLUSH
// sends this way once their fsync is done, with no goroutine waiting meanwhile. The Reply keeps
// what the answer needs, not req, which an inline request's reader reuses; it is a value, so a
// handler can keep it without an allocation per request.
//
// At most MaxInflightPerConn answers may be owed this way: Later waits while that many are (unless
// the connection is closing), which stops an inline request's reader, so a peer that pipelines
// requests answered later cannot pile up unanswered ones without bound while, say, the disk stalls.
// (The answers come from elsewhere, not from handlers, so the wait cannot deadlock.)
func (c *Conn) Later(req *remoting.Command) Reply {
	c.handlers.Add(1)
	held := false
	select {
	case c.owed <- struct{}{}:
		held = true
	case <-c.closing:
	}
	return Reply{c: c, to: answerTo(req), held: held}
}

// Reply is an answer owed through Conn.Later.
type Reply struct {
	c    *Conn
	to   request
	held bool // a slot of c.owed is taken
}

// Send sends resp as the answer. It must be called exactly once.
func (r Reply) Send(resp *remoting.Command) {
	defer func() {
		if r.held {
			<-r.c.owed
		}
		r.c.handlers.Done()
	}()
	r.c.respond(r.to, resp, true)
}

// request is what answering a request needs of it.
type request struct {
	code          code.Request
	opaque        int32
	oneway        bool
	serializeType remoting.SerializeType
}

func answerTo(req *remoting.Command) request {
	return request{code: req.RequestCode(), opaque: req.Opaque, oneway: req.IsOneway(), serializeType: req.SerializeType}
}

// respond sends resp as the answer to the request to, unless there is none to send. wake says
// whether to wake the writer; the reader does not, as it writes inline answers itself.
func (c *Conn) respond(to request, resp *remoting.Command, wake bool) {
	if resp == nil {
		return
	}
	if resp.Release != nil {
		defer resp.Release() // encoded, or not to be sent: either way done with
	}
	if to.oneway {
		return
	}
	resp.Opaque = to.opaque
	resp.Flag |= remoting.FlagResponse
	resp.SerializeType = to.serializeType
	send := c.send
	if !wake {
		send = c.enqueue
	}
	if err := send(context.Background(), resp); err != nil && !errors.Is(err, ErrConnClosed) {
		c.cfg.logger.Warn("cannot send response", "remote", c.nc.RemoteAddr().String(), "request", to.code.String(), "opaque", to.opaque, "err", err)
		fallback := remoting.Errorf(code.SystemError, "response could not be encoded: %v", err)
		fallback.Opaque, fallback.Flag, fallback.SerializeType = to.opaque, remoting.FlagResponse, to.serializeType
		send(context.Background(), fallback)
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
