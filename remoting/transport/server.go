package transport

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting"
)

// Options configures a Server. The zero value of each field selects its default.
type Options struct {
	// Handler answers requests. Required.
	Handler Handler

	// MaxFrameLength is the largest frame accepted, as the value of the length prefix. Larger frames
	// close the connection before anything is allocated for them. Default remoting.DefaultMaxFrameLength
	// (16 MiB).
	MaxFrameLength int

	// IdleTimeout closes a connection that has sent nothing for this long. Default 120 s (RocketMQ's
	// serverChannelMaxIdleTimeSeconds); negative means never.
	IdleTimeout time.Duration

	// WriteTimeout bounds one write to a connection; a peer that does not read for this long is
	// disconnected. Default 30 s; negative means none.
	WriteTimeout time.Duration

	// MaxInflightPerConn bounds the requests of one connection handled at once, and separately the
	// answers it is owed through Conn.Later; reading from that connection pauses at either limit.
	// Default 4096.
	MaxInflightPerConn int

	// MaxQueuedBytesPerConn bounds the responses waiting to be written to one connection; handlers wait
	// while it is exceeded. Default 64 MiB.
	MaxQueuedBytesPerConn int

	// OnConnClose, if set, is called once for every connection after it closes.
	OnConnClose func(*Conn)

	// Logger receives connection-level events. Default: discard.
	Logger *slog.Logger
}

func (o *Options) config() *connConfig {
	cfg := &connConfig{
		handler:        o.Handler,
		maxFrame:       o.MaxFrameLength,
		idleTimeout:    o.IdleTimeout,
		writeTimeout:   o.WriteTimeout,
		maxInflight:    o.MaxInflightPerConn,
		maxQueuedBytes: o.MaxQueuedBytesPerConn,
		logger:         o.Logger,
		onClose:        o.OnConnClose,
	}
	cfg.ensureDefaults(120 * time.Second)
	return cfg
}

func (cfg *connConfig) ensureDefaults(idle time.Duration) {
	if cfg.maxFrame <= 0 {
		cfg.maxFrame = remoting.DefaultMaxFrameLength
	}
	switch {
	case cfg.idleTimeout == 0:
		cfg.idleTimeout = idle
	case cfg.idleTimeout < 0:
		cfg.idleTimeout = 0
	}
	switch {
	case cfg.writeTimeout == 0:
		cfg.writeTimeout = 30 * time.Second
	case cfg.writeTimeout < 0:
		cfg.writeTimeout = 0
	}
	if cfg.maxInflight <= 0 {
		cfg.maxInflight = 4096
	}
	if cfg.maxQueuedBytes <= 0 {
		cfg.maxQueuedBytes = 64 << 20
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.handler == nil {
		cfg.handler = NewMux()
	}
	if cfg.workers == nil {
		cfg.workers = newWorkers()
	}
	cfg.inline, _ = cfg.handler.(Inliner)
}

// Server accepts remoting connections and dispatches their requests.
type Server struct {
	cfg    *connConfig
	ctx    context.Context // parent of every handler context; cancelled by Shutdown
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[*Conn]struct{}
		closed    bool
	}
	goroutines sync.WaitGroup // accept loops and connection readers and writers
}

// NewServer returns a server; call Serve to start accepting.
func NewServer(opts Options) *Server {
	s := &Server{cfg: opts.config()}
	userClose := s.cfg.onClose
	s.cfg.onClose = func(c *Conn) {
		s.mu.Lock()
		delete(s.mu.conns, c)
		s.mu.Unlock()
		if userClose != nil {
			userClose(c)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.listeners = make(map[net.Listener]struct{})
	s.mu.conns = make(map[*Conn]struct{})
	return s
}

// Serve accepts connections on ln until Shutdown, then returns ErrServerClosed. Other accept errors
// are returned as they are, after the listener is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.mu.listeners[ln] = struct{}{}
	s.goroutines.Add(1)
	s.mu.Unlock()
	defer s.goroutines.Done()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.mu.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of file descriptors or a transient failure: back off instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.logger.Warn("accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-s.ctx.Done():
					return ErrServerClosed
				}
			}
			s.mu.Lock()
			delete(s.mu.listeners, ln)
			s.mu.Unlock()
			ln.Close()
			return err
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := newConn(nc, s.cfg, s.ctx)
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.mu.conns[c] = struct{}{}
		s.mu.Unlock()
		c.start(&s.goroutines)
	}
}

// Shutdown stops accepting, cancels the handlers' context so waiting handlers (long polls) answer now,
// lets every handler in flight finish and its response go out, and closes all connections. If ctx
// ends first, the remaining connections are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.mu.closed = true
	for ln := range s.mu.listeners {
		ln.Close()
	}
	conns := make([]*Conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()

	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.gracefulClose(ctx, ErrServerClosed)
		}()
	}
	wg.Wait()
	s.goroutines.Wait()
	s.cfg.workers.stop()
	return ctx.Err()
}

// Conns returns the connections open now.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*Conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	return conns
}
