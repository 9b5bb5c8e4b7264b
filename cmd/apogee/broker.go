package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/apogeemq/apogee/broker"
)

// brokerFlags are the broker settings a command line can override; everything else comes from the
// broker.conf given with -c, in RocketMQ's key names.
type brokerFlags struct {
	config     string
	listen     string
	namesrv    string
	dataDir    string
	brokerName string
	cluster    string
	brokerIP   string
	flush      string
}

func (f *brokerFlags) addFlags(cmd *cobra.Command, listenFlag string) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "", "broker.conf file (RocketMQ's key=value format)")
	cmd.Flags().StringVar(&f.listen, listenFlag, "", "address the broker listens on (HOST:PORT; default :10911, or listenPort from -c)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "data directory (storePathRootDir; default ./data)")
	cmd.Flags().StringVar(&f.brokerName, "broker-name", "", "broker name (brokerName; default broker-a)")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "cluster name (brokerClusterName; default DefaultCluster)")
	cmd.Flags().StringVar(&f.brokerIP, "broker-ip", "", "IPv4 address announced to clients (brokerIP1)")
	cmd.Flags().StringVar(&f.flush, "flush", "", "ASYNC_FLUSH or SYNC_FLUSH (flushDiskType)")
}

// options builds broker options: defaults, then the config file, then the flags that were set.
// setup is what every command that runs a broker does first: the logger, the collector setting and
// the broker options from the flags.
func (f *brokerFlags) setup(cmd *cobra.Command, g *globalFlags) (*slog.Logger, broker.Options, error) {
	logger, err := g.logger()
	if err != nil {
		return nil, broker.Options{}, err
	}
	tuneGC()
	o, err := f.options(cmd, logger)
	return logger, o, err
}

func (f *brokerFlags) options(cmd *cobra.Command, logger *slog.Logger) (broker.Options, error) {
	var o broker.Options
	if f.config != "" {
		text, err := os.ReadFile(f.config)
		if err != nil {
			return o, err
		}
		unknown, err := o.Apply(string(text))
		if err != nil {
			return o, err
		}
		for _, k := range unknown {
			logger.Warn("broker config: unknown key ignored", "key", k, "file", f.config)
		}
	}
	overrides := map[string]string{}
	set := func(flag, key, value string) {
		if cmd.Flags().Changed(flag) {
			overrides[key] = value
		}
	}
	set("namesrv", "namesrvAddr", f.namesrv)
	set("data-dir", "storePathRootDir", f.dataDir)
	set("broker-name", "brokerName", f.brokerName)
	set("cluster", "brokerClusterName", f.cluster)
	set("broker-ip", "brokerIP1", f.brokerIP)
	set("flush", "flushDiskType", f.flush)
	if _, err := o.ApplyMap(overrides); err != nil {
		return o, err
	}
	if f.listen != "" {
		o.ListenAddr = f.listen
	}
	o.Logger = logger
	return o, nil
}

// startBroker opens a broker listening where its options say.
func startBroker(o broker.Options) (*broker.Broker, error) {
	listen := o.ListenAddr
	if listen == "" {
		listen = ":10911"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b, err := broker.Open(o, ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return b, nil
}

func newBrokerCommand(g *globalFlags) *cobra.Command {
	var f brokerFlags
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a broker: stores messages and serves producers and consumers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, o, err := f.setup(cmd, g)
			if err != nil {
				return err
			}
			b, err := startBroker(o)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			return shutdown(logger, b.Shutdown)
		},
	}
	f.addFlags(cmd, "listen")
	cmd.Flags().StringVarP(&f.namesrv, "namesrv", "n", "", "NameServer addresses, separated by ';' (namesrvAddr)")
	return cmd
}

// shutdown stops a server with a bounded grace period.
func shutdown(logger *slog.Logger, stop func(context.Context) error) error {
	logger.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := stop(ctx); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}
