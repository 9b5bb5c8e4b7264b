package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/apogeemq/apogee/namesrv"
)

// namesrvFlags are the settings of an embedded or standalone NameServer.
type namesrvFlags struct {
	listen        string
	kvConfig      string
	scanInterval  time.Duration
	brokerTimeout time.Duration
	orderMessage  bool
}

func (f *namesrvFlags) options(logger *slog.Logger) namesrv.Options {
	return namesrv.Options{
		ScanInterval:       f.scanInterval,
		BrokerTimeout:      f.brokerTimeout,
		KVConfigPath:       f.kvConfig,
		OrderMessageEnable: f.orderMessage,
		Logger:             logger,
	}
}

func newNamesrvCommand(g *globalFlags) *cobra.Command {
	var f namesrvFlags
	cmd := &cobra.Command{
		Use:   "namesrv",
		Short: "Run a NameServer: the route registry brokers register with and clients ask for routes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNamesrv(cmd.Context(), g, &f, nil)
		},
	}
	f.addFlags(cmd, "listen", ":9876")
	return cmd
}

// runNamesrv runs a NameServer until ctx ends; started, if set, is told the address it serves.
func runNamesrv(ctx context.Context, g *globalFlags, f *namesrvFlags, started func(*slog.Logger, string)) error {
	logger, err := g.logger()
	if err != nil {
		return err
	}
	srv, ln, err := startNamesrv(f, logger)
	if err != nil {
		return err
	}
	if started != nil {
		started(logger, ln.Addr().String())
	}
	return serveUntilDone(ctx, logger, func() error { return srv.Serve(ln) }, srv.Shutdown)
}

func (f *namesrvFlags) addFlags(cmd *cobra.Command, listenFlag, listenDefault string) {
	cmd.Flags().StringVar(&f.listen, listenFlag, listenDefault, "address the NameServer listens on (HOST:PORT)")
	cmd.Flags().StringVar(&f.kvConfig, "kv-config", "", "file that keeps the KV configuration across restarts (default: memory only)")
	cmd.Flags().DurationVar(&f.scanInterval, "scan-interval", 10*time.Second, "how often brokers are checked for silence")
	cmd.Flags().DurationVar(&f.brokerTimeout, "broker-timeout", 120*time.Second, "silence after which a broker is dropped with its routes")
	cmd.Flags().BoolVar(&f.orderMessage, "order-message-enable", false, "attach ORDER_TOPIC_CONFIG entries to routes as orderTopicConf")
}

// startNamesrv builds a NameServer and its listener and logs the address it serves.
func startNamesrv(f *namesrvFlags, logger *slog.Logger) (*namesrv.Server, net.Listener, error) {
	srv, err := namesrv.New(f.options(logger))
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		srv.Shutdown(context.Background())
		return nil, nil, fmt.Errorf("namesrv: %w", err)
	}
	logger.Info("namesrv serving", "addr", ln.Addr().String())
	return srv, ln, nil
}

// shutdownGrace bounds how long a stopping server waits for requests in flight.
const shutdownGrace = 10 * time.Second

// serveUntilDone runs serve until it fails or ctx ends (SIGINT/SIGTERM), then shuts down.
func serveUntilDone(ctx context.Context, logger *slog.Logger, serve func() error, stop func(context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if err := shutdown(logger, stop); err != nil {
		logger.Warn("shutdown did not finish cleanly", "err", err)
	}
	return <-errc
}
