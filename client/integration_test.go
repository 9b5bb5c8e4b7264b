package client

import (
	"bytes"
	"context"
	"errors"
	"slices"
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

func TestDevAdmin(t *testing.T) {
	d := devCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := NewAdmin(WithNameServers(d.ns))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	topic := uniqueTopic(t)
	if err := adm.CreateTopic(ctx, TopicSpec{Topic: topic, Queues: 2}); err != nil {
		t.Fatal(err)
	}
	topics, err := adm.Topics(ctx)
	if err != nil || !slices.Contains(topics, topic) {
		t.Fatalf("topics %v, %v", topics, err)
	}
	r, err := adm.Route(ctx, topic)
	if err != nil || len(r.QueueDatas) != 1 || r.QueueDatas[0].WriteQueueNums != 2 {
		t.Fatalf("route %+v, %v", r, err)
	}
	ci, err := adm.ClusterInfo(ctx)
	if err != nil || ci.BrokerAddrTable["broker-a"] == nil || ci.BrokerAddrTable["broker-a"].BrokerAddrs[0] != d.broker {
		t.Fatalf("cluster info %+v, %v", ci, err)
	}

	p, err := NewProducer(WithNameServers(d.ns))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now().Add(-time.Minute)
	big := bytes.Repeat([]byte("zz"), 5000)
	res, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("one"), Keys: []string{"order-1"}},
		&Message{Topic: topic, Body: big, Keys: []string{"order-2"}}, &Message{Topic: topic, Body: []byte("three")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := adm.ViewMessage(ctx, res[1].OffsetMsgID)
	if err != nil || !bytes.Equal(m.Body, big) || m.UniqKey() != res[1].MsgID || m.Topic != topic {
		t.Fatalf("view: %v, %v", m, err)
	}
	// The index is built in the background: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		byKey, err := adm.QueryMessages(ctx, topic, "order-1", false, start, time.Now().Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		byID, err := adm.QueryMessages(ctx, topic, res[2].MsgID, true, start, time.Now().Add(time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(byKey) == 1 && len(byID) == 1 {
			if string(byKey[0].Body) != "one" || string(byID[0].Body) != "three" {
				t.Fatalf("query by key %q, by id %q", byKey[0].Body, byID[0].Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query by key found %d, by id %d", len(byKey), len(byID))
		}
		time.Sleep(50 * time.Millisecond)
	}

	group := "cg_" + topic
	if _, err := adm.ConsumeStats(ctx, group, topic); !errors.Is(err, &ResponseError{Code: code.ConsumerNotOnline}) {
		t.Fatalf("stats of an unknown group: %v", err)
	}
	offs, err := adm.ResetOffsetByTime(ctx, topic, group, time.Time{}, true) // to the end
	if err != nil || len(offs) != 2 {
		t.Fatalf("reset: %v, %v", offs, err)
	}
	var total int64
	for _, o := range offs {
		total += o
	}
	if total != 3 {
		t.Fatalf("offsets at the end sum to %d, want 3", total)
	}
	if _, err := adm.ResetOffsetByTime(ctx, topic, group, start, true); err != nil {
		t.Fatal(err)
	}
	stats, err := adm.ConsumeStats(ctx, group, topic)
	if err != nil || len(stats.Queues) != 2 || stats.Lag() != 3 {
		t.Fatalf("stats %+v, %v", stats, err)
	}

	if err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Route(ctx, topic); !errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
		t.Fatalf("route after delete: %v", err)
	}
}
