package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newDevCommand(g *globalFlags) *cobra.Command {
	var nf namesrvFlags
	var bf brokerFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single-node cluster in one process: a NameServer and a master broker, data in ./data",
		Long: `Run a single-node cluster in one process: a NameServer and one master broker
(cluster DefaultCluster, broker-a, topic auto-creation on), data in ./data.
-c applies the same broker.conf keys as 'apogee broker'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, o, err := bf.setup(cmd, g)
			if err != nil {
				return err
			}
			if bf.listen == "" && o.ListenAddr == "" {
				o.ListenAddr = "127.0.0.1:10911"
			}
			o.EnsureDefaults()
			ns, ln, err := startNamesrv(&nf, logger)
			if err != nil {
				return err
			}
			served := make(chan error, 1)
			go func() { served <- ns.Serve(ln) }()
			o.NamesrvAddr = []string{ln.Addr().String()}
			b, err := startBroker(o)
			if err != nil {
				ns.Shutdown(context.Background())
				return err
			}
			fmt.Fprintf(os.Stderr, "\nApogee dev cluster is up.\n  NameServer: %s   (clients: WithNameServer([]string{%q}))\n  Broker:     %s   (%s, data in %s)\n\n",
				ln.Addr(), ln.Addr().String(), b.Addr(), o.BrokerName, dataDir(o.StorePathRootDir))
			select {
			case <-cmd.Context().Done():
			case err := <-served:
				b.Shutdown(context.Background())
				return err
			}
			return errors.Join(shutdown(logger, b.Shutdown), shutdown(logger, ns.Shutdown), <-served)
		},
	}
	nf.addFlags(cmd, "namesrv-listen", "127.0.0.1:9876")
	bf.addFlags(cmd, "broker-listen")
	return cmd
}

func dataDir(d string) string {
	if d == "" {
		return "./data"
	}
	return d
}
