package broker

import (
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

// routes registers every request code the broker answers.
func (b *Broker) routes(mux *transport.Mux) {
	// send.go. Under ASYNC_FLUSH a send returns as soon as its message is in the page cache, so it
	// runs on the connection's reader goroutine (measured: fewer goroutine hand-offs per send). Under
	// SYNC_FLUSH a single message returns at once too (the flusher answers it), but a batch or a
	// transactional half message waits for its fsync, which would stall every request behind it on
	// the connection: those get a goroutine.
	inline := func(*remoting.Command) bool { return true }
	if b.opts.Store.FlushDiskType == store.SyncFlush {
		inline = answeredByFlusher
	}
	mux.HandleInlineIf(code.SendMessage, b.handleSend, inline)
	mux.HandleInlineIf(code.SendMessageV2, b.handleSend, inline)
	mux.HandleInlineIf(code.SendBatchMessage, b.handleSend, inline)
	// reply.go
	mux.HandleFunc(code.SendReplyMessage, b.handleSendReply)
	mux.HandleFunc(code.SendReplyMessageV2, b.handleSendReply)
	// pull.go
	mux.HandleFunc(code.PullMessage, b.handlePull)
	// offsets_handlers.go
	mux.HandleFunc(code.QueryConsumerOffset, b.handleQueryConsumerOffset)
	mux.HandleFunc(code.UpdateConsumerOffset, b.handleUpdateConsumerOffset)
	mux.HandleFunc(code.GetMaxOffset, b.handleGetMaxOffset)
	mux.HandleFunc(code.GetMinOffset, b.handleGetMinOffset)
	mux.HandleFunc(code.SearchOffsetByTimestamp, b.handleSearchOffset)
	mux.HandleFunc(code.GetEarliestMsgStoretime, b.handleEarliestTime)
	// client_handlers.go
	mux.HandleFunc(code.HeartBeat, b.handleHeartbeat)
	mux.HandleFunc(code.UnregisterClient, b.handleUnregisterClient)
	mux.HandleFunc(code.GetConsumerListByGroup, b.handleGetConsumerList)
	mux.HandleFunc(code.LockBatchMQ, b.handleLockBatch)
	mux.HandleFunc(code.UnlockBatchMQ, b.handleUnlockBatch)
	mux.HandleFunc(code.CheckClientConfig, b.handleCheckClientConfig)
	// admin.go
	mux.HandleFunc(code.UpdateAndCreateTopic, b.handleCreateTopic)
	mux.HandleFunc(code.DeleteTopicInBroker, b.handleDeleteTopic)
	mux.HandleFunc(code.GetAllTopicConfig, b.handleGetAllTopicConfig)
	mux.HandleFunc(code.UpdateAndCreateSubscriptionGroup, b.handleUpdateGroup)
	mux.HandleFunc(code.GetAllSubscriptionGroupConfig, b.handleGetAllGroups)
	mux.HandleFunc(code.DeleteSubscriptionGroup, b.handleDeleteGroup)
	mux.HandleFunc(code.GetBrokerConfig, b.handleGetBrokerConfig)
	mux.HandleFunc(code.UpdateBrokerConfig, b.handleUpdateBrokerConfig)
	mux.HandleFunc(code.GetBrokerRuntimeInfo, b.handleRuntimeInfo)
	mux.HandleFunc(code.GetTopicStatsInfo, b.handleTopicStats)
	mux.HandleFunc(code.GetConsumeStats, b.handleConsumeStats)
	mux.HandleFunc(code.GetConsumerConnectionList, b.handleConsumerConnections)
	mux.HandleFunc(code.GetProducerConnectionList, b.handleProducerConnections)
	mux.HandleFunc(code.QueryTopicConsumeByWho, b.handleConsumeByWho)
	mux.HandleFunc(code.GetSystemTopicListFromBroker, b.handleSystemTopics)
	mux.HandleFunc(code.GetAllConsumerOffset, b.handleAllConsumerOffsets)
	mux.HandleFunc(code.GetAllDelayOffset, b.handleAllDelayOffsets)
	// sendback.go
	mux.HandleFunc(code.ConsumerSendMsgBack, b.handleSendBack)
	// transaction.go
	mux.HandleFunc(code.EndTransaction, b.handleEndTransaction)
	// clientcalls.go
	mux.HandleFunc(code.GetConsumerRunningInfo, b.handleConsumerRunningInfo)
	mux.HandleFunc(code.InvokeBrokerToResetOffset, b.handleResetOffset)
	mux.HandleFunc(code.InvokeBrokerToGetConsumerStatus, b.handleConsumerStatus)
	// query.go
	mux.HandleFunc(code.QueryMessage, b.handleQueryMessage)
	mux.HandleFunc(code.ViewMessageByID, b.handleViewMessage)
}
