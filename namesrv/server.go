package namesrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// Options configures a NameServer. The zero value of each field selects its default.
type Options struct {
	// ScanInterval is how often brokers are checked for silence. Default 10 s.
	ScanInterval time.Duration

	// BrokerTimeout is how long a broker may stay silent before it is dropped with its routes, unless
	// it registered with a timeout of its own. Default 120 s.
	BrokerTimeout time.Duration

	// KVConfigPath is where the KV configuration is persisted. Default "": in memory only.
	KVConfigPath string

	// OrderMessageEnable attaches the ORDER_TOPIC_CONFIG entry of a topic to its route as
	// orderTopicConf. Default false, as in RocketMQ.
	OrderMessageEnable bool

	// Transport tunes the connections (frame limit, idle timeout). Its Handler and OnConnClose are
	// set by the NameServer.
	Transport transport.Options

	// Logger receives one line per significant event. Default: discard.
	Logger *slog.Logger
}

func (o *Options) ensureDefaults() {
	if o.ScanInterval <= 0 {
		o.ScanInterval = 10 * time.Second
	}
	if o.BrokerTimeout <= 0 {
		o.BrokerTimeout = 120 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a NameServer.
type Server struct {
	opts   Options
	routes *RouteTable
	kv     *KVStore
	log    *slog.Logger
	rpc    *transport.Server

	mu struct {
		sync.Mutex
		orderMessageEnable bool
	}

	stop     chan struct{}
	stopOnce sync.Once
	scanner  sync.WaitGroup
}

// New returns a NameServer and starts its liveness scan; Serve starts answering requests.
func New(opts Options) (*Server, error) {
	opts.ensureDefaults()
	kv, err := OpenKVStore(opts.KVConfigPath)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, routes: NewRouteTable(), kv: kv, log: opts.Logger, stop: make(chan struct{})}
	s.mu.orderMessageEnable = opts.OrderMessageEnable

	mux := transport.NewMux()
	s.register(mux)
	topts := opts.Transport
	topts.Handler = mux
	topts.OnConnClose = s.connClosed
	if topts.Logger == nil {
		topts.Logger = opts.Logger
	}
	s.rpc = transport.NewServer(topts)

	s.scanner.Add(1)
	go s.scanLoop()
	return s, nil
}

func (s *Server) register(mux *transport.Mux) {
	mux.HandleFunc(code.RegisterBroker, s.handleRegisterBroker)
	mux.HandleFunc(code.UnregisterBroker, s.handleUnregisterBroker)
	mux.HandleFunc(code.QueryDataVersion, s.handleQueryDataVersion)

	mux.HandleFunc(code.GetRouteinfoByTopic, s.handleGetRouteInfo)
	mux.HandleFunc(code.GetBrokerClusterInfo, s.handleGetClusterInfo)
	mux.HandleFunc(code.GetAllTopicListFromNameserver, s.handleGetAllTopics)
	mux.HandleFunc(code.DeleteTopicInNamesrv, s.handleDeleteTopic)
	mux.HandleFunc(code.GetTopicsByCluster, s.handleGetTopicsByCluster)
	mux.HandleFunc(code.GetSystemTopicListFromNS, s.handleGetSystemTopics)
	mux.HandleFunc(code.GetUnitTopicList, s.handleGetUnitTopics)
	mux.HandleFunc(code.GetHasUnitSubTopicList, s.handleGetUnitTopics)
	mux.HandleFunc(code.GetHasUnitSubUnunitTopicList, s.handleGetUnitTopics)
	mux.HandleFunc(code.WipeWritePermOfBroker, s.handleChangeWritePerm)
	mux.HandleFunc(code.AddWritePermOfBroker, s.handleChangeWritePerm)

	mux.HandleFunc(code.PutKVConfig, s.handlePutKV)
	mux.HandleFunc(code.GetKVConfig, s.handleGetKV)
	mux.HandleFunc(code.DeleteKVConfig, s.handleDeleteKV)
	mux.HandleFunc(code.GetKVListByNamespace, s.handleGetKVList)

	mux.HandleFunc(code.GetNamesrvConfig, s.handleGetConfig)
	mux.HandleFunc(code.UpdateNamesrvConfig, s.handleUpdateConfig)
}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.rpc.Serve(ln)
	if errors.Is(err, transport.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the scan and the server, letting requests in flight finish until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.scanner.Wait()
	return s.rpc.Shutdown(ctx)
}

// Routes returns the route table, for embedding and tests.
func (s *Server) Routes() *RouteTable { return s.routes }

// KV returns the KV configuration store.
func (s *Server) KV() *KVStore { return s.kv }

func (s *Server) scanLoop() {
	defer s.scanner.Done()
	ticker := time.NewTicker(s.opts.ScanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-ticker.C:
			for _, addr := range s.routes.Expire(now, s.opts.BrokerTimeout) {
				s.log.Warn("broker expired: no registration within its timeout; routes removed", "broker", addr, "timeout", s.opts.BrokerTimeout)
			}
		}
	}
}

func (s *Server) connClosed(c *transport.Conn) {
	for _, addr := range s.routes.ConnClosed(c) {
		s.log.Info("broker connection closed; routes removed", "broker", addr, "remote", c.RemoteAddr().String(), "cause", fmt.Sprint(c.Err()))
	}
}

func (s *Server) orderMessageEnable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.orderMessageEnable
}
