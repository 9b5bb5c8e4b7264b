package body

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func sampleRoute() *TopicRouteData {
	return &TopicRouteData{
		QueueDatas: []*QueueData{{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas: []*BrokerData{{Cluster: "DefaultCluster", BrokerName: "broker-a",
			BrokerAddrs: map[int64]string{1: "10.0.0.2:10911", 0: "10.0.0.1:10911"}}},
		FilterServerTable: map[string][]string{},
	}
}

func TestEncodeTopicRouteForms(t *testing.T) {
	quoted := `{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],` +
		`"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}`
	if got := string(EncodeTopicRoute(sampleRoute(), QuotedKeys)); got != quoted {
		t.Fatalf("quoted\n got %s\nwant %s", got, quoted)
	}
	bare := strings.Replace(strings.Replace(quoted, `"0":`, `0:`, 1), `"1":`, `1:`, 1)
	if got := string(EncodeTopicRoute(sampleRoute(), BareKeys)); got != bare {
		t.Fatalf("bare\n got %s\nwant %s", got, bare)
	}
	for _, form := range []string{quoted, bare} {
		r, err := DecodeTopicRoute([]byte(form))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, sampleRoute()) {
			t.Fatalf("decoded %+v", r)
		}
	}
	empty := string(EncodeTopicRoute(&TopicRouteData{}, QuotedKeys))
	if empty != `{"brokerDatas":[],"filterServerTable":{},"queueDatas":[]}` {
		t.Fatalf("empty route %s", empty)
	}
}

func TestClusterInfoRoundTrip(t *testing.T) {
	ci := &ClusterInfo{
		BrokerAddrTable:  map[string]*BrokerData{"broker-a": sampleRoute().BrokerDatas[0]},
		ClusterAddrTable: map[string][]string{"DefaultCluster": {"broker-a"}},
	}
	for _, form := range []KeyForm{QuotedKeys, BareKeys} {
		got, err := DecodeClusterInfo(EncodeClusterInfo(ci, form))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ci) {
			t.Fatalf("got %+v", got)
		}
	}
}

func TestQuoteBareKeys(t *testing.T) {
	cases := map[string]string{
		`{0:"a",1:"b"}`:                         `{"0":"a","1":"b"}`,
		`{"s":"{0:\"x\"}","m":{-1:"y"}}`:        `{"s":"{0:\"x\"}","m":{"-1":"y"}}`,
		`[1,2,{3:[4,5]}]`:                       `[1,2,{"3":[4,5]}]`,
		`{"a":1,"b":[{"c":2}]}`:                 `{"a":1,"b":[{"c":2}]}`,
		`{ 12 : "x" , 7:"y"}`:                   `{ "12" : "x" , "7":"y"}`,
		`{"brokerAddrs":{0:"1.2.3.4:10911"}}`:   `{"brokerAddrs":{"0":"1.2.3.4:10911"}}`,
		`{"k":"v\\",0:1}`:                       `{"k":"v\\","0":1}`,
		`{"x":{"y":1},2:3}`:                     `{"x":{"y":1},"2":3}`,
		`{"ok":true,"list":[0,1],"n":{5:null}}`: `{"ok":true,"list":[0,1],"n":{"5":null}}`,
	}
	for in, want := range cases {
		if got := string(QuoteBareKeys([]byte(in))); got != want {
			t.Errorf("%s\n got %s\nwant %s", in, got, want)
		}
	}
}

func FuzzQuoteBareKeys(f *testing.F) {
	f.Add([]byte(`{0:"a",1:"b"}`))
	f.Add(EncodeTopicRoute(sampleRoute(), BareKeys))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := QuoteBareKeys(data)
		if len(out) < len(data) {
			t.Fatal("output shorter than input")
		}
		DecodeTopicRoute(data) // must not panic
	})
}

func TestRegisterBodyForms(t *testing.T) {
	body := &RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigWrapper{
		DataVersion: DataVersion{Timestamp: 1700000000000, Counter: 3},
		TopicConfigTable: map[string]*TopicConfig{
			"T":      {TopicName: "T", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6, TopicFilterType: "SINGLE_TAG"},
			"TBW102": {TopicName: "TBW102", ReadQueueNums: 8, WriteQueueNums: 8, Perm: 7, TopicFilterType: "SINGLE_TAG", Attributes: map[string]string{"+message.type": "NORMAL"}},
		},
	}, FilterServerList: []string{}}
	for _, compressed := range []bool{false, true} {
		var data []byte
		if compressed {
			data = EncodeCompressedRegister(body)
		} else {
			data = EncodeRegisterBroker(body)
		}
		got, err := DecodeRegisterBroker(data, compressed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, body) {
			t.Fatalf("compressed=%v: got %+v", compressed, got)
		}
	}
	// What a Java broker sends, fields in fastjson order.
	java := `{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"timestamp":1700000000000},"topicConfigTable":{"T":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":4}}}}`
	got, err := DecodeRegisterBroker([]byte(java), false)
	if err != nil {
		t.Fatal(err)
	}
	if tc := got.TopicConfigSerializeWrapper.TopicConfigTable["T"]; tc == nil || tc.WriteQueueNums != 4 || got.TopicConfigSerializeWrapper.DataVersion.Counter != 3 {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{`{`, `{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":null}}}`, `[]`} {
		if _, err := DecodeRegisterBroker([]byte(bad), false); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := DecodeRegisterBroker([]byte("not zlib"), true); err == nil {
		t.Error("bad compressed body accepted")
	}
}

func FuzzDecodeRegisterBroker(f *testing.F) {
	body := &RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigWrapper{
		TopicConfigTable: map[string]*TopicConfig{"T": {TopicName: "T", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}}}}
	f.Add(EncodeRegisterBroker(body), false)
	f.Add(EncodeCompressedRegister(body), true)
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		DecodeRegisterBroker(data, compressed) // must not panic
	})
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"T", "%RETRY%g", "a|b", "Topic_1-x"} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "tópico", strings.Repeat("x", 128), "a/b"} {
		if err := ValidateTopic(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzValidName checks the hand-written name check against RocketMQ's pattern.
func FuzzValidName(f *testing.F) {
	pattern := regexp.MustCompile(`^[%|a-zA-Z0-9_-]+$`)
	for _, s := range []string{"T", "%RETRY%g", "a b", "tópico", "a/b", "Z9_-|%", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s != "" && validName(s) != pattern.MatchString(s) {
			t.Fatalf("%q: validName %v, pattern %v", s, validName(s), pattern.MatchString(s))
		}
	})
}
