// Package namesrv is Apogee's NameServer: a stateless route registry that brokers register with and
// clients ask for routes. Several NameServers run side by side without talking to each other; every
// broker registers with each of them.
//
// RouteTable holds the state and does no I/O; Server answers the remoting requests over it and runs
// the liveness scan. Liveness follows RocketMQ: brokers re-register every 30 s, a scan every
// ScanInterval (10 s) drops a broker silent for BrokerTimeout (120 s) with all its routes, and a broker
// whose connection closes is dropped at once.
//
// Usage:
//
//	srv, err := namesrv.New(namesrv.Options{Logger: logger})
//	ln, err := net.Listen("tcp", ":9876")
//	go srv.Serve(ln)
//	...
//	srv.Shutdown(ctx)
package namesrv
