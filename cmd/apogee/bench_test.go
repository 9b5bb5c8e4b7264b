package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/apogeemq/apogee/broker"
	"github.com/apogeemq/apogee/client"
	"github.com/apogeemq/apogee/store"
)

// startCluster runs a NameServer and a broker in the test process on loopback ports.
func startCluster(t *testing.T) string {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	ns, ln, err := startNamesrv(&namesrvFlags{listen: "127.0.0.1:0"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Serve(ln)
	b, err := startBroker(broker.Options{ListenAddr: "127.0.0.1:0", NamesrvAddr: []string{ln.Addr().String()},
		StorePathRootDir: t.TempDir(), Logger: logger,
		Store: store.Options{SegmentSize: 64 << 20, IndexSlots: 1024, IndexEntries: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
		ns.Shutdown(ctx)
	})
	return ln.Addr().String()
}

var resultLine = regexp.MustCompile(`(?m)^RESULT sent=(\d+) errors=(\d+) seconds=[\d.]+ tps=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ max_ms=[\d.]+$`)

func TestBenchProducer(t *testing.T) {
	ns := startCluster(t)
	for _, f := range []benchProducerFlags{
		{topic: "B1", threads: 4, size: 100, count: 300, batch: 1},
		{topic: "B2", threads: 2, size: 100, count: 300, batch: 1, async: true},
		{topic: "B3", threads: 2, size: 100, count: 320, batch: 16},
	} {
		p, err := client.NewProducer(client.WithNameServers(ns))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := runProducerBench(context.Background(), p, &f, &out); err != nil {
			t.Fatal(err)
		}
		p.Close()
		m := resultLine.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no RESULT line in:\n%s", out.String())
		}
		if sent, _ := strconv.Atoi(m[1]); sent != int(f.count) || m[2] != "0" {
			t.Fatalf("%+v: %s", f, m[0])
		}
	}
}

func TestSplitAddrs(t *testing.T) {
	got := splitAddrs("a:1;b:2,,c:3;")
	if len(got) != 3 || got[0] != "a:1" || got[2] != "c:3" {
		t.Fatal(got)
	}
}

var consumerResult = regexp.MustCompile(`(?m)^RESULT received=(\d+) seconds=[\d.]+ tps=\d+ e2e_p50_ms=[\d.]+ e2e_p99_ms=[\d.]+$`)

func TestBenchConsumer(t *testing.T) {
	ns := startCluster(t)
	p, err := client.NewProducer(client.WithNameServers(ns))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runProducerBench(context.Background(), p, &benchProducerFlags{topic: "BC", threads: 2, size: 64, count: 200, batch: 1}, &out); err != nil {
		t.Fatal(err)
	}
	p.Close()
	out.Reset()
	f := benchConsumerFlags{topic: "BC", group: "bcg", count: 200, duration: 60 * time.Second}
	if err := runConsumerBench(context.Background(), &f, &out, client.WithNameServers(ns)); err != nil {
		t.Fatal(err)
	}
	m := consumerResult.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no RESULT line in:\n%s", out.String())
	}
	if n, _ := strconv.Atoi(m[1]); n < 200 {
		t.Fatalf("received %d: %s", n, m[0])
	}
}
