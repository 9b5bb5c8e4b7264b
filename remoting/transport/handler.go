package transport

import (
	"context"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

// Handler answers one request. It returns the response, or nil to send none (the transport also sends
// none for oneway requests). The transport fills in the response's opaque, flag and serialize type.
//
// ctx is cancelled when the connection closes or the server shuts down; a handler that waits (long
// polling) must watch it. Handlers run concurrently, also for one
// connection, except those a Mux runs inline (see Inliner).
type Handler interface {
	ServeRemoting(ctx context.Context, conn *Conn, req *remoting.Command) *remoting.Command
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, conn *Conn, req *remoting.Command) *remoting.Command

// ServeRemoting calls f.
func (f HandlerFunc) ServeRemoting(ctx context.Context, conn *Conn, req *remoting.Command) *remoting.Command {
	return f(ctx, conn, req)
}

// Mux dispatches requests to handlers by request code and answers codes without a handler with
// REQUEST_CODE_NOT_SUPPORTED. Register every handler before serving; a Mux is not safe for concurrent
// registration and dispatch.
type Mux struct {
	handlers map[code.Request]Handler
	inline   map[code.Request]func(*remoting.Command) bool
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{handlers: make(map[code.Request]Handler), inline: make(map[code.Request]func(*remoting.Command) bool)}
}

// Inliner is implemented by a Handler that knows which requests it answers quickly and without
// waiting on anything but the CPU. Those run on their connection's reader goroutine: no hand-off to
// another goroutine, at the cost of reading the connection's next request only once the answer is
// queued. A handler that may wait (long polling, a disk flush per request) must not be inline: it
// would stall every request behind it on the connection. An inline handler must be done with req
// when it returns, its answer included (Conn.Later keeps what it needs): the reader decodes the next
// request into the same Command, and a request already whole in the reader's buffer is decoded in
// place: its Body and the strings of its header (remark, ext field keys and values) are memory the
// next read reuses (remoting.DecodeFrameAliased). Copy what you keep.
type Inliner interface {
	Inline(req *remoting.Command) bool
}

// HandleInline registers h for request code c, to run on the reader goroutine (see Inliner).
func (m *Mux) HandleInline(c code.Request, h HandlerFunc) {
	m.HandleInlineIf(c, h, func(*remoting.Command) bool { return true })
}

// HandleInlineIf registers h for request code c, to run on the reader goroutine for the requests
// inline accepts (see Inliner) and on a goroutine of their own for the others. inline runs on the
// reader goroutine for every request with code c, so it must be quick.
func (m *Mux) HandleInlineIf(c code.Request, h HandlerFunc, inline func(req *remoting.Command) bool) {
	m.handlers[c] = h
	m.inline[c] = inline
}

// Inline reports whether req runs on the reader goroutine, as HandleInline or HandleInlineIf said.
func (m *Mux) Inline(req *remoting.Command) bool {
	inline := m.inline[req.RequestCode()]
	return inline != nil && inline(req)
}

// Handle registers h for request code c, replacing any earlier handler.
func (m *Mux) Handle(c code.Request, h Handler) {
	m.handlers[c] = h
	delete(m.inline, c)
}

// HandleFunc registers f for request code c.
func (m *Mux) HandleFunc(c code.Request, f HandlerFunc) { m.Handle(c, f) }

// Handles reports whether a handler is registered for c.
func (m *Mux) Handles(c code.Request) bool {
	_, ok := m.handlers[c]
	return ok
}

// ServeRemoting dispatches req by its code.
func (m *Mux) ServeRemoting(ctx context.Context, conn *Conn, req *remoting.Command) *remoting.Command {
	if h, ok := m.handlers[req.RequestCode()]; ok {
		return h.ServeRemoting(ctx, conn, req)
	}
	return remoting.Errorf(code.RequestCodeNotSupported, "request code %d (%s) is not supported", req.Code, req.RequestCode())
}
