package body

import (
	"encoding/json"
	"strings"
)

// Consumption modes and types, as their Java enum names.
const (
	Clustering   = "CLUSTERING"
	Broadcasting = "BROADCASTING"

	ConsumeActively  = "CONSUME_ACTIVELY"  // pull consumers
	ConsumePassively = "CONSUME_PASSIVELY" // push consumers

	ExpressionTag   = "TAG"
	ExpressionSQL92 = "SQL92"

	// SubAll is the subscription expression that matches every message.
	SubAll = "*"
)

// MessageQueue names one queue of a topic on one broker.
type MessageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

// SubscriptionData is one topic subscription of a consumer group.
type SubscriptionData struct {
	Topic           string   `json:"topic"`
	SubString       string   `json:"subString"`
	TagsSet         []string `json:"tagsSet"`
	SubVersion      int64    `json:"subVersion"`
	ExpressionType  string   `json:"expressionType,omitempty"`
	ClassFilterMode bool     `json:"classFilterMode"`
	// CodeSet holds the tags' hash codes: strings from the Go client, numbers from Java. Apogee
	// recomputes codes from TagsSet, so it is kept as it came.
	CodeSet json.RawMessage `json:"codeSet,omitempty"`
}

// ParseTags splits a TAG expression ("a || b") into its tags; nil means every message matches.
func ParseTags(expr string) []string {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == SubAll {
		return nil
	}
	var tags []string
	for _, t := range strings.Split(expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// ConsumerData is one consumer group of a client's heartbeat.
type ConsumerData struct {
	GroupName           string              `json:"groupName"`
	ConsumeType         string              `json:"consumeType"`
	MessageModel        string              `json:"messageModel"`
	ConsumeFromWhere    string              `json:"consumeFromWhere"`
	SubscriptionDataSet []*SubscriptionData `json:"subscriptionDataSet"`
	UnitMode            bool                `json:"unitMode"`
}

// ProducerData is one producer group of a client's heartbeat.
type ProducerData struct {
	GroupName string `json:"groupName"`
}

// HeartbeatData is the body of HEART_BEAT.
type HeartbeatData struct {
	ClientID        string          `json:"clientID"`
	ProducerDataSet []*ProducerData `json:"producerDataSet"`
	ConsumerDataSet []*ConsumerData `json:"consumerDataSet"`
}

// ConsumerList is the body of a GET_CONSUMER_LIST_BY_GROUP answer.
type ConsumerList struct {
	ConsumerIDList []string `json:"consumerIdList"`
}

// LockBatchRequest is the body of LOCK_BATCH_MQ and UNLOCK_BATCH_MQ.
type LockBatchRequest struct {
	ConsumerGroup  string          `json:"consumerGroup"`
	ClientID       string          `json:"clientId"`
	OnlyThisBroker bool            `json:"onlyThisBroker,omitempty"`
	MQSet          []*MessageQueue `json:"mqSet"`
}

// LockBatchResponse is the body of a LOCK_BATCH_MQ answer: the queues now held by the client.
type LockBatchResponse struct {
	LockOKMQSet []*MessageQueue `json:"lockOKMQSet"`
}

// Connection describes one client connection in connection-list answers.
type Connection struct {
	ClientID   string `json:"clientId"`
	ClientAddr string `json:"clientAddr"`
	Language   string `json:"language"`
	Version    int32  `json:"version"`
}

// ConsumerConnection is the body of a GET_CONSUMER_CONNECTION_LIST answer.
type ConsumerConnection struct {
	ConnectionSet     []*Connection                `json:"connectionSet"`
	SubscriptionTable map[string]*SubscriptionData `json:"subscriptionTable"`
	ConsumeType       string                       `json:"consumeType"`
	MessageModel      string                       `json:"messageModel"`
	ConsumeFromWhere  string                       `json:"consumeFromWhere"`
}

// ProducerConnection is the body of a GET_PRODUCER_CONNECTION_LIST answer.
type ProducerConnection struct {
	ConnectionSet []*Connection `json:"connectionSet"`
}

// GroupList is a list of group names.
type GroupList struct {
	GroupList []string `json:"groupList"`
}
