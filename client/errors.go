package client

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

var (
	// ErrClosed is returned by every call made after Close, and by calls that Close interrupted.
	// A retry cannot help.
	ErrClosed = errors.New("client: closed")

	// ErrMessageTooLarge is returned (wrapped, with the sizes) before anything is sent when a message
	// body or a batch is larger than the producer's maximum (WithMaxMessageSize). A retry cannot help.
	ErrMessageTooLarge = errors.New("client: message too large")

	// ErrInvalidMessage is returned (wrapped, with the reason) before anything is sent for a message
	// without a topic or body, with a bad topic name, bad properties, or a batch that mixes topics or
	// carries delay levels. A retry cannot help.
	ErrInvalidMessage = errors.New("client: invalid message")

	// ErrNoRoute is returned (wrapped) when no NameServer knows a route for a topic and none allows
	// auto-creation, or when a route has no writable (or readable) queue. A retry may help once the
	// topic is created or its brokers come back.
	ErrNoRoute = errors.New("client: no route")

	// ErrNoNameServer is returned when a client that needs routes was built without NameServer
	// addresses. Give them with WithNameServers.
	ErrNoNameServer = errors.New("client: no NameServer address")
)

// ResponseError is a request a server answered with a code other than SUCCESS. Test for it with
// errors.As, or for one code with errors.Is(err, &ResponseError{Code: code.TopicNotExist}).
type ResponseError struct {
	Request code.Request  // what was asked
	Code    code.Response // what the server answered
	Remark  string        // the server's explanation
	Addr    string        // the server's address
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("client: %s to %s: %s: %s", e.Request, e.Addr, e.Code, e.Remark)
}

// Retriable reports whether the same request can succeed later or on another server (the code
// table's verdict, code.Response.Retriable).
func (e *ResponseError) Retriable() bool { return e.Code.Retriable() }

// Is makes errors.Is(err, &ResponseError{Code: c}) match any ResponseError with code c.
func (e *ResponseError) Is(target error) bool {
	t, ok := target.(*ResponseError)
	return ok && t.Code == e.Code
}

// IsRetriable reports whether retrying the call that returned err can help: true for answers with a
// retriable code, for connection failures and timeouts of a single request, and for ErrNoRoute; false
// for nil, ErrClosed, invalid or oversized messages, and a context the caller canceled.
func IsRetriable(err error) bool {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
		return false
	}
	var r interface{ Retriable() bool }
	if errors.As(err, &r) {
		return r.Retriable()
	}
	if errors.Is(err, ErrNoRoute) || errors.Is(err, transport.ErrConnClosed) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// responseErr returns nil for a SUCCESS answer and a *ResponseError otherwise.
func responseErr(req code.Request, addr string, c code.Response, remark string) error {
	if c == code.Success {
		return nil
	}
	return &ResponseError{Request: req, Code: c, Remark: remark, Addr: addr}
}
