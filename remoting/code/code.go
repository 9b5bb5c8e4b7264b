// Package code is the single table of RocketMQ remoting request and response codes.
//
// Every number here is part of the wire protocol (RocketMQ 4.9.8 RequestCode and ResponseCode, which
// 5.x keeps unchanged for these values) and must not be changed. Names follow Go style; String returns
// the RocketMQ constant name so logs and error messages match what RocketMQ users know.
package code

import "strconv"

// Request is a remoting request code: what a request asks the peer to do.
type Request int16

// Response is a remoting response code: how a request ended.
type Response int16

// Request codes. The comment on each names the direction (C client, B broker, N NameServer, A admin).
const (
	SendMessage                      Request = 10  // C→B
	PullMessage                      Request = 11  // C→B
	QueryMessage                     Request = 12  // A→B
	QueryBrokerOffset                Request = 13  // C→B
	QueryConsumerOffset              Request = 14  // C→B
	UpdateConsumerOffset             Request = 15  // C→B
	UpdateAndCreateTopic             Request = 17  // A→B
	GetAllTopicConfig                Request = 21  // A→B
	UpdateBrokerConfig               Request = 25  // A→B
	GetBrokerConfig                  Request = 26  // A→B
	GetBrokerRuntimeInfo             Request = 28  // A→B
	SearchOffsetByTimestamp          Request = 29  // C→B
	GetMaxOffset                     Request = 30  // C→B
	GetMinOffset                     Request = 31  // C→B
	GetEarliestMsgStoretime          Request = 32  // C→B
	ViewMessageByID                  Request = 33  // C→B
	HeartBeat                        Request = 34  // C→B
	UnregisterClient                 Request = 35  // C→B
	ConsumerSendMsgBack              Request = 36  // C→B
	EndTransaction                   Request = 37  // C→B
	GetConsumerListByGroup           Request = 38  // C→B
	CheckTransactionState            Request = 39  // B→C
	NotifyConsumerIDsChanged         Request = 40  // B→C
	LockBatchMQ                      Request = 41  // C→B
	UnlockBatchMQ                    Request = 42  // C→B
	GetAllConsumerOffset             Request = 43  // A→B
	GetAllDelayOffset                Request = 45  // A→B
	CheckClientConfig                Request = 46  // C→B
	PutKVConfig                      Request = 100 // A→N
	GetKVConfig                      Request = 101 // A→N
	DeleteKVConfig                   Request = 102 // A→N
	RegisterBroker                   Request = 103 // B→N
	UnregisterBroker                 Request = 104 // B→N
	GetRouteinfoByTopic              Request = 105 // C→N
	GetBrokerClusterInfo             Request = 106 // A→N
	UpdateAndCreateSubscriptionGroup Request = 200 // A→B
	GetAllSubscriptionGroupConfig    Request = 201 // A→B
	GetTopicStatsInfo                Request = 202 // A→B
	GetConsumerConnectionList        Request = 203 // A→B
	GetProducerConnectionList        Request = 204 // A→B
	WipeWritePermOfBroker            Request = 205 // A→N
	GetAllTopicListFromNameserver    Request = 206 // A→N
	DeleteSubscriptionGroup          Request = 207 // A→B
	GetConsumeStats                  Request = 208 // A→B
	DeleteTopicInBroker              Request = 215 // A→B
	DeleteTopicInNamesrv             Request = 216 // A→N
	GetKVListByNamespace             Request = 219 // A→N
	ResetConsumerClientOffset        Request = 220 // B→C
	GetConsumerStatusFromClient      Request = 221 // B→C
	InvokeBrokerToResetOffset        Request = 222 // A→B
	InvokeBrokerToGetConsumerStatus  Request = 223 // A→B
	GetTopicsByCluster               Request = 224 // A→N
	QueryTopicConsumeByWho           Request = 300 // A→B
	GetSystemTopicListFromNS         Request = 304 // A→N
	GetSystemTopicListFromBroker     Request = 305 // A→B
	GetConsumerRunningInfo           Request = 307 // B→C
	ConsumeMessageDirectly           Request = 309 // B→C
	SendMessageV2                    Request = 310 // C→B
	GetUnitTopicList                 Request = 311 // A→N
	GetHasUnitSubTopicList           Request = 312 // A→N
	GetHasUnitSubUnunitTopicList     Request = 313 // A→N
	UpdateNamesrvConfig              Request = 318 // A→N
	GetNamesrvConfig                 Request = 319 // A→N
	SendBatchMessage                 Request = 320 // C→B
	QueryConsumeQueue                Request = 321 // A→B
	QueryDataVersion                 Request = 322 // B→N
	ResumeCheckHalfMessage           Request = 323 // A→B
	SendReplyMessage                 Request = 324 // C→B
	SendReplyMessageV2               Request = 325 // C→B
	PushReplyMessageToClient         Request = 326 // B→C
	AddWritePermOfBroker             Request = 327 // A→N
	GetAllProducerInfo               Request = 328 // A→B
)

// Response codes.
const (
	Success                    Response = 0
	SystemError                Response = 1
	SystemBusy                 Response = 2
	RequestCodeNotSupported    Response = 3
	TransactionFailed          Response = 4
	FlushDiskTimeout           Response = 10
	SlaveNotAvailable          Response = 11
	FlushSlaveTimeout          Response = 12
	MessageIllegal             Response = 13
	ServiceNotAvailable        Response = 14
	VersionNotSupported        Response = 15
	NoPermission               Response = 16
	TopicNotExist              Response = 17
	TopicExistAlready          Response = 18
	PullNotFound               Response = 19
	PullRetryImmediately       Response = 20
	PullOffsetMoved            Response = 21
	QueryNotFound              Response = 22
	SubscriptionParseFailed    Response = 23
	SubscriptionNotExist       Response = 24
	SubscriptionNotLatest      Response = 25
	SubscriptionGroupNotExist  Response = 26
	FilterDataNotExist         Response = 27
	FilterDataNotLatest        Response = 28
	TransactionShouldCommit    Response = 200
	TransactionShouldRollback  Response = 201
	TransactionStateUnknow     Response = 202
	TransactionStateGroupWrong Response = 203
	NoBuyerID                  Response = 204
	NotInCurrentUnit           Response = 205
	ConsumerNotOnline          Response = 206
	ConsumeMsgTimeout          Response = 207
	NoMessage                  Response = 208
	FlowControl                Response = 215
)

// requestNames is the one table of request code names.
var requestNames = map[Request]string{
	SendMessage: "SEND_MESSAGE", PullMessage: "PULL_MESSAGE", QueryMessage: "QUERY_MESSAGE",
	QueryBrokerOffset: "QUERY_BROKER_OFFSET", QueryConsumerOffset: "QUERY_CONSUMER_OFFSET",
	UpdateConsumerOffset: "UPDATE_CONSUMER_OFFSET", UpdateAndCreateTopic: "UPDATE_AND_CREATE_TOPIC",
	GetAllTopicConfig: "GET_ALL_TOPIC_CONFIG", UpdateBrokerConfig: "UPDATE_BROKER_CONFIG",
	GetBrokerConfig: "GET_BROKER_CONFIG", GetBrokerRuntimeInfo: "GET_BROKER_RUNTIME_INFO",
	SearchOffsetByTimestamp: "SEARCH_OFFSET_BY_TIMESTAMP", GetMaxOffset: "GET_MAX_OFFSET",
	GetMinOffset: "GET_MIN_OFFSET", GetEarliestMsgStoretime: "GET_EARLIEST_MSG_STORETIME",
	ViewMessageByID: "VIEW_MESSAGE_BY_ID", HeartBeat: "HEART_BEAT", UnregisterClient: "UNREGISTER_CLIENT",
	ConsumerSendMsgBack: "CONSUMER_SEND_MSG_BACK", EndTransaction: "END_TRANSACTION",
	GetConsumerListByGroup: "GET_CONSUMER_LIST_BY_GROUP", CheckTransactionState: "CHECK_TRANSACTION_STATE",
	NotifyConsumerIDsChanged: "NOTIFY_CONSUMER_IDS_CHANGED", LockBatchMQ: "LOCK_BATCH_MQ",
	UnlockBatchMQ: "UNLOCK_BATCH_MQ", GetAllConsumerOffset: "GET_ALL_CONSUMER_OFFSET",
	GetAllDelayOffset: "GET_ALL_DELAY_OFFSET", CheckClientConfig: "CHECK_CLIENT_CONFIG",
	PutKVConfig: "PUT_KV_CONFIG", GetKVConfig: "GET_KV_CONFIG", DeleteKVConfig: "DELETE_KV_CONFIG",
	RegisterBroker: "REGISTER_BROKER", UnregisterBroker: "UNREGISTER_BROKER",
	GetRouteinfoByTopic: "GET_ROUTEINFO_BY_TOPIC", GetBrokerClusterInfo: "GET_BROKER_CLUSTER_INFO",
	UpdateAndCreateSubscriptionGroup: "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP",
	GetAllSubscriptionGroupConfig:    "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
	GetTopicStatsInfo:                "GET_TOPIC_STATS_INFO", GetConsumerConnectionList: "GET_CONSUMER_CONNECTION_LIST",
	GetProducerConnectionList: "GET_PRODUCER_CONNECTION_LIST", WipeWritePermOfBroker: "WIPE_WRITE_PERM_OF_BROKER",
	GetAllTopicListFromNameserver: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
	DeleteSubscriptionGroup:       "DELETE_SUBSCRIPTIONGROUP", GetConsumeStats: "GET_CONSUME_STATS",
	DeleteTopicInBroker: "DELETE_TOPIC_IN_BROKER", DeleteTopicInNamesrv: "DELETE_TOPIC_IN_NAMESRV",
	GetKVListByNamespace: "GET_KVLIST_BY_NAMESPACE", ResetConsumerClientOffset: "RESET_CONSUMER_CLIENT_OFFSET",
	GetConsumerStatusFromClient:     "GET_CONSUMER_STATUS_FROM_CLIENT",
	InvokeBrokerToResetOffset:       "INVOKE_BROKER_TO_RESET_OFFSET",
	InvokeBrokerToGetConsumerStatus: "INVOKE_BROKER_TO_GET_CONSUMER_STATUS",
	GetTopicsByCluster:              "GET_TOPICS_BY_CLUSTER", QueryTopicConsumeByWho: "QUERY_TOPIC_CONSUME_BY_WHO",
	GetSystemTopicListFromNS:     "GET_SYSTEM_TOPIC_LIST_FROM_NS",
	GetSystemTopicListFromBroker: "GET_SYSTEM_TOPIC_LIST_FROM_BROKER",
	GetConsumerRunningInfo:       "GET_CONSUMER_RUNNING_INFO", ConsumeMessageDirectly: "CONSUME_MESSAGE_DIRECTLY",
	SendMessageV2: "SEND_MESSAGE_V2", GetUnitTopicList: "GET_UNIT_TOPIC_LIST",
	GetHasUnitSubTopicList: "GET_HAS_UNIT_SUB_TOPIC_LIST", GetHasUnitSubUnunitTopicList: "GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST",
	UpdateNamesrvConfig: "UPDATE_NAMESRV_CONFIG", GetNamesrvConfig: "GET_NAMESRV_CONFIG",
	SendBatchMessage: "SEND_BATCH_MESSAGE", QueryConsumeQueue: "QUERY_CONSUME_QUEUE",
	QueryDataVersion: "QUERY_DATA_VERSION", ResumeCheckHalfMessage: "RESUME_CHECK_HALF_MESSAGE",
	SendReplyMessage: "SEND_REPLY_MESSAGE", SendReplyMessageV2: "SEND_REPLY_MESSAGE_V2",
	PushReplyMessageToClient: "PUSH_REPLY_MESSAGE_TO_CLIENT", AddWritePermOfBroker: "ADD_WRITE_PERM_OF_BROKER",
	GetAllProducerInfo: "GET_ALL_PRODUCER_INFO",
}

// responseInfo describes a response code: its RocketMQ name and whether sending the same request again
// (possibly to another broker) can succeed.
type responseInfo struct {
	name      string
	retriable bool
}

// responseTable is the one table of response codes.
var responseTable = map[Response]responseInfo{
	Success:                    {"SUCCESS", false},
	SystemError:                {"SYSTEM_ERROR", true},
	SystemBusy:                 {"SYSTEM_BUSY", true},
	RequestCodeNotSupported:    {"REQUEST_CODE_NOT_SUPPORTED", false},
	TransactionFailed:          {"TRANSACTION_FAILED", false},
	FlushDiskTimeout:           {"FLUSH_DISK_TIMEOUT", false},
	SlaveNotAvailable:          {"SLAVE_NOT_AVAILABLE", false},
	FlushSlaveTimeout:          {"FLUSH_SLAVE_TIMEOUT", false},
	MessageIllegal:             {"MESSAGE_ILLEGAL", false},
	ServiceNotAvailable:        {"SERVICE_NOT_AVAILABLE", true},
	VersionNotSupported:        {"VERSION_NOT_SUPPORTED", false},
	NoPermission:               {"NO_PERMISSION", true},
	TopicNotExist:              {"TOPIC_NOT_EXIST", true},
	TopicExistAlready:          {"TOPIC_EXIST_ALREADY", false},
	PullNotFound:               {"PULL_NOT_FOUND", false},
	PullRetryImmediately:       {"PULL_RETRY_IMMEDIATELY", true},
	PullOffsetMoved:            {"PULL_OFFSET_MOVED", false},
	QueryNotFound:              {"QUERY_NOT_FOUND", false},
	SubscriptionParseFailed:    {"SUBSCRIPTION_PARSE_FAILED", false},
	SubscriptionNotExist:       {"SUBSCRIPTION_NOT_EXIST", true},
	SubscriptionNotLatest:      {"SUBSCRIPTION_NOT_LATEST", true},
	SubscriptionGroupNotExist:  {"SUBSCRIPTION_GROUP_NOT_EXIST", false},
	FilterDataNotExist:         {"FILTER_DATA_NOT_EXIST", false},
	FilterDataNotLatest:        {"FILTER_DATA_NOT_LATEST", true},
	TransactionShouldCommit:    {"TRANSACTION_SHOULD_COMMIT", false},
	TransactionShouldRollback:  {"TRANSACTION_SHOULD_ROLLBACK", false},
	TransactionStateUnknow:     {"TRANSACTION_STATE_UNKNOW", false},
	TransactionStateGroupWrong: {"TRANSACTION_STATE_GROUP_WRONG", false},
	NoBuyerID:                  {"NO_BUYER_ID", false},
	NotInCurrentUnit:           {"NOT_IN_CURRENT_UNIT", false},
	ConsumerNotOnline:          {"CONSUMER_NOT_ONLINE", false},
	ConsumeMsgTimeout:          {"CONSUME_MSG_TIMEOUT", false},
	NoMessage:                  {"NO_MESSAGE", false},
	FlowControl:                {"FLOW_CONTROL", true},
}

// String returns the RocketMQ name of the request code, or REQUEST_<n> for codes Apogee does not know.
func (r Request) String() string {
	if name, ok := requestNames[r]; ok {
		return name
	}
	return "REQUEST_" + strconv.Itoa(int(r))
}

// Known reports whether r is a request code of the table.
func (r Request) Known() bool {
	_, ok := requestNames[r]
	return ok
}

// String returns the RocketMQ name of the response code, or RESPONSE_<n> for unknown codes.
func (r Response) String() string {
	if info, ok := responseTable[r]; ok {
		return info.name
	}
	return "RESPONSE_" + strconv.Itoa(int(r))
}

// Retriable reports whether sending the same request again, possibly to another broker, can succeed.
// Unknown codes are not retriable.
func (r Response) Retriable() bool {
	return responseTable[r].retriable
}
