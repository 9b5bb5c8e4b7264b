package client

import (
	"errors"
	"testing"

	"github.com/apogeemq/apogee/remoting/body"
)

func TestParseMQMapForms(t *testing.T) {
	want := []body.MessageQueue{{Topic: "T", BrokerName: "b", QueueID: 0}, {Topic: "T,x}", BrokerName: "b2", QueueID: 3}}
	for name, data := range map[string]string{
		"fastjson": `{"consumeTps":1.5,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":10,"consumerOffset":4,"lastTimestamp":0},{"topic":"T,x}","queueId":3,"brokerName":"b2"}:{"brokerOffset":5,"consumerOffset":-1,"lastTimestamp":1700000000000}}}`,
		"quoted":   `{"offsetTable": {"{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}": {"brokerOffset":10,"consumerOffset":4}, "{\"brokerName\":\"b2\",\"queueId\":3,\"topic\":\"T,x}\"}" : {"brokerOffset":5,"consumerOffset":-1,"lastTimestamp":1700000000000}}, "consumeTps": 1.5}`,
		"toString": `{"offsetTable":{"MessageQueue [topic=T, brokerName=b, queueId=0]":{"brokerOffset":10,"consumerOffset":4},"MessageQueue [topic=T,x}, brokerName=b2, queueId=3]":{"brokerOffset":5,"consumerOffset":-1,"lastTimestamp":1700000000000}},"consumeTps":1.5}`,
	} {
		var s ConsumeStats
		if err := parseConsumeStats([]byte(data), &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(s.Queues) != 2 || s.Queues[0].Queue != want[0] || s.Queues[1].Queue != want[1] {
			t.Fatalf("%s: %+v", name, s.Queues)
		}
		if s.Lag() != 6+5 || s.ConsumeTPS != 1.5 || s.Queues[1].LastTimestamp.UnixMilli() != 1700000000000 || !s.Queues[0].LastTimestamp.IsZero() {
			t.Fatalf("%s: lag %d tps %v %+v", name, s.Lag(), s.ConsumeTPS, s.Queues)
		}
	}
	if e, err := parseMQMapField([]byte(`{"offsetTable":{}}`), "offsetTable"); err != nil || len(e) != 0 {
		t.Fatal(e, err)
	}
	if e, err := parseMQMapField([]byte(`{}`), "offsetTable"); err != nil || e != nil {
		t.Fatal(e, err)
	}
	for _, bad := range []string{`{"offsetTable":`, `{"offsetTable":{{"topic":"T"}}}`, `{"offsetTable":{{"topic":"T"}:1`,
		`{"offsetTable":{"x":1}}`, `{"offsetTable":{{"topic":"T"}:"unterminated}}`, `{"offsetTable":[1]}`} {
		if _, err := parseMQMapField([]byte(bad), "offsetTable"); !errors.Is(err, errBadMQMap) {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

func FuzzParseMQMap(f *testing.F) {
	f.Add([]byte(`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"a":[1,{"b":"}"}]}}}`))
	f.Add([]byte(`{"offsetTable":{"MessageQueue [topic=T, brokerName=b, queueId=0]":3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseMQMapField(data, "offsetTable") // must not panic
	})
}
