package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/apogeemq/apogee/remoting/body"
)

// errBadMQMap marks a MessageQueue-keyed map that cannot be read.
var errBadMQMap = errors.New("client: malformed MessageQueue-keyed map")

// parseMQMapField finds the member field of a JSON-like object (fastjson output, PROTOCOL.md §3.1) and
// reads it as a MessageQueue-keyed map. Keys are accepted in every form brokers write: a bare object
// ({"brokerName":"b","queueId":0,"topic":"t"}, members in any order), that object as a JSON string, or
// Java's toString ("MessageQueue [topic=t, brokerName=b, queueId=0]"). Values are returned as the raw
// JSON text. A missing field is an empty map.
func parseMQMapField(data []byte, field string) ([]body.MQValue, error) {
	key := []byte(strconv.Quote(field))
	i := bytes.Index(data, key)
	if i < 0 {
		return nil, nil
	}
	i = skipSpace(data, i+len(key))
	if i >= len(data) || data[i] != ':' {
		return nil, fmt.Errorf("%w: no ':' after %s", errBadMQMap, field)
	}
	return parseMQMap(data, skipSpace(data, i+1))
}

func parseMQMap(data []byte, i int) ([]body.MQValue, error) {
	if i >= len(data) || data[i] != '{' {
		return nil, fmt.Errorf("%w: expected '{' at %d", errBadMQMap, i)
	}
	var out []body.MQValue
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return out, nil
	}
	for {
		end, err := scanValue(data, i)
		if err != nil {
			return nil, err
		}
		mq, err := parseMQKey(data[i:end])
		if err != nil {
			return nil, err
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, fmt.Errorf("%w: expected ':' at %d", errBadMQMap, i)
		}
		i = skipSpace(data, i+1)
		end, err = scanValue(data, i)
		if err != nil {
			return nil, err
		}
		out = append(out, body.MQValue{Queue: mq, Value: data[i:end]})
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, fmt.Errorf("%w: unterminated map", errBadMQMap)
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return out, nil
		default:
			return nil, fmt.Errorf("%w: unexpected %q at %d", errBadMQMap, data[i], i)
		}
	}
}

var consumeTPS = regexp.MustCompile(`"consumeTps"\s*:\s*(-?[0-9.eE+-]+)`)

var mqToString = regexp.MustCompile(`^MessageQueue \[topic=(.*), brokerName=(.*), queueId=(-?\d+)\]$`)

func parseMQKey(k []byte) (body.MessageQueue, error) {
	var mq body.MessageQueue
	if len(k) > 0 && k[0] == '"' {
		var s string
		if err := json.Unmarshal(k, &s); err != nil {
			return mq, fmt.Errorf("%w: key %s: %v", errBadMQMap, k, err)
		}
		if m := mqToString.FindStringSubmatch(s); m != nil {
			id, err := strconv.ParseInt(m[3], 10, 32)
			return body.MessageQueue{Topic: m[1], BrokerName: m[2], QueueID: int32(id)}, err
		}
		k = []byte(s)
	}
	if err := json.Unmarshal(k, &mq); err != nil {
		return mq, fmt.Errorf("%w: key %s: %v", errBadMQMap, k, err)
	}
	return mq, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// scanValue returns the end of the JSON(-like) value starting at data[i]: an object or array (nested,
// with fastjson's bare object keys allowed inside), a string, or a literal.
func scanValue(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, fmt.Errorf("%w: value expected at end", errBadMQMap)
	}
	switch data[i] {
	case '"':
		return scanString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, err := scanString(data, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unterminated value at %d", errBadMQMap, i)
	}
	j := i
	for j < len(data) && data[j] != ',' && data[j] != '}' && data[j] != ']' && data[j] != ':' && data[j] != ' ' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("%w: empty value at %d", errBadMQMap, i)
	}
	return j, nil
}

func scanString(data []byte, i int) (int, error) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated string at %d", errBadMQMap, i)
}
