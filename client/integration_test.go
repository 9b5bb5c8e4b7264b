package client

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting/code"
)

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(t *testing.T) string {
	return "ct_" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func TestDevProducer(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := NewProducer(WithNameServers(d.ns), WithProducerGroup("client_it"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topic := uniqueTopic(t)

	// The topic does not exist: the first send goes through TBW102 and the broker creates it.
	big := bytes.Repeat([]byte("0123456789"), 1000)
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("hello"), Tags: "A", Keys: []string{"k-1"}},
		&Message{Topic: topic, Body: big}, &Message{Topic: topic, Body: []byte("ordered"), ShardingKey: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != SendOK || r.Queue.Topic != topic || r.Queue.BrokerName != "broker-a" {
			t.Fatalf("result %d: %+v", i, r)
		}
		if _, _, err := message.ParseOffsetMsgID(r.OffsetMsgID); err != nil {
			t.Fatalf("result %d offset id %q: %v", i, r.OffsetMsgID, err)
		}
	}
	br, err := p.SendBatch(ctx, &Message{Topic: topic, Body: []byte("b1")}, &Message{Topic: topic, Body: []byte("b2")})
	if err != nil {
		t.Fatal(err)
	}
	if ids := bytes.Count([]byte(br.OffsetMsgID), []byte(",")); ids != 1 {
		t.Fatalf("batch offset ids %q", br.OffsetMsgID)
	}
	done := make(chan error, 1)
	p.SendAsync(ctx, &Message{Topic: topic, Body: []byte("async")}, func(_ *SendResult, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.SendOneway(ctx, &Message{Topic: topic, Body: []byte("oneway")}); err != nil {
		t.Fatal(err)
	}
	// The broker refuses a system topic: not retriable, one clear error.
	_, err = p.Send(ctx, &Message{Topic: "SCHEDULE_TOPIC_XXXX", Body: []byte("x")})
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != code.SystemError {
		t.Fatalf("send to a system topic: %v", err)
	}
}
