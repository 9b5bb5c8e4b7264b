package body

import (
	"strconv"

	"github.com/apogeemq/apogee/remoting"
)

// MQValue is one entry of a map keyed by MessageQueue: the queue and the JSON of its value.
type MQValue struct {
	Queue MessageQueue
	Value []byte
}

// AppendMQMap writes a MessageQueue-keyed map the way fastjson does and Java tools (mqadmin) read it:
// each key is the queue as a JSON object, unquoted: {{"brokerName":"b","queueId":0,"topic":"t"}:v,...}.
// This is not valid JSON; see PROTOCOL.md §3.1.
func AppendMQMap(dst []byte, entries []MQValue) []byte {
	dst = append(dst, '{')
	for i, e := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"brokerName":`...)
		dst = remoting.AppendJSONString(dst, e.Queue.BrokerName)
		dst = append(dst, `,"queueId":`...)
		dst = strconv.AppendInt(dst, int64(e.Queue.QueueID), 10)
		dst = append(dst, `,"topic":`...)
		dst = remoting.AppendJSONString(dst, e.Queue.Topic)
		dst = append(dst, "}:"...)
		dst = append(dst, e.Value...)
	}
	return append(dst, '}')
}
