package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/apogeemq/apogee/client"
	"github.com/apogeemq/apogee/message"
)

// benchConsumerFlags are the settings of `apogee bench consumer`.
type benchConsumerFlags struct {
	namesrv  string
	topic    string
	group    string
	count    int64
	duration time.Duration
}

func newBenchConsumerCommand(g *globalFlags) *cobra.Command {
	var f benchConsumerFlags
	cmd := &cobra.Command{
		Use:   "consumer",
		Short: "Consume a topic from its first message and report throughput and end-to-end latency",
		Long: `Consume a topic from its first message. One line per second shows the rate and the end-to-end
latency (from the send time that 'apogee bench producer' writes into each body, else the message's
born time); the last line is exactly:
RESULT received=N seconds=S tps=T e2e_p50_ms=A e2e_p99_ms=B`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" || f.namesrv == "" {
				return fmt.Errorf("--namesrv and --topic are required")
			}
			if f.group == "" {
				f.group = "bench_" + f.topic
			}
			if f.count <= 0 && f.duration <= 0 {
				f.duration = 30 * time.Second
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			tuneGC()
			return runConsumerBench(cmd.Context(), &f, cmd.OutOrStdout(), client.WithNameServers(splitAddrs(f.namesrv)...), client.WithLogger(logger))
		},
	}
	cmd.Flags().StringVarP(&f.namesrv, "namesrv", "n", "", "NameServer addresses, separated by ';'")
	cmd.Flags().StringVarP(&f.topic, "topic", "t", "", "topic to consume")
	cmd.Flags().StringVarP(&f.group, "group", "g", "", "consumer group (default bench_<topic>)")
	cmd.Flags().Int64Var(&f.count, "count", 0, "stop after this many messages (default: run for --duration)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this long (default 30s when --count is not set)")
	return cmd
}

// benchStamp is the first 8 bytes 'apogee bench producer' writes into a body: the send time in Unix
// nanoseconds, big-endian (as bench/jsbench does for JetStream).
const benchStampLen = 8

// sentAt returns when a message was sent: the bench stamp when the body carries a plausible one,
// else the born time (millisecond resolution).
func sentAt(m *message.Message, now time.Time) time.Time {
	if len(m.Body) >= benchStampLen {
		t := time.Unix(0, int64(binary.BigEndian.Uint64(m.Body)))
		if d := now.Sub(t); d >= 0 && d < 24*time.Hour {
			return t
		}
	}
	return time.UnixMilli(m.BornTimestamp)
}

func runConsumerBench(ctx context.Context, f *benchConsumerFlags, out io.Writer, opts ...client.Opt) error {
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	var st liveStats
	stop := make(chan struct{}) // closed when the count is reached or ctx ends
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	defer context.AfterFunc(ctx, end)()
	handler := func(_ context.Context, m *message.Message) error {
		now := time.Now()
		st.record(now.Sub(sentAt(m, now)), 1)
		if f.count > 0 && st.count.Load() >= f.count {
			end()
		}
		return nil
	}
	pushOpts := []client.PushConsumerOpt{client.WithConsumeFrom(client.ConsumeFromFirst)}
	for _, o := range opts {
		pushOpts = append(pushOpts, o)
	}
	pc, err := client.NewPushConsumer(f.group, handler, pushOpts...)
	if err != nil {
		return err
	}
	if err := pc.Subscribe(f.topic, "*"); err != nil {
		return err
	}
	if err := pc.Start(ctx); err != nil {
		return err
	}
	start := time.Now()
	lastN := int64(0)
	endTime := reportEvery(stop, start, func(now, last time.Time) {
		iv := st.take()
		n := st.count.Load()
		fmt.Fprintf(out, "%5.0fs  received=%d  tps=%.0f  e2e_p50=%sms  e2e_p99=%sms\n",
			now.Sub(start).Seconds(), n, float64(n-lastN)/now.Sub(last).Seconds(), ms(iv.Quantile(0.5)), ms(iv.Quantile(0.99)))
		lastN = n
	})
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc.Shutdown(sctx)
	st.take() // handlings that finished during the shutdown count in the totals
	n := st.count.Load()
	secs := endTime.Sub(start).Seconds()
	fmt.Fprintf(out, "RESULT received=%d seconds=%.2f tps=%.0f e2e_p50_ms=%s e2e_p99_ms=%s\n",
		n, secs, float64(n)/secs, ms(st.total.Quantile(0.5)), ms(st.total.Quantile(0.99)))
	return nil
}
