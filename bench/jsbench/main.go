// Command jsbench loads NATS JetStream the way `apogee bench` loads Apogee, and prints the same
// RESULT lines, so scripts/bench-compare.sh can put both in one table.
//
//	jsbench pub --url nats://127.0.0.1:4222 --subject bench --threads 8 --size 1024 --count 100000 [--async]
//	jsbench sub --url nats://127.0.0.1:4222 --subject bench --count 100000
//
// pub creates the stream (file storage, one replica) if needed. Each body starts with its send time
// (Unix nanoseconds, 8 bytes big-endian), from which sub computes end-to-end latency.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apogeemq/apogee/internal/histogram"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: jsbench pub|sub [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := fs.String("url", nats.DefaultURL, "NATS server URL")
	subject := fs.String("subject", "bench", "subject (and stream name)")
	threads := fs.Int("threads", 8, "concurrent publishers")
	size := fs.Int("size", 1024, "body size in bytes (at least 8)")
	count := fs.Int64("count", 100000, "messages to publish or consume")
	async := fs.Bool("async", false, "publish asynchronously (up to 1024 acks pending per publisher)")
	fs.Parse(os.Args[2:])
	// The same collector setting as apogee bench (cmd/apogee/gc.go), so both load generators are
	// tuned alike.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	nc, err := nats.Connect(*url)
	if err != nil {
		fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "pub":
		_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: *subject, Subjects: []string{*subject},
			Storage: jetstream.FileStorage, Replicas: 1})
		if err == nil {
			err = publish(ctx, js, *subject, *threads, max(*size, 8), *count, *async)
		}
	case "sub":
		err = consume(ctx, js, *subject, *count)
	default:
		err = errors.New("want pub or sub")
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "jsbench:", err)
	os.Exit(1)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func publish(ctx context.Context, js jetstream.JetStream, subject string, threads, size int, count int64, async bool) error {
	var issued, errs atomic.Int64
	var mu sync.Mutex
	var hist histogram.Histogram
	record := func(d time.Duration) {
		mu.Lock()
		hist.Record(d)
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for issued.Add(1) <= count {
				body := make([]byte, size)
				begin := time.Now()
				binary.BigEndian.PutUint64(body, uint64(begin.UnixNano()))
				if !async {
					if _, err := js.Publish(ctx, subject, body); err != nil {
						errs.Add(1)
						continue
					}
					record(time.Since(begin))
					continue
				}
				f, err := js.PublishAsync(subject, body)
				if err != nil {
					errs.Add(1)
					continue
				}
				go func() {
					select {
					case <-f.Ok():
						record(time.Since(begin))
					case <-f.Err():
						errs.Add(1)
					}
				}()
			}
		}()
	}
	wg.Wait()
	if async {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return errors.New("async publishes not acknowledged within a minute")
		}
		for {
			mu.Lock()
			n := hist.Count()
			mu.Unlock()
			if int64(n)+errs.Load() >= count {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	secs := time.Since(start).Seconds()
	sent := int64(hist.Count())
	fmt.Printf("RESULT sent=%d errors=%d seconds=%.2f tps=%.0f p50_ms=%s p99_ms=%s max_ms=%s\n",
		sent, errs.Load(), secs, float64(sent)/secs, ms(hist.Quantile(0.5)), ms(hist.Quantile(0.99)), ms(hist.Max()))
	return nil
}

func consume(ctx context.Context, js jetstream.JetStream, subject string, count int64) error {
	cons, err := js.OrderedConsumer(ctx, subject, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	var hist histogram.Histogram
	var got int64
	start := time.Now()
	for got < count {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			if b := m.Data(); len(b) >= 8 {
				hist.Record(time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(b)))))
			}
			n++
		}
		if n == 0 {
			break
		}
		got += int64(n)
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("RESULT received=%d seconds=%.2f tps=%.0f e2e_p50_ms=%s e2e_p99_ms=%s\n",
		got, secs, float64(got)/secs, ms(hist.Quantile(0.5)), ms(hist.Quantile(0.99)))
	return nil
}
