// Package client is Apogee's Go client for RocketMQ's remoting protocol: a Producer, a PushConsumer,
// a PullConsumer and an Admin. It speaks only the remoting protocol, so it works with Apogee and with Apache RocketMQ
// 4.9/5.x brokers alike.
//
// # Usage
//
//	p, err := client.NewProducer(client.WithNameServers("127.0.0.1:9876"), client.WithProducerGroup("orders"))
//	if err != nil { ... }
//	defer p.Close()
//	res, err := p.Send(ctx, &client.Message{Topic: "Orders", Body: []byte("hi"), Tags: "new", Keys: []string{"o-17"}})
//	if client.IsRetriable(err) { ... try again later ... }
//	var re *client.ResponseError
//	if errors.As(err, &re) { log.Println(re.Code, re.Remark) }
//
//	// Ordered: messages with one ShardingKey go to one queue, in order.
//	p.Send(ctx, &client.Message{Topic: "Orders", Body: b, ShardingKey: orderID})
//	// Asynchronous: the promise runs once, on a producer goroutine.
//	p.SendAsync(ctx, msg, func(r *client.SendResult, err error) { ... })
//
//	pc, err := client.NewPushConsumer("group", func(ctx context.Context, m *message.Message) error {
//		return process(m) // an error redelivers m later through %RETRY%group
//	}, client.WithNameServers("127.0.0.1:9876"))
//	pc.Subscribe("Orders", "*")
//	err = pc.Start(ctx)
//	defer pc.Shutdown(ctx) // finishes handlers, commits offsets, leaves the group
//
//	c, err := client.NewPullConsumer("group", client.WithNameServers("127.0.0.1:9876"))
//	defer c.Close()
//	err = c.Subscribe(ctx, "Orders", "new || paid") // or c.Assign(ctx, queues...)
//	for {
//		msgs, err := c.Poll(ctx) // long polling; the previous batch now counts as processed
//		...
//	}
//
//	// Transactional: exec runs once the half message is stored; its outcome commits or rolls back.
//	tp, _ := client.NewProducer(client.WithNameServers(ns), client.WithProducerGroup("tx"),
//		client.WithTransactionChecker(func(ctx context.Context, m *message.Message) client.TransactionState { ... }))
//	res, state, err := tp.SendTransaction(ctx, msg, func(ctx context.Context, res *client.SendResult) client.TransactionState { ... })
//
//	adm, err := client.NewAdmin(client.WithNameServers("127.0.0.1:9876"))
//	defer adm.Close()
//	err = adm.CreateTopic(ctx, client.TopicSpec{Topic: "Orders", Queues: 8})
//	stats, err := adm.ConsumeStats(ctx, "group", "Orders") // stats.Lag()
//
// # Behaviour
//
// Routes come from the NameServers (tried in turn), are cached per topic and refreshed every 30 s
// (WithRouteRefresh) and at once after a failed send. A topic no NameServer knows is sent through
// TBW102's route, so brokers with autoCreateTopicEnable create it.
//
// A send picks the next writable queue round-robin, skipping brokers that recently failed or answered
// slowly (RocketMQ 5's latency table, WithFaultAvoidance), and retries a retriable failure twice
// (WithSendRetries) on another broker, all within 3 s (WithSendTimeout) and the caller's context.
// Messages with a ShardingKey are ordered: the QueueSelector (HashSelector, as Java's
// SelectMessageQueueByHash) picks their queue and retries stay on it. Bodies over 4 KiB are
// zlib-compressed (WithCompressThreshold); bodies over 4 MiB are refused before sending
// (WithMaxMessageSize). Every message gets a UNIQ_KEY (SendResult.MsgID).
//
// A PullConsumer that subscribes shares the topic's queues with the group's other members
// (RocketMQ's average allocation, recomputed every 20 s and when a broker says the group changed) and
// keeps its offsets on the brokers: auto-committed every 5 s (WithAutoCommit) for the messages whose
// next Poll was called, so a crash re-delivers at most the batch in hand and the last interval.
//
// A PushConsumer runs a long-polling pull loop per owned queue (paused while 1000 messages or
// 100 MiB of it wait, WithQueueFlowControl), hands messages to 20 goroutines (WithConsumeGoroutines),
// sends failed ones back to the broker (redelivered through %RETRY%group, dead-lettered to
// %DLQ%group after 16 tries) and commits consumed offsets every 5 s: the lowest offset still in
// flight, so a crash re-delivers at most the messages in flight and the last interval.
//
// WithOrderly makes a PushConsumer orderly: it locks its queues on the brokers (renewed every 20 s)
// and handles each queue's messages one at a time in offset order; a failing message is retried in
// place, and after WithMaxReconsumeTimes tries moved to the dead-letter queue rather than blocking
// its queue forever.
//
// Queues are shared by AllocateAveragely (default), AllocateRoundRobin or AllocateConsistentHash
// (WithAllocateStrategy). WithBroadcasting makes every member consume every message, with its
// offsets in a local file. A broker's RESET_CONSUMER_CLIENT_OFFSET (an admin's ResetOffsetByTime)
// restarts the affected queues from the new offsets.
//
// Metrics and tracing plug in as hooks (WithHooks): values implementing SendHook or ConsumeHook.
// Logs go to a *slog.Logger (WithLogger), one line per significant event, never per message.
//
// # Errors
//
// Sentinels (ErrClosed, ErrMessageTooLarge, ErrInvalidMessage, ErrNoRoute, ErrNoNameServer) are
// tested with errors.Is. A server's refusal is a *ResponseError carrying its code; IsRetriable says
// whether trying again can help.
//
// # Obligations
//
// Every client must be closed: Close stops its goroutines (route refresh, heartbeats, asynchronous
// sends) and closes its connections. Clients in one process share nothing; the package's only
// variable is a counter that keeps default client ids unique.
package client
