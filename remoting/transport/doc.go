// Package transport carries remoting commands over TCP: a Server that dispatches requests to handlers
// by request code, and a Client that keeps one connection per address and correlates responses by
// opaque. Both sides share Conn, because the protocol is symmetric: a broker sends requests to its
// clients (CHECK_TRANSACTION_STATE, NOTIFY_CONSUMER_IDS_CHANGED, ...) over the connection the client
// opened.
//
// Usage:
//
//	mux := transport.NewMux()
//	mux.HandleFunc(code.GetRouteinfoByTopic, func(ctx context.Context, c *transport.Conn, req *remoting.Command) *remoting.Command {
//		return remoting.NewResponse(code.Success, "")
//	})
//	srv := transport.NewServer(transport.Options{Handler: mux})
//	go srv.Serve(ln)
//	defer srv.Shutdown(ctx)
//
//	cl := transport.NewClient(transport.ClientOptions{})
//	defer cl.Close()
//	req := remoting.NewRequest(code.GetRouteinfoByTopic, remoting.Fields{"topic", "TopicTest"}, nil)
//	resp, err := cl.Invoke(ctx, "127.0.0.1:9876", req)
//
// Every request is handled on a goroutine of its own (taken from a pool of reused ones), so a handler
// may block (long polling does) without holding up the connection, unless its Mux marks it inline:
// fast handlers run on the connection's reader goroutine and save the hand-off. Responses are written
// in completion order, each frame whole, batched into one vectored write when several are queued. A
// malformed or oversized frame closes its connection and nothing else. Handlers must not keep a request's Body
// after they return unless they copy it; it aliases the read buffer of that one frame only, so keeping
// it is safe but pins the frame.
package transport
