package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/apogeemq/apogee/client"
	"github.com/apogeemq/apogee/internal/histogram"
)

func newBenchCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generators for producers and consumers (work against Apogee and Apache RocketMQ)",
	}
	cmd.AddCommand(newBenchProducerCommand(g), newBenchConsumerCommand(g))
	return cmd
}

// benchProducerFlags are the settings of `apogee bench producer`.
type benchProducerFlags struct {
	namesrv  string
	topic    string
	threads  int
	size     int
	count    int64
	duration time.Duration
	async    bool
	batch    int
}

func newBenchProducerCommand(g *globalFlags) *cobra.Command {
	var f benchProducerFlags
	cmd := &cobra.Command{
		Use:   "producer",
		Short: "Send messages as fast as possible and report throughput and latency",
		Long: `Send messages as fast as possible. One line per second shows the rate and latency while it runs;
the last line is exactly:
RESULT sent=N errors=E seconds=S tps=T p50_ms=A p99_ms=B max_ms=C`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.topic == "" || f.namesrv == "" {
				return fmt.Errorf("--namesrv and --topic are required")
			}
			if f.threads < 1 || f.size < 1 || f.batch < 1 {
				return fmt.Errorf("--threads, --size and --batch must be at least 1")
			}
			if f.count <= 0 && f.duration <= 0 {
				f.duration = 30 * time.Second
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			tuneGC()
			p, err := client.NewProducer(client.WithNameServers(splitAddrs(f.namesrv)...), client.WithLogger(logger))
			if err != nil {
				return err
			}
			defer p.Close()
			return runProducerBench(cmd.Context(), p, &f, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&f.namesrv, "namesrv", "n", "", "NameServer addresses, separated by ';'")
	cmd.Flags().StringVarP(&f.topic, "topic", "t", "", "topic to send to")
	cmd.Flags().IntVar(&f.threads, "threads", 8, "concurrent senders")
	cmd.Flags().IntVar(&f.size, "size", 1024, "message body size in bytes")
	cmd.Flags().Int64Var(&f.count, "count", 0, "stop after this many messages (default: run for --duration)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this long (default 30s when --count is not set)")
	cmd.Flags().BoolVar(&f.async, "async", false, "send asynchronously, up to 1024 sends in flight per thread")
	cmd.Flags().IntVar(&f.batch, "batch", 1, "messages per send (a batch)")
	return cmd
}

func splitAddrs(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ';' || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// liveStats collects latencies, a count and errors from many goroutines. A reporter takes the last
// second's histogram every second; take also folds it into the whole run's.
type liveStats struct {
	mu       sync.Mutex
	interval histogram.Histogram
	total    histogram.Histogram
	count    atomic.Int64
	errors   atomic.Int64
}

// record counts n messages that took d.
func (s *liveStats) record(d time.Duration, n int) {
	s.mu.Lock()
	for range n {
		s.interval.Record(d)
	}
	s.mu.Unlock()
	s.count.Add(int64(n))
}

// take returns the histogram recorded since the last take and adds it to total.
func (s *liveStats) take() histogram.Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	iv := s.interval
	s.interval = histogram.Histogram{}
	s.total.Merge(&iv)
	return iv
}

// reportEvery calls report each second, and once more when stop closes unless a report just ran,
// then returns the end time. report gets the time of the previous report (or start).
func reportEvery(stop <-chan struct{}, start time.Time, report func(now, last time.Time)) time.Time {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := start
	for {
		select {
		case now := <-tick.C:
			report(now, last)
			last = now
		case <-stop:
			now := time.Now()
			if now.Sub(last) > 100*time.Millisecond {
				report(now, last)
			}
			return now
		}
	}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

func runProducerBench(ctx context.Context, p *client.Producer, f *benchProducerFlags, out io.Writer) error {
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	body := make([]byte, max(f.size, benchStampLen))
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	var st liveStats
	var issued atomic.Int64
	take := func(n int) int { // how many of the next n messages this sender may send
		if f.count <= 0 {
			return n
		}
		end := issued.Add(int64(n))
		if over := end - f.count; over > 0 {
			return max(n-int(over), 0)
		}
		return n
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range f.threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendLoop(ctx, p, f, body, &st, take)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	lastSent := int64(0)
	now := reportEvery(done, start, func(now, last time.Time) {
		iv := st.take()
		sent := st.count.Load()
		fmt.Fprintf(out, "%5.0fs  sent=%d  tps=%.0f  avg=%sms  p50=%sms  p99=%sms  max=%sms  errors=%d\n",
			now.Sub(start).Seconds(), sent, float64(sent-lastSent)/now.Sub(last).Seconds(), ms(iv.Mean()), ms(iv.Quantile(0.5)),
			ms(iv.Quantile(0.99)), ms(iv.Max()), st.errors.Load())
		lastSent = sent
	})
	secs := now.Sub(start).Seconds()
	fmt.Fprintf(out, "RESULT sent=%d errors=%d seconds=%.2f tps=%.0f p50_ms=%s p99_ms=%s max_ms=%s\n",
		st.count.Load(), st.errors.Load(), secs, float64(st.count.Load())/secs, ms(st.total.Quantile(0.5)), ms(st.total.Quantile(0.99)), ms(st.total.Max()))
	return nil
}

// sendLoop sends until ctx ends or take says the count is reached. Sends already issued when ctx ends
// still complete (they run under a context without its cancellation), so the end of a timed run is
// not counted as errors.
func sendLoop(ctx context.Context, p *client.Producer, f *benchProducerFlags, body []byte, st *liveStats, take func(int) int) {
	sendCtx := context.WithoutCancel(ctx)
	var inflight sync.WaitGroup
	window := make(chan struct{}, 1024)
	defer inflight.Wait()
	for ctx.Err() == nil {
		n := take(f.batch)
		if n == 0 {
			return
		}
		begin := time.Now()
		msgs := make([]*client.Message, n)
		for i := range msgs {
			stamped := append([]byte(nil), body...) // each body starts with its send time, for bench consumer
			binary.BigEndian.PutUint64(stamped, uint64(begin.UnixNano()))
			msgs[i] = &client.Message{Topic: f.topic, Body: stamped}
		}
		switch {
		case f.async && n == 1:
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			inflight.Add(1)
			p.SendAsync(sendCtx, msgs[0], func(_ *client.SendResult, err error) {
				defer inflight.Done()
				<-window
				if err != nil {
					st.errors.Add(1)
					return
				}
				st.record(time.Since(begin), 1)
			})
		case n > 1:
			if _, err := p.SendBatch(sendCtx, msgs...); err != nil {
				st.errors.Add(1)
				continue
			}
			st.record(time.Since(begin), n)
		default:
			if _, err := p.Send(sendCtx, msgs[0]); err != nil {
				st.errors.Add(1)
				continue
			}
			st.record(time.Since(begin), 1)
		}
	}
}
