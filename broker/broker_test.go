package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/namesrv"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

type testBroker struct {
	*Broker
	dir string
	cl  *transport.Client
}

func openTestBroker(t *testing.T, dir string, configure func(*Options)) *testBroker {
	t.Helper()
	return openTestBrokerTB(t, dir, configure)
}

func openTestBrokerTB(t testing.TB, dir string, configure func(*Options)) *testBroker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o := Options{StorePathRootDir: dir, Store: store.Options{SegmentSize: 8 << 20, IndexSlots: 1024, IndexEntries: 4096}}
	if configure != nil {
		configure(&o)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(o, ln)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBroker{Broker: b, dir: dir, cl: transport.NewClient(transport.ClientOptions{})}
	t.Cleanup(func() { tb.stop(t) })
	return tb
}

func (tb *testBroker) stop(t testing.TB) {
	if tb.cl == nil {
		return
	}
	tb.cl.Close()
	tb.cl = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func (tb *testBroker) call(t *testing.T, req *remoting.Command) *remoting.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := tb.cl.Invoke(ctx, tb.Addr(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func sendRequest(topic string, queueID int, body string, props map[string]string) *remoting.Command {
	return remoting.NewRequest(code.SendMessage, remoting.Fields{
		"producerGroup", "pg",
		"topic", topic,
		"defaultTopic", "TBW102",
		"defaultTopicQueueNums", "4",
		"queueId", strconv.Itoa(queueID),
		"sysFlag", "0",
		"bornTimestamp", strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag", "0",
		"properties", string(message.AppendProperties(nil, props)),
		"reconsumeTimes", "0",
		"unitMode", "false",
		"batch", "false",
	}, []byte(body))
}

func pullRequest(group, topic string, queueID int, offset int64, suspend time.Duration, sub string) *remoting.Command {
	flag := pullSuspend
	if sub != "" {
		flag |= pullSubscription
	}
	return remoting.NewRequest(code.PullMessage, remoting.Fields{
		"consumerGroup", group,
		"topic", topic,
		"queueId", strconv.Itoa(queueID),
		"queueOffset", strconv.FormatInt(offset, 10),
		"maxMsgNums", "32",
		"sysFlag", strconv.Itoa(flag),
		"commitOffset", "0",
		"suspendTimeoutMillis", strconv.FormatInt(suspend.Milliseconds(), 10),
		"subscription", sub,
		"subVersion", "0",
		"expressionType", "TAG",
	}, nil)
}

func mustSend(t *testing.T, tb *testBroker, topic string, queueID int, body string, props map[string]string) *remoting.Command {
	t.Helper()
	resp := tb.call(t, sendRequest(topic, queueID, body, props))
	if resp.ResponseCode() != code.Success {
		t.Fatalf("send: %v %s", resp.ResponseCode(), resp.Remark)
	}
	return resp
}

func TestSendValidation(t *testing.T) {
	tb := openTestBroker(t, "", func(o *Options) { o.AutoCreateTopicEnable = boolPtr(false) })
	cases := []struct {
		req    *remoting.Command
		code   code.Response
		remark string
	}{
		{sendRequest("bad topic", 0, "x", nil), code.SystemError, "characters"},
		{sendRequest(topicSchedule, 0, "x", nil), code.SystemError, "system topic"},
		{sendRequest("Unknown", 0, "x", nil), code.TopicNotExist, "autoCreateTopicEnable"},
		{sendRequest("SELF_TEST_TOPIC", 0, "x", nil), code.SystemError, "system topic"},
		{remoting.NewRequest(code.SendMessage, remoting.Fields{"topic", "T"}, nil), code.SystemError, `"producerGroup" is required`},
	}
	for _, c := range cases {
		resp := tb.call(t, c.req)
		if resp.ResponseCode() != c.code || !strings.Contains(resp.Remark, c.remark) {
			t.Errorf("got %v %q, want %v containing %q", resp.ResponseCode(), resp.Remark, c.code, c.remark)
		}
		if resp.Ext("MSG_REGION") != "DefaultRegion" && c.req.RequestCode() == code.SendMessage && resp.ResponseCode() != code.SystemError {
			t.Errorf("no MSG_REGION on %v", resp.ResponseCode())
		}
	}
	create := remoting.NewRequest(code.UpdateAndCreateTopic, remoting.Fields{"topic", "T", "readQueueNums", "2", "writeQueueNums", "2", "perm", "6", "topicFilterType", "SINGLE_TAG"}, nil)
	if resp := tb.call(t, create); resp.ResponseCode() != code.Success {
		t.Fatalf("create: %v %s", resp.ResponseCode(), resp.Remark)
	}
	if resp := tb.call(t, sendRequest("T", 2, "x", nil)); resp.ResponseCode() != code.SystemError || !strings.Contains(resp.Remark, "out of range") {
		t.Errorf("queue out of range: %v %q", resp.ResponseCode(), resp.Remark)
	}
	resp := mustSend(t, tb, "T", -1, "random queue", nil)
	if q, _ := strconv.Atoi(resp.Ext("queueId")); q < 0 || q > 1 {
		t.Errorf("random queue %d", q)
	}
	host, off, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
	if err != nil || host != tb.storeHost || off != 0 {
		t.Errorf("msgId %q: %v %v %d", resp.Ext("msgId"), err, host, off)
	}
	huge := map[string]string{"KEYS": strings.Repeat("k", 40000)}
	if resp := tb.call(t, sendRequest("T", 0, "x", huge)); resp.ResponseCode() != code.MessageIllegal {
		t.Errorf("oversized properties: %v %q", resp.ResponseCode(), resp.Remark)
	}
	if resp := tb.call(t, remoting.NewRequest(4321, nil, nil)); resp.ResponseCode() != code.RequestCodeNotSupported {
		t.Errorf("unknown code: %v", resp.ResponseCode())
	}
}

func TestStoredProperties(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"", "CLUSTER\x01C"},
		{"TAGS\x01a\x02WAIT\x01true\x02KEYS\x01k1 k2", "TAGS\x01a\x02KEYS\x01k1 k2\x02CLUSTER\x01C"},
		{"CLUSTER\x01other\x02UNIQ_KEY\x01u\x02", "UNIQ_KEY\x01u\x02CLUSTER\x01C"},
		{"A\x01\x02\x01y\x02junk\x02B\x01b", "B\x01b\x02CLUSTER\x01C"}, // items ParseProperties skips
		{"DELAY\x013", ""},
		{"TRAN_MSG\x01true", ""},
		{"TIMER_DELAY_SEC\x015", ""},
		{"TIMER_DELAY_MS\x015", ""},
		{"TIMER_DELIVER_MS\x015", ""},
		{"A\x01x\x01z", ""}, // the map path refuses it
	} {
		prefix := []byte("earlier")
		out, ok := appendStoredProperties(prefix, c.raw, "C")
		got := string(out[len(prefix):])
		if !ok {
			got = ""
			if len(out) != len(prefix) {
				t.Errorf("appendStoredProperties(%q) refused but appended %q", c.raw, out[len(prefix):])
			}
		}
		if ok != (c.want != "") || got != c.want || string(out[:len(prefix)]) != "earlier" {
			t.Errorf("appendStoredProperties(%q) = %q %v, want %q", c.raw, out, ok, c.want)
		}
		if ok {
			// What the map path stores, decoded, is what the fast path stores, decoded.
			m := message.ParseProperties(c.raw)
			if m == nil {
				m = map[string]string{}
			}
			delete(m, message.PropertyWaitStoreMsgOK)
			m[message.PropertyCluster] = "C"
			if d := message.ParseProperties(got); !maps.Equal(d, m) {
				t.Errorf("appendStoredProperties(%q) decodes to %v, the map path to %v", c.raw, d, m)
			}
		}
	}
}

// TestSendStoresProperties checks the stored properties over the wire, on the path without a map
// and on the map path (a delay level).
func TestSendStoresProperties(t *testing.T) {
	tb := openTestBroker(t, "", nil)
	view := func(resp *remoting.Command) *message.Message {
		t.Helper()
		_, off, _ := message.ParseOffsetMsgID(resp.Ext("msgId"))
		r := tb.call(t, remoting.NewRequest(code.ViewMessageByID, remoting.Fields{"offset", strconv.FormatInt(off, 10)}, nil))
		msgs, err := message.DecodeRecords(r.Body)
		if r.ResponseCode() != code.Success || err != nil || len(msgs) != 1 {
			t.Fatalf("view: %v %v", r.ResponseCode(), err)
		}
		return msgs[0]
	}
	req := sendRequest("P", 0, "x", nil)
	req.ExtFields.Set("properties", "WAIT\x01true\x02CLUSTER\x01theirs\x02TAGS\x01t\x02KEYS\x01k1 k2\x02UNIQ_KEY\x01U1")
	m := view(tb.call(t, req))
	want := map[string]string{"CLUSTER": tb.opts.BrokerClusterName, "TAGS": "t", "KEYS": "k1 k2", "UNIQ_KEY": "U1"}
	if !maps.Equal(m.Properties, want) {
		t.Fatalf("stored %v, want %v", m.Properties, want)
	}
	waitQueue(t, tb, "P", 0, 1)
	if r := tb.call(t, pullRequest("g", "P", 0, 0, 0, "t")); r.ResponseCode() != code.Success {
		t.Fatalf("pull by the tag: %v", r.ResponseCode())
	}
	if r := tb.call(t, pullRequest("g", "P", 0, 0, 0, "other")); r.ResponseCode() == code.Success {
		t.Fatal("a pull for another tag found the message: tags code not indexed")
	}

	req.ExtFields.Set("properties", "A\x01x\x01z")
	if r := tb.call(t, req); r.ResponseCode() != code.MessageIllegal {
		t.Fatalf("a value with \\x01: %v %q", r.ResponseCode(), r.Remark)
	}
}

// TestPipelinedSendsKeepTheirOwn pipelines sends over one connection, so that the reader reuses
// its buffer, its command and the pooled messages and answers while the dispatcher still has work
// queued: every message must be stored, indexed and answered with its own keys, id and offset, in
// both header forms (JSON's properties are unescaped into scratch room the next request reuses).
func TestPipelinedSendsKeepTheirOwn(t *testing.T) {
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		tb := openTestBroker(t, "", nil)
		const n = 400
		topic := "Pipelined" + st.String()
		answers := make([]*remoting.Command, n)
		var wg sync.WaitGroup
		for i := range n {
			req := sendRequest(topic, 0, fmt.Sprintf("body-%d", i), map[string]string{
				"KEYS": fmt.Sprintf("key-%d extra-%d", i, i), "UNIQ_KEY": fmt.Sprintf("UNIQ%05d", i), "TAGS": fmt.Sprintf("t%d", i%3)})
			req.SerializeType = st
			wg.Add(1)
			if err := tb.cl.InvokeAsync(context.Background(), tb.Addr(), req, 10*time.Second, func(resp *remoting.Command, err error) {
				defer wg.Done()
				if err != nil || resp.ResponseCode() != code.Success {
					t.Errorf("send %d: %v %v", i, err, resp)
					return
				}
				answers[i] = resp
			}); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		waitQueue(t, tb, topic, 0, n)
		offsets := map[string]bool{}
		for i, resp := range answers {
			if q := resp.Ext("queueId"); q != "0" {
				t.Fatalf("%v: answer %d has queueId %q", st, i, q)
			}
			offsets[resp.Ext("queueOffset")] = true
			_, off, err := message.ParseOffsetMsgID(resp.Ext("msgId"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := tb.store.LookupMessage(off)
			if err != nil || string(m.Body) != fmt.Sprintf("body-%d", i) {
				t.Fatalf("%v: answer %d's id reads %v %v", st, i, m, err)
			}
			for _, key := range []string{fmt.Sprintf("key-%d", i), fmt.Sprintf("extra-%d", i), fmt.Sprintf("UNIQ%05d", i)} {
				found, err := tb.store.QueryMessages(topic, key, 10, 0, time.Now().UnixMilli()+1000)
				if err != nil || len(found) != 1 || string(found[0].Body) != fmt.Sprintf("body-%d", i) {
					t.Fatalf("%v: key %s finds %d messages (%v), want body-%d", st, key, len(found), err, i)
				}
			}
		}
		if len(offsets) != n {
			t.Fatalf("%v: %d distinct queue offsets in %d answers", st, len(offsets), n)
		}
	}
}

func TestLongPolling(t *testing.T) {
	tb := openTestBroker(t, "", nil)
	mustSend(t, tb, "LP", 0, "first", nil)
	waitQueue(t, tb, "LP", 0, 1) // dispatch to the consume queue is asynchronous

	// Nothing new: the pull is held for its suspend timeout, then answered with PULL_NOT_FOUND.
	start := time.Now()
	resp := tb.call(t, pullRequest("g", "LP", 0, 1, 300*time.Millisecond, "*"))
	if resp.ResponseCode() != code.PullNotFound || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle pull: %v after %v", resp.ResponseCode(), time.Since(start))
	}
	if resp.Ext("nextBeginOffset") != "1" || resp.Ext("maxOffset") != "1" {
		t.Fatalf("idle pull header %v", resp.ExtFields)
	}

	// A message arriving while a pull waits answers it at once.
	got := make(chan *remoting.Command, 1)
	go func() { got <- tb.call(t, pullRequest("g", "LP", 0, 1, 20*time.Second, "*")) }()
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	mustSend(t, tb, "LP", 0, "second", nil)
	select {
	case resp := <-got:
		if resp.ResponseCode() != code.Success {
			t.Fatalf("woken pull: %v %s", resp.ResponseCode(), resp.Remark)
		}
		msgs, err := message.DecodeRecords(resp.Body)
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "second" {
			t.Fatalf("woken pull got %v %v", msgs, err)
		}
		t.Logf("held pull answered %v after the send", time.Since(sent))
	case <-time.After(5 * time.Second):
		t.Fatal("held pull not answered after a message arrived")
	}

	// maxMsgNums=0 still returns one message (the v2.1.2 pull consumer relies on it).
	req := pullRequest("g", "LP", 0, 0, 0, "*")
	req.ExtFields.Set("maxMsgNums", "0")
	if resp := tb.call(t, req); resp.ResponseCode() != code.Success {
		t.Fatalf("maxMsgNums 0: %v", resp.ResponseCode())
	} else if msgs, _ := message.DecodeRecords(resp.Body); len(msgs) != 1 {
		t.Fatalf("maxMsgNums 0 returned %d messages", len(msgs))
	}

	// Without a subscription in the pull and without a heartbeat, the broker says why.
	noSub := pullRequest("g2", "LP", 0, 0, 0, "")
	if resp := tb.call(t, noSub); resp.ResponseCode() != code.SubscriptionNotExist || !strings.Contains(resp.Remark, "heartbeat") {
		t.Fatalf("no heartbeat: %v %q", resp.ResponseCode(), resp.Remark)
	}
	// Offsets beyond the queue are corrected.
	if resp := tb.call(t, pullRequest("g", "LP", 0, 99, 0, "*")); resp.ResponseCode() != code.PullOffsetMoved || resp.Ext("nextBeginOffset") != "2" {
		t.Fatalf("offset too big: %v %v", resp.ResponseCode(), resp.ExtFields)
	}
}

func TestHeartbeatMembershipAndRetryTopic(t *testing.T) {
	tb := openTestBroker(t, "", nil)
	hb := body.HeartbeatData{ClientID: "127.0.0.1@1", ConsumerDataSet: []*body.ConsumerData{{
		GroupName: "hg", ConsumeType: body.ConsumePassively, MessageModel: body.Clustering, ConsumeFromWhere: "CONSUME_FROM_FIRST_OFFSET",
		SubscriptionDataSet: []*body.SubscriptionData{{Topic: "HT", SubString: "a || b"}},
	}}}
	if resp := tb.call(t, remoting.NewRequest(code.HeartBeat, nil, body.Marshal(hb))); resp.ResponseCode() != code.Success {
		t.Fatalf("heartbeat: %v %s", resp.ResponseCode(), resp.Remark)
	}
	if tb.topics.get("%RETRY%hg") == nil {
		t.Fatal("no retry topic after the first heartbeat")
	}
	resp := tb.call(t, remoting.NewRequest(code.GetConsumerListByGroup, remoting.Fields{"consumerGroup", "hg"}, nil))
	if string(resp.Body) != `{"consumerIdList":["127.0.0.1@1"]}` {
		t.Fatalf("consumer list %s", resp.Body)
	}
	// The heartbeat's subscription filters pulls that carry none.
	mustSend(t, tb, "HT", 0, "A", map[string]string{"TAGS": "a"})
	mustSend(t, tb, "HT", 0, "C", map[string]string{"TAGS": "c"})
	mustSend(t, tb, "HT", 0, "B", map[string]string{"TAGS": "b"})
	waitQueue(t, tb, "HT", 0, 3)
	resp = tb.call(t, pullRequest("hg", "HT", 0, 0, 0, ""))
	msgs, _ := message.DecodeRecords(resp.Body)
	if len(msgs) != 2 || string(msgs[0].Body) != "A" || string(msgs[1].Body) != "B" || resp.Ext("nextBeginOffset") != "3" {
		t.Fatalf("filtered pull: %d messages, next %s", len(msgs), resp.Ext("nextBeginOffset"))
	}
	// Closing the connection removes the member.
	tb.cl.Close()
	tb.cl = transport.NewClient(transport.ClientOptions{})
	deadline := time.Now().Add(5 * time.Second)
	for len(tb.clients.consumerIDs("hg")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("member not removed after its connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueueLocksExpire(t *testing.T) {
	l := newQueueLocks()
	mq := &body.MessageQueue{Topic: "T", BrokerName: "b", QueueID: 1}
	t0 := time.Now()
	if got := l.lock("g", "c1", []*body.MessageQueue{mq}, t0); len(got) != 1 {
		t.Fatal("free queue not locked")
	}
	if got := l.lock("g", "c2", []*body.MessageQueue{mq}, t0.Add(30*time.Second)); len(got) != 0 {
		t.Fatal("held queue locked by another client")
	}
	if got := l.lock("g", "c1", []*body.MessageQueue{mq}, t0.Add(50*time.Second)); len(got) != 1 {
		t.Fatal("holder could not renew")
	}
	if got := l.lock("g", "c2", []*body.MessageQueue{mq}, t0.Add(50*time.Second+lockTTL+time.Millisecond)); len(got) != 1 {
		t.Fatal("expired lock not taken over")
	}
	l.unlock("g", "c1", []*body.MessageQueue{mq})
	if l.holder("g", *mq, t0.Add(111*time.Second)) != "c2" {
		t.Fatal("unlock by a non-holder released the lock")
	}
}

func TestMetadataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	tb := openTestBroker(t, dir, nil)
	tb.call(t, remoting.NewRequest(code.UpdateAndCreateTopic, remoting.Fields{"topic", "Kept", "readQueueNums", "3", "writeQueueNums", "3", "perm", "6"}, nil))
	cfg := body.NewSubscriptionGroupConfig("kept-g")
	cfg.RetryMaxTimes = 3
	tb.call(t, remoting.NewRequest(code.UpdateAndCreateSubscriptionGroup, nil, body.Marshal(cfg)))
	mustSend(t, tb, "Kept", 1, "x", nil)
	tb.call(t, remoting.NewRequest(code.UpdateConsumerOffset, remoting.Fields{"consumerGroup", "kept-g", "topic", "Kept", "queueId", "1", "commitOffset", "1"}, nil))
	tb.stop(t)

	tb2 := openTestBroker(t, dir, nil)
	if tc := tb2.topics.get("Kept"); tc == nil || tc.WriteQueueNums != 3 {
		t.Fatalf("topic after restart: %+v", tc)
	}
	if g, _ := tb2.groups.get("kept-g"); g == nil || g.RetryMaxTimes != 3 {
		t.Fatalf("group after restart: %+v", g)
	}
	resp := tb2.call(t, remoting.NewRequest(code.QueryConsumerOffset, remoting.Fields{"consumerGroup", "kept-g", "topic", "Kept", "queueId", "1"}, nil))
	if resp.ResponseCode() != code.Success || resp.Ext("offset") != "1" {
		t.Fatalf("offset after restart: %v %v", resp.ResponseCode(), resp.ExtFields)
	}
	resp = tb2.call(t, remoting.NewRequest(code.QueryConsumerOffset, remoting.Fields{"consumerGroup", "other", "topic", "Kept", "queueId", "1"}, nil))
	if resp.ResponseCode() != code.Success || resp.Ext("offset") != "0" {
		t.Fatalf("young queue without offset: %v %v", resp.ResponseCode(), resp.ExtFields)
	}
}

func TestDelayLevelAndSendBack(t *testing.T) {
	tb := openTestBroker(t, "", func(o *Options) { o.MessageDelayLevel = "1s 1s 1s 1s 1s" })
	delayed := mustSend(t, tb, "Delayed", 0, "later", map[string]string{"DELAY": "1", "UNIQ_KEY": "U1"})
	sent := time.Now()
	if tb.store.MaxOffset("Delayed", 0) != 0 {
		t.Fatal("delayed message visible at once")
	}
	waitQueue(t, tb, "Delayed", 0, 1)
	if d := time.Since(sent); d < 900*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("delivered after %v, want about 1s", d)
	}
	msgs, _ := tb.readMessages("Delayed", 0, 0, 1)
	if m := msgs[0]; m.Property("DELAY") != "" || m.Property("REAL_TOPIC") != "Delayed" || m.UniqKey() != "U1" {
		t.Fatalf("delivered message props %v", m.Properties)
	}
	_ = delayed

	// A failed message goes to the retry topic with reconsumeTimes+1, and past the limit to the DLQ.
	off := msgs[0].CommitLogOffset
	back := func(offset int64, maxTimes string) *remoting.Command {
		return tb.call(t, remoting.NewRequest(code.ConsumerSendMsgBack, remoting.Fields{
			"offset", strconv.FormatInt(offset, 10),
			"group", "sb",
			"delayLevel", "1",
			"originTopic", "Delayed",
			"maxReconsumeTimes", maxTimes,
		}, nil))
	}
	if resp := back(off, "2"); resp.ResponseCode() != code.Success {
		t.Fatalf("send back: %v %s", resp.ResponseCode(), resp.Remark)
	}
	waitQueue(t, tb, "%RETRY%sb", 0, 1)
	retry, _ := tb.readMessages("%RETRY%sb", 0, 0, 1)
	if r := retry[0]; r.ReconsumeTimes != 1 || r.Property("RETRY_TOPIC") != "Delayed" || r.UniqKey() != "U1" || string(r.Body) != "later" ||
		r.Property("ORIGIN_MESSAGE_ID") != message.OffsetMsgID(tb.storeHost, off) {
		t.Fatalf("retry message: reconsume %d props %v", r.ReconsumeTimes, r.Properties)
	}
	back(retry[0].CommitLogOffset, "2")
	waitQueue(t, tb, "%RETRY%sb", 0, 2)
	retry, _ = tb.readMessages("%RETRY%sb", 0, 1, 1)
	back(retry[0].CommitLogOffset, "2") // reconsumeTimes 2 >= 2: dead letter
	waitQueue(t, tb, "%DLQ%sb", 0, 1)
	if r := tb.call(t, remoting.NewRequest(code.GetAllDelayOffset, nil, nil)); !strings.Contains(string(r.Body), `"offsetTable":{"1":`) {
		t.Fatalf("delay offsets %s", r.Body)
	}
	dlq, _ := tb.readMessages("%DLQ%sb", 0, 0, 1)
	if dlq[0].ReconsumeTimes != 3 || string(dlq[0].Body) != "later" {
		t.Fatalf("dlq message %+v", dlq[0])
	}
}

func waitQueue(t *testing.T, tb *testBroker, topic string, queueID int32, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tb.store.MaxOffset(topic, queueID) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s/%d has %d messages, want %d", topic, queueID, tb.store.MaxOffset(topic, queueID), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	var o Options
	unknown, err := o.Apply(`
brokerClusterName = C1
brokerName=broker-x
brokerId=0
namesrvAddr=127.0.0.1:9876;127.0.0.2:9876
listenPort=10921
flushDiskType=SYNC_FLUSH
deleteWhen=04
fileReservedTime=48
mapedFileSizeCommitLog=1048576
maxMessageSize=1024
autoCreateTopicEnable=false
sendMessageThreadPoolNums=4
someFutureKey=1
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(unknown) != 1 || unknown[0] != "someFutureKey" {
		t.Fatalf("unknown keys %v", unknown)
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.BrokerName != "broker-x" || o.ListenAddr != ":10921" || o.Store.FlushDiskType != store.SyncFlush ||
		o.Store.FileReservedTime != 48*time.Hour || o.Store.SegmentSize != 1<<20 || isTrue(o.AutoCreateTopicEnable) ||
		len(o.NamesrvAddr) != 2 {
		t.Fatalf("options %+v", o)
	}
	var again Options
	if _, err := again.Apply(o.String()); err != nil {
		t.Fatal(err)
	}
	again.EnsureDefaults()
	if again.String() != o.String() {
		t.Fatalf("round trip differs:\n%s\n---\n%s", o.String(), again.String())
	}
	var bad Options
	if _, err := bad.Apply("brokerId=x\nflushDiskType=SOMETIMES\n"); err == nil || !strings.Contains(err.Error(), "brokerId") || !strings.Contains(err.Error(), "flushDiskType") {
		t.Fatalf("bad values: %v", err)
	}
	slave := Options{BrokerRole: Slave}
	slave.EnsureDefaults()
	if err := slave.Validate(); err == nil {
		t.Fatal("SLAVE with brokerId 0 accepted")
	}
}

func TestAnnouncedIP(t *testing.T) {
	a, err := announcedIP("", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	if err != nil || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("%v %v", a, err)
	}
	a, _ = announcedIP("10.1.2.3", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	if a != netip.MustParseAddr("10.1.2.3") {
		t.Fatal(a)
	}
}

// TestDelayRecoveryDeliversOnce: a batch whose delivery was in flight at a crash is not delivered
// again when its copies are already in the commit log, and is delivered when they are not.
func TestDelayRecoveryDeliversOnce(t *testing.T) {
	dir := t.TempDir()
	conf := func(o *Options) { o.MessageDelayLevel = "1s 1s" }
	tb := openTestBroker(t, dir, conf)
	for i := range 3 {
		mustSend(t, tb, "Once", 0, "d"+strconv.Itoa(i), map[string]string{"DELAY": "1"})
	}
	waitQueue(t, tb, "Once", 0, 3)
	end := tb.store.MaxCommitLogOffset()
	tb.stop(t)

	// Pretend the broker died while delivering the batch: progress says 0 with the batch in flight.
	path := dir + "/config/delayOffset.json"
	if err := saveJSON(path, delayOffsetFile{OffsetTable: map[string]int64{"1": 0},
		InFlight: map[string]*inFlight{"1": {From: 0, To: 3, LogFrom: 0}}}); err != nil {
		t.Fatal(err)
	}
	tb = openTestBroker(t, dir, conf)
	time.Sleep(1500 * time.Millisecond)
	if n := tb.store.MaxOffset("Once", 0); n != 3 {
		t.Fatalf("%d messages after recovery, want 3 (no redelivery)", n)
	}
	tb.stop(t)

	// Without the copies in the searched range the batch is delivered again.
	if err := saveJSON(path, delayOffsetFile{OffsetTable: map[string]int64{"1": 0},
		InFlight: map[string]*inFlight{"1": {From: 0, To: 3, LogFrom: end}}}); err != nil {
		t.Fatal(err)
	}
	tb = openTestBroker(t, dir, conf)
	waitQueue(t, tb, "Once", 0, 6)
}

func TestQueriesAndStats(t *testing.T) {
	tb := openTestBroker(t, "", nil)
	resp := mustSend(t, tb, "Q", 0, "hello", map[string]string{"KEYS": "order-1 order-2", "UNIQ_KEY": "UK1"})
	mustSend(t, tb, "Q", 0, "other", map[string]string{"KEYS": "order-3"})
	waitQueue(t, tb, "Q", 0, 2)
	_, off, _ := message.ParseOffsetMsgID(resp.Ext("msgId"))

	view := tb.call(t, remoting.NewRequest(code.ViewMessageByID, remoting.Fields{"offset", strconv.FormatInt(off, 10)}, nil))
	msgs, err := message.DecodeRecords(view.Body)
	if view.ResponseCode() != code.Success || err != nil || len(msgs) != 1 || string(msgs[0].Body) != "hello" {
		t.Fatalf("view: %v %v %d", view.ResponseCode(), err, len(msgs))
	}
	if r := tb.call(t, remoting.NewRequest(code.ViewMessageByID, remoting.Fields{"offset", "999999"}, nil)); r.ResponseCode() != code.SystemError {
		t.Fatalf("view of a bad offset: %v", r.ResponseCode())
	}
	query := func(key string) []*message.Message {
		r := tb.call(t, remoting.NewRequest(code.QueryMessage, remoting.Fields{
			"topic", "Q",
			"key", key,
			"maxNum", "32",
			"beginTimestamp", "0",
			"endTimestamp", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10),
		}, nil))
		if r.ResponseCode() != code.Success {
			return nil
		}
		msgs, _ := message.DecodeRecords(r.Body)
		return msgs
	}
	if got := query("order-2"); len(got) != 1 || string(got[0].Body) != "hello" {
		t.Fatalf("query by key: %d messages", len(got))
	}
	if got := query("UK1"); len(got) != 1 {
		t.Fatalf("query by unique key: %d messages", len(got))
	}
	if got := query("missing"); got != nil {
		t.Fatalf("query of a missing key: %d messages", len(got))
	}

	stats := tb.call(t, remoting.NewRequest(code.GetTopicStatsInfo, remoting.Fields{"topic", "Q"}, nil))
	if !strings.HasPrefix(string(stats.Body), `{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"Q"}:{"lastUpdateTimestamp":`) ||
		!strings.Contains(string(stats.Body), `"maxOffset":2,"minOffset":0}`) {
		t.Fatalf("topic stats %s", stats.Body)
	}
	tb.call(t, remoting.NewRequest(code.UpdateConsumerOffset, remoting.Fields{"consumerGroup", "qg", "topic", "Q", "queueId", "0", "commitOffset", "1"}, nil))
	cs := tb.call(t, remoting.NewRequest(code.GetConsumeStats, remoting.Fields{"consumerGroup", "qg", "topic", "Q"}, nil))
	if !strings.Contains(string(cs.Body), `"queueId":0,"topic":"Q"}:{"brokerOffset":2,"consumerOffset":1,`) {
		t.Fatalf("consume stats %s", cs.Body)
	}
	all := tb.call(t, remoting.NewRequest(code.GetAllTopicConfig, nil, nil))
	var w body.TopicConfigWrapper
	if err := json.Unmarshal(all.Body, &w); err != nil || w.TopicConfigTable["Q"] == nil || w.TopicConfigTable["TBW102"] == nil {
		t.Fatalf("all topic config: %v", err)
	}
	if r := tb.call(t, remoting.NewRequest(code.DeleteTopicInBroker, remoting.Fields{"topic", "Q"}, nil)); r.ResponseCode() != code.Success || tb.topics.get("Q") != nil {
		t.Fatal("delete topic")
	}
	if r := tb.call(t, remoting.NewRequest(code.DeleteTopicInBroker, remoting.Fields{"topic", "TBW102"}, nil)); r.ResponseCode() != code.SystemError {
		t.Fatal("deleting TBW102 allowed")
	}
}

// TestRegistersWithEveryNameServer: the broker registers with each NameServer at start, re-registers
// on its period and after a topic change, and unregisters at shutdown.
func TestRegistersWithEveryNameServer(t *testing.T) {
	var servers []*namesrv.Server
	var addrs []string
	for range 2 {
		ns, err := namesrv.New(namesrv.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go ns.Serve(ln)
		t.Cleanup(func() { ns.Shutdown(context.Background()) })
		servers = append(servers, ns)
		addrs = append(addrs, ln.Addr().String())
	}
	tb := openTestBroker(t, "", func(o *Options) {
		o.NamesrvAddr = addrs
		o.RegisterNameServerPeriod = 100 * time.Millisecond
	})
	for _, ns := range servers {
		if ns.Routes().TopicRoute("TBW102") == nil {
			t.Fatal("not registered at start")
		}
	}
	tb.call(t, remoting.NewRequest(code.UpdateAndCreateTopic, remoting.Fields{"topic", "Fresh", "readQueueNums", "2", "writeQueueNums", "2", "perm", "6"}, nil))
	for _, ns := range servers {
		if r := ns.Routes().TopicRoute("Fresh"); r == nil || r.QueueDatas[0].WriteQueueNums != 2 {
			t.Fatal("a created topic is not routed when the create call returns")
		}
	}
	// A NameServer that lost the broker (its routes were dropped) learns it again at the next period.
	servers[0].Routes().Unregister("DefaultCluster", tb.Addr(), "broker-a", 0)
	deadline := time.Now().Add(5 * time.Second)
	for servers[0].Routes().TopicRoute("Fresh") == nil {
		if time.Now().After(deadline) {
			t.Fatal("no periodic re-registration")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.stop(t)
	for _, ns := range servers {
		if ns.Routes().TopicRoute("Fresh") != nil {
			t.Fatal("routes remain after the broker shut down")
		}
	}
}

func TestOffsetLookups(t *testing.T) {
	tb := openTestBroker(t, "", nil)
	before := time.Now().UnixMilli()
	for i := range 5 {
		mustSend(t, tb, "Lookup", 0, strconv.Itoa(i), nil)
	}
	waitQueue(t, tb, "Lookup", 0, 5)
	ask := func(c code.Request, ext remoting.Fields) string {
		r := tb.call(t, remoting.NewRequest(c, append(ext, "topic", "Lookup", "queueId", "0"), nil))
		if r.ResponseCode() != code.Success {
			t.Fatalf("%v: %v %s", c, r.ResponseCode(), r.Remark)
		}
		if v := r.Ext("offset"); v != "" {
			return v
		}
		return r.Ext("timestamp")
	}
	if got := ask(code.GetMaxOffset, nil); got != "5" {
		t.Errorf("max offset %s", got)
	}
	if got := ask(code.GetMinOffset, nil); got != "0" {
		t.Errorf("min offset %s", got)
	}
	if got := ask(code.SearchOffsetByTimestamp, remoting.Fields{"timestamp", strconv.FormatInt(before-1000, 10)}); got != "0" {
		t.Errorf("offset by an early time %s", got)
	}
	if got := ask(code.SearchOffsetByTimestamp, remoting.Fields{"timestamp", strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)}); got != "5" {
		t.Errorf("offset by a future time %s", got)
	}
	if ts, _ := strconv.ParseInt(ask(code.GetEarliestMsgStoretime, nil), 10, 64); ts < before || ts > time.Now().UnixMilli() {
		t.Errorf("earliest store time %d", ts)
	}
}

// TestTimerMessages: a message due at an arbitrary millisecond is delivered within 100 ms of it, also
// when the broker restarts in between; one due too far ahead is refused.
func TestTimerMessages(t *testing.T) {
	dir := t.TempDir()
	conf := func(o *Options) { o.TimerMaxDelay = time.Hour }
	tb := openTestBroker(t, dir, conf)
	due := time.Now().Add(700 * time.Millisecond)
	mustSend(t, tb, "Timed", 0, "t1", map[string]string{"TIMER_DELIVER_MS": strconv.FormatInt(due.UnixMilli(), 10), "UNIQ_KEY": "T1"})
	if tb.store.MaxOffset("Timed", 0) != 0 {
		t.Fatal("timer message visible before due")
	}
	waitQueue(t, tb, "Timed", 0, 1)
	if late := time.Since(due); late < -5*time.Millisecond || late > 100*time.Millisecond {
		t.Errorf("delivered %v after due", late)
	}
	msgs, _ := tb.readMessages("Timed", 0, 0, 1)
	if m := msgs[0]; m.UniqKey() != "T1" || m.Property("TIMER_DELIVER_MS") != "" || m.Property("TIMER_OUT_MS") == "" {
		t.Fatalf("delivered props %v", m.Properties)
	}
	if r := tb.call(t, sendRequest("Timed", 0, "far", map[string]string{"TIMER_DELAY_SEC": "7200"})); r.ResponseCode() != code.MessageIllegal {
		t.Fatalf("too far: %v %s", r.ResponseCode(), r.Remark)
	}
	// A message in the past is a normal message.
	mustSend(t, tb, "Timed", 0, "past", map[string]string{"TIMER_DELIVER_MS": "1000"})
	waitQueue(t, tb, "Timed", 0, 2)

	// Pending across a restart.
	due = time.Now().Add(1500 * time.Millisecond)
	mustSend(t, tb, "Timed", 0, "t2", map[string]string{"TIMER_DELIVER_MS": strconv.FormatInt(due.UnixMilli(), 10)})
	time.Sleep(300 * time.Millisecond)
	tb.stop(t)
	tb = openTestBroker(t, dir, conf)
	waitQueue(t, tb, "Timed", 0, 3)
	if late := time.Since(due); late < -5*time.Millisecond || late > 200*time.Millisecond {
		t.Errorf("delivered %v after due across a restart", late)
	}
	time.Sleep(300 * time.Millisecond)
	if n := tb.store.MaxOffset("Timed", 0); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

// TestSendBackAcrossRestartAndOrderly: a retry scheduled before a restart is delivered once after it,
// and the orderly consumer's send-back (delayLevel -1) goes straight to the DLQ.
func TestSendBackAcrossRestartAndOrderly(t *testing.T) {
	dir := t.TempDir()
	conf := func(o *Options) { o.MessageDelayLevel = "1s 1s 1s 1s" }
	tb := openTestBroker(t, dir, conf)
	mustSend(t, tb, "SB", 0, "m", nil)
	waitQueue(t, tb, "SB", 0, 1)
	msgs, _ := tb.readMessages("SB", 0, 0, 1)
	back := func(tb *testBroker, level string) {
		r := tb.call(t, remoting.NewRequest(code.ConsumerSendMsgBack, remoting.Fields{
			"offset", strconv.FormatInt(msgs[0].CommitLogOffset, 10),
			"group", "sbg",
			"delayLevel", level,
			"originTopic", "SB",
			"maxReconsumeTimes", "16",
		}, nil))
		if r.ResponseCode() != code.Success {
			t.Fatalf("send back: %v %s", r.ResponseCode(), r.Remark)
		}
	}
	back(tb, "0")
	tb.stop(t)
	tb = openTestBroker(t, dir, conf)
	waitQueue(t, tb, "%RETRY%sbg", 0, 1)
	time.Sleep(1500 * time.Millisecond)
	if n := tb.store.MaxOffset("%RETRY%sbg", 0); n != 1 {
		t.Fatalf("%d retries after the restart, want 1", n)
	}
	back(tb, "-1")
	waitQueue(t, tb, "%DLQ%sbg", 0, 1)
}

// TestSyncFlushSends: under SYNC_FLUSH single messages are answered by the flusher and run on the
// connection's reader; batches and transactional half messages wait for their fsync on a goroutine of
// their own. Each kind is stored and answered.
func TestSyncFlushSends(t *testing.T) {
	tb := openTestBroker(t, "", func(o *Options) { o.Store.FlushDiskType = store.SyncFlush })
	plain := sendRequest("SyncT", 0, "plain", nil)
	half := sendRequest("SyncT", 0, "half", map[string]string{message.PropertyTransactionPrepared: "true", message.PropertyProducerGroup: "pg"})
	half.SetExt("sysFlag", strconv.Itoa(int(message.TransactionPreparedType)))
	batchBody, err := message.AppendBatch(nil, []*message.Message{{Body: []byte("b1")}, {Body: []byte("b2")}})
	if err != nil {
		t.Fatal(err)
	}
	batch := sendRequest("SyncT", 0, "", nil)
	batch.Code, batch.Body = int16(code.SendBatchMessage), batchBody
	batch.SetExt("batch", "true")
	for _, c := range []struct {
		name   string
		req    *remoting.Command
		inline bool
	}{{"plain", plain, true}, {"half", half, false}, {"batch", batch, false}} {
		if got := answeredByFlusher(c.req); got != c.inline {
			t.Errorf("%s: answeredByFlusher = %v", c.name, got)
		}
		if resp := tb.call(t, c.req); resp.ResponseCode() != code.Success || resp.Ext("msgId") == "" {
			t.Errorf("%s: %v %q %q", c.name, resp.ResponseCode(), resp.Remark, resp.Ext("msgId"))
		}
	}
	waitQueue(t, tb, "SyncT", 0, 3) // plain and the batch's two; the half message waits for its commit
}
