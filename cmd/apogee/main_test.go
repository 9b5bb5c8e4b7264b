package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofEndpoint(t *testing.T) {
	addr, err := startPprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("status %d: %.100s", resp.StatusCode, b)
	}
	if a, err := startPprof("", nil); a != nil || err != nil {
		t.Fatal("pprof started without --pprof")
	}
}

func TestGlobalFlagValidation(t *testing.T) {
	for _, g := range []globalFlags{{logLevel: "loud", logFormat: "text"}, {logLevel: "info", logFormat: "xml"}} {
		if _, err := g.logger(); err == nil {
			t.Errorf("%+v accepted", g)
		}
	}
}

func TestBrokerFlagsOverrideConfig(t *testing.T) {
	cmd := newBrokerCommand(&globalFlags{logLevel: "info", logFormat: "text"})
	if err := cmd.ParseFlags([]string{"--broker-name", "broker-z", "--flush", "SYNC_FLUSH", "-n", "127.0.0.1:1;127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	var f brokerFlags
	f.brokerName, f.flush, f.namesrv = "broker-z", "SYNC_FLUSH", "127.0.0.1:1;127.0.0.1:2"
	o, err := f.options(cmd, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if o.BrokerName != "broker-z" || len(o.NamesrvAddr) != 2 || !strings.Contains(o.String(), "flushDiskType=SYNC_FLUSH") {
		t.Fatalf("options %+v", o)
	}
}
