// Package interop holds Apogee's compatibility tests: the official RocketMQ Go client,
// github.com/apache/rocketmq-client-go/v2 at v2.1.2, driving the apogee binary over TCP. It is its
// own module so the client and its dependencies stay out of Apogee's go.mod.
//
// The tests build ./cmd/apogee once (TestMain) and run it as a child process on free loopback
// ports, exactly as a user would.
package interop
