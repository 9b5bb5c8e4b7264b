// Package broker is Apogee's broker: RocketMQ's request handlers over the message store (send, pull
// with long polling, consumer offsets, client heartbeats, queue locks, topic and group admin,
// queries), its metadata (topics, subscription groups, consumer offsets, persisted under
// <storePathRootDir>/config), and its registration with the NameServers.
//
// Usage:
//
//	ln, _ := net.Listen("tcp", ":10911")
//	b, err := broker.Open(broker.Options{NamesrvAddr: []string{"127.0.0.1:9876"}, StorePathRootDir: "./data"}, ln)
//	...
//	b.Shutdown(ctx) // unregisters, finishes requests in flight, persists offsets, closes the store
//
// Handlers live one family per file (send.go, pull.go, offsets_handlers.go, client_handlers.go,
// admin.go, query.go); each is registered in routes().
package broker
