package code

import "testing"

func TestNamesMatchRocketMQ(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{GetRouteinfoByTopic.String(), "GET_ROUTEINFO_BY_TOPIC"},
		{SendMessageV2.String(), "SEND_MESSAGE_V2"},
		{Request(9999).String(), "REQUEST_9999"},
		{TopicNotExist.String(), "TOPIC_NOT_EXIST"},
		{Response(777).String(), "RESPONSE_777"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !SystemBusy.Retriable() || Success.Retriable() || Response(777).Retriable() {
		t.Error("retriable flags wrong")
	}
	if !HeartBeat.Known() || Request(1).Known() {
		t.Error("Known wrong")
	}
	seen := map[string]Request{}
	for c, name := range requestNames {
		if other, dup := seen[name]; dup {
			t.Errorf("name %s used by %d and %d", name, c, other)
		}
		seen[name] = c
	}
}
