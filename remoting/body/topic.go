package body

import (
	"encoding/json"
	"fmt"
)

// Permission bits of a topic or broker (RocketMQ's PermName). Part of the wire format.
const (
	PermPriority = 8
	PermRead     = 4
	PermWrite    = 2
	PermInherit  = 1
)

// Special topic names.
const (
	// AutoCreateTopicTemplate is TBW102: the topic whose route producers fall back to when theirs is
	// unknown, and whose config is the template for topics a broker creates on first send.
	AutoCreateTopicTemplate = "TBW102"
	// MaxTopicLength is the longest topic name a broker accepts.
	MaxTopicLength = 127
)

// validName reports whether s is made of letters, digits, '%', '|', '_' and '-' only, as RocketMQ's
// pattern ^[%|a-zA-Z0-9_-]+$ demands. By hand: it runs on every send, where the regexp showed in
// profiles.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '%', c == '|', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidateTopic checks a topic name as RocketMQ's broker does, and says what to change.
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("the topic name is empty")
	case len(topic) > MaxTopicLength:
		return fmt.Errorf("the topic name is %d characters long; the limit is %d", len(topic), MaxTopicLength)
	case !validName(topic):
		return fmt.Errorf("the topic name %q contains characters other than letters, digits, '%%', '|', '_' and '-'", topic)
	}
	return nil
}

// MaxGroupLength is the longest consumer or producer group name the clients accept.
const MaxGroupLength = 255

// ValidateGroup checks a group name as the clients do, and says what to change.
func ValidateGroup(group string) error {
	switch {
	case group == "":
		return fmt.Errorf("the group name is empty")
	case len(group) > MaxGroupLength:
		return fmt.Errorf("the group name is %d characters long; the limit is %d", len(group), MaxGroupLength)
	case !validName(group):
		return fmt.Errorf("the group name %q contains characters other than letters, digits, '%%', '|', '_' and '-'", group)
	}
	return nil
}

// TopicConfig is a topic's configuration on one broker.
type TopicConfig struct {
	TopicName       string `json:"topicName"`
	ReadQueueNums   int32  `json:"readQueueNums"`
	WriteQueueNums  int32  `json:"writeQueueNums"`
	Perm            int32  `json:"perm"`
	TopicFilterType string `json:"topicFilterType,omitempty"`
	TopicSysFlag    int32  `json:"topicSysFlag"`
	Order           bool   `json:"order"`
	// Attributes are RocketMQ 5 topic attributes (message.type, ...); kept as they came.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// DataVersion identifies a version of a broker's topic configuration: NameServers rebuild a broker's
// routes only when it changes.
type DataVersion struct {
	Timestamp int64 `json:"timestamp"`
	Counter   int64 `json:"counter"`
	// StateVersion is sent by RocketMQ 5 brokers.
	StateVersion int64 `json:"stateVersion,omitempty"`
}

// TopicConfigWrapper is a broker's topic table with its version (TopicConfigSerializeWrapper).
type TopicConfigWrapper struct {
	TopicConfigTable map[string]*TopicConfig `json:"topicConfigTable"`
	DataVersion      DataVersion             `json:"dataVersion"`
}

// TopicList is the body of GET_ALL_TOPIC_LIST_FROM_NAMESERVER and related calls.
type TopicList struct {
	TopicList  []string `json:"topicList"`
	BrokerAddr string   `json:"brokerAddr,omitempty"`
}

// KVTable is a string table body ({"table":{...}}).
type KVTable struct {
	Table map[string]string `json:"table"`
}

// Marshal encodes a body as compact JSON. The types of this package encode without error, so an error
// means a bug and panics.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("body: encoding %T: %v", v, err))
	}
	return b
}
