// Command capture records the frames that the official Go client, rocketmq-client-go v2.1.2, sends,
// as golden test data for the remoting codec. It answers as a NameServer and a broker at once, just
// enough for a producer to send a single and a batch message, and writes the first frame of each
// request code to -out as hex.
//
//	go run ./capture -out ../remoting/testdata/client-frames
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

func main() {
	out := flag.String("out", "../remoting/testdata/client-frames", "directory for the captured frames")
	flag.Parse()
	rlog.SetLogLevel("error")
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	var mu sync.Mutex
	seen := map[code.Request]bool{}
	handler := transport.HandlerFunc(func(ctx context.Context, c *transport.Conn, req *remoting.Command) *remoting.Command {
		mu.Lock()
		seen[req.RequestCode()] = true
		mu.Unlock()
		resp := remoting.NewResponse(code.Success, "")
		switch req.RequestCode() {
		case code.GetRouteinfoByTopic:
			resp.Body = []byte(`{"brokerDatas":[{"brokerAddrs":{"0":"` + addr + `"},"brokerName":"broker-a","cluster":"DefaultCluster"}],` +
				`"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}`)
		case code.SendMessage, code.SendBatchMessage:
			resp.ExtFields = remoting.Fields{"msgId", "7F00000100002A9F0000000000000000", "queueId", req.Ext("queueId"), "queueOffset", "0"}
		}
		return resp
	})
	srv := transport.NewServer(transport.Options{Handler: handler})
	tee := &teeListener{Listener: ln}
	go srv.Serve(tee)

	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{addr}), producer.WithGroupName("capture-pg"), producer.WithRetry(0))
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := primitive.NewMessage("TopicTest", []byte("hello apogee"))
	msg.WithTag("TagA")
	msg.WithKeys([]string{"key-1"})
	if _, err := p.SendSync(ctx, msg); err != nil {
		log.Fatal("send: ", err)
	}
	if _, err := p.SendSync(ctx, primitive.NewMessage("TopicTest", []byte("one")), primitive.NewMessage("TopicTest", []byte("two"))); err != nil {
		log.Fatal("batch: ", err)
	}
	// The first heartbeat goes out about a second after start.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := seen[code.HeartBeat]
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Shutdown()
	srv.Shutdown(context.Background())
	saveFirstFrames(*out, tee.streams())
}

// saveFirstFrames writes the raw bytes of the first frame of each request code found in the streams.
func saveFirstFrames(dir string, streams [][]byte) {
	saved := map[code.Request]bool{}
	for _, stream := range streams {
		r := bytes.NewReader(stream)
		for r.Len() > 0 {
			start := len(stream) - r.Len()
			frame, err := remoting.ReadFrame(r, remoting.DefaultMaxFrameLength)
			if err != nil {
				log.Fatal(err)
			}
			raw := stream[start : len(stream)-r.Len()]
			cmd, err := remoting.DecodeFrame(frame)
			if err != nil {
				log.Fatal(err)
			}
			if cmd.IsResponse() || saved[cmd.RequestCode()] {
				continue
			}
			saved[cmd.RequestCode()] = true
			name := filepath.Join(dir, cmd.RequestCode().String()+".hex")
			if err := os.WriteFile(name, []byte(wrapHex(raw)), 0o644); err != nil {
				log.Fatal(err)
			}
			fmt.Println("captured", name)
		}
	}
}

// teeListener keeps a copy of every byte its connections read.
type teeListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*teeConn
}

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &teeConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

func (l *teeListener) streams() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]byte
	for _, c := range l.conns {
		c.mu.Lock()
		out = append(out, c.buf.Bytes())
		c.mu.Unlock()
	}
	return out
}

type teeConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func wrapHex(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for len(h) > 64 {
		sb.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	sb.WriteString(h + "\n")
	return sb.String()
}
