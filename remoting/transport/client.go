package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting"
)

// ClientOptions configures a Client. The zero value of each field selects its default.
type ClientOptions struct {
	// Handler answers requests the remote side sends over the client's connections (a broker's
	// NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...). Default: a Mux with no handlers, which
	// answers REQUEST_CODE_NOT_SUPPORTED.
	Handler Handler

	// DialTimeout bounds connecting, within the context of the call that dials. Default 3 s.
	DialTimeout time.Duration

	// MaxFrameLength is the largest frame accepted from a server. Default 16 MiB.
	MaxFrameLength int

	// IdleTimeout closes a connection on which nothing was read for this long; the next call dials
	// again. Default: never (negative also means never).
	IdleTimeout time.Duration

	// WriteTimeout bounds one write. Default 30 s; negative means none.
	WriteTimeout time.Duration

	// Logger receives connection-level events. Default: discard.
	Logger *slog.Logger
}

// Client sends requests to remoting servers over one connection per address, dialed on first use
// and dialed again after it drops. It is safe for concurrent use.
type Client struct {
	cfg         *connConfig
	dialTimeout time.Duration
	ctx         context.Context // parent of the handler contexts of every connection
	cancel      context.CancelFunc

	mu struct {
		sync.Mutex
		conns  map[string]*dialing
		closed bool
	}
	goroutines sync.WaitGroup
}

// dialing is a connection to one address, or the dial in progress that will produce it.
type dialing struct {
	ready chan struct{} // closed when the dial has finished
	conn  *Conn
	err   error
}

// NewClient returns a client.
func NewClient(opts ClientOptions) *Client {
	cfg := &connConfig{
		handler:      opts.Handler,
		maxFrame:     opts.MaxFrameLength,
		idleTimeout:  opts.IdleTimeout,
		writeTimeout: opts.WriteTimeout,
		logger:       opts.Logger,
	}
	if cfg.idleTimeout == 0 {
		cfg.idleTimeout = -1
	}
	cfg.ensureDefaults(0)
	c := &Client{cfg: cfg, dialTimeout: opts.DialTimeout}
	if c.dialTimeout <= 0 {
		c.dialTimeout = 3 * time.Second
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.conns = make(map[string]*dialing)
	cfg.onClose = c.forget
	return c
}

// Invoke sends req to addr and waits for the response until ctx ends. req is not modified.
func (c *Client) Invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	conn, err := c.Conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return conn.Invoke(ctx, req)
}

// InvokeTimeout is Invoke bounded also by timeout, as Conn.InvokeTimeout is.
func (c *Client) InvokeTimeout(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	conn, err := c.Conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return conn.InvokeTimeout(ctx, req, timeout)
}

// InvokeAsync sends req to addr and calls cb once with the outcome, as Conn.InvokeAsync does. If it
// returns an error, cb is not called.
func (c *Client) InvokeAsync(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, cb func(*remoting.Command, error)) error {
	conn, err := c.Conn(ctx, addr)
	if err != nil {
		return err
	}
	return conn.InvokeAsync(ctx, req, timeout, cb)
}

// InvokeOneway sends req to addr with the oneway flag and returns once it is queued.
func (c *Client) InvokeOneway(ctx context.Context, addr string, req *remoting.Command) error {
	conn, err := c.Conn(ctx, addr)
	if err != nil {
		return err
	}
	return conn.InvokeOneway(ctx, req)
}

// Conn returns the open connection to addr, dialing one if there is none. Concurrent callers share one
// dial.
func (c *Client) Conn(ctx context.Context, addr string) (*Conn, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, ErrClientClosed
	}
	d, ok := c.mu.conns[addr]
	if ok && d.conn != nil && d.conn.Err() != nil {
		ok = false // closed; its close hook has not removed it yet
	}
	if !ok {
		d = &dialing{ready: make(chan struct{})}
		c.mu.conns[addr] = d
		c.mu.Unlock()
		c.dial(addr, d)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.err != nil {
		return nil, d.err
	}
	return d.conn, nil
}

// dial connects d. It runs detached from the caller's context so that one caller giving up does not
// fail the others waiting for the same dial; the dial timeout bounds it.
func (c *Client) dial(addr string, d *dialing) {
	ctx, cancel := context.WithTimeout(c.ctx, c.dialTimeout)
	defer cancel()
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		c.mu.Lock()
		if c.mu.conns[addr] == d {
			delete(c.mu.conns, addr)
		}
		c.mu.Unlock()
		d.err = fmt.Errorf("transport: connect to %s: %w", addr, err)
		close(d.ready)
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	conn := newConn(nc, c.cfg, c.ctx)
	conn.Set(addrKey{}, addr)
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		nc.Close()
		d.err = ErrClientClosed
		close(d.ready)
		return
	}
	d.conn = conn // under mu, so Close sees it
	conn.start(&c.goroutines)
	c.mu.Unlock()
	close(d.ready)
}

type addrKey struct{}

// forget removes a closed connection so the next call dials again.
func (c *Client) forget(conn *Conn) {
	v, _ := conn.Get(addrKey{})
	addr, _ := v.(string)
	c.mu.Lock()
	if d, ok := c.mu.conns[addr]; ok && d.conn == conn {
		delete(c.mu.conns, addr)
	}
	c.mu.Unlock()
}

// Close closes every connection; calls waiting for responses fail with ErrConnClosed, and later calls
// with ErrClientClosed. It waits for the connections' goroutines and callbacks to end.
func (c *Client) Close() error {
	c.mu.Lock()
	c.mu.closed = true
	var conns []*Conn
	for _, d := range c.mu.conns {
		if d.conn != nil {
			conns = append(conns, d.conn)
		}
	}
	c.mu.Unlock()
	c.cancel()
	for _, conn := range conns {
		conn.closeWith(fmt.Errorf("%w: client closed", ErrConnClosed))
	}
	c.goroutines.Wait()
	for _, conn := range conns {
		conn.handlers.Wait()
	}
	c.cfg.workers.stop()
	return nil
}
