package broker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

// panicLog records whether any handler panicked (the transport recovers and logs "handler panic").
type panicLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *panicLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *panicLog) panicked() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := strings.Index(p.buf.String(), "handler panic"); i >= 0 {
		return p.buf.String()[i:min(len(p.buf.String()), i+2000)]
	}
	return ""
}

// fuzzCodes are the request codes the broker handles.
var fuzzCodes = []code.Request{
	code.SendMessage, code.SendMessageV2, code.SendBatchMessage, code.SendReplyMessage, code.PullMessage,
	code.QueryConsumerOffset, code.UpdateConsumerOffset, code.GetMaxOffset, code.GetMinOffset,
	code.SearchOffsetByTimestamp, code.GetEarliestMsgStoretime, code.HeartBeat, code.UnregisterClient,
	code.GetConsumerListByGroup, code.LockBatchMQ, code.UnlockBatchMQ, code.CheckClientConfig,
	code.UpdateAndCreateTopic, code.DeleteTopicInBroker, code.GetAllTopicConfig, code.UpdateAndCreateSubscriptionGroup,
	code.DeleteSubscriptionGroup, code.GetTopicStatsInfo, code.GetConsumeStats, code.GetConsumerConnectionList,
	code.GetProducerConnectionList, code.QueryTopicConsumeByWho, code.ConsumerSendMsgBack, code.EndTransaction,
	code.GetConsumerRunningInfo, code.InvokeBrokerToResetOffset, code.InvokeBrokerToGetConsumerStatus,
	code.QueryMessage, code.ViewMessageByID,
}

// FuzzBrokerRequest sends arbitrary headers and bodies for every request code over TCP and checks that
// each is answered (or, for codes that answer nothing, ignored) without a handler panic.
func FuzzBrokerRequest(f *testing.F) {
	f.Add(uint8(0), "producerGroup=pg;topic=T;defaultTopic=TBW102;defaultTopicQueueNums=4;queueId=0;sysFlag=0;bornTimestamp=1;flag=0;properties=TAGS\x01a\x02", []byte("x"))
	f.Add(uint8(2), "b=T;a=pg;c=TBW102;d=4;e=0;f=0;g=1;h=0;m=true", []byte{0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i', 0, 0})
	f.Add(uint8(4), "consumerGroup=g;topic=T;queueId=0;queueOffset=-5;maxMsgNums=-1;sysFlag=7;commitOffset=9;suspendTimeoutMillis=0;subscription=a||b", []byte(nil))
	f.Add(uint8(11), "", []byte(`{"clientID":"c","consumerDataSet":[null,{"groupName":"g","subscriptionDataSet":[null]}],"producerDataSet":[null]}`))
	f.Add(uint8(14), "", []byte(`{"consumerGroup":"g","clientId":"c","mqSet":[null,{"topic":"T"}]}`))
	f.Add(uint8(27), "offset=0;group=g;delayLevel=-1;maxReconsumeTimes=0", []byte(nil))
	f.Add(uint8(28), "producerGroup=pg;tranStateTableOffset=0;commitLogOffset=0;commitOrRollback=8", []byte(nil))
	log := &panicLog{}
	tb := openTestBrokerTB(f, "", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
		o.Store.MaxMessageSize = 1 << 20
	})
	f.Fuzz(func(t *testing.T, which uint8, ext string, body []byte) {
		req := remoting.NewRequest(fuzzCodes[int(which)%len(fuzzCodes)], remoting.Fields{}, body)
		for _, kv := range strings.Split(ext, ";") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				req.ExtFields.Set(k, v)
			}
		}
		req.ExtFields.Set("suspendTimeoutMillis", "0") // never hold a pull
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tb.cl.Invoke(ctx, tb.Addr(), req) // END_TRANSACTION may rightly not answer
		if p := log.panicked(); p != "" {
			t.Fatalf("handler panic for %v %q:\n%s", req.RequestCode(), ext, p)
		}
	})
}
