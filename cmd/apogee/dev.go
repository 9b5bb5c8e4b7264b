package main

import (
	"log/slog"

	"github.com/spf13/cobra"
)

func newDevCommand(g *globalFlags) *cobra.Command {
	var f namesrvFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a single-node cluster in one process: a NameServer and a master broker, data in ./data",
		Long: `Run a single-node cluster in one process: a NameServer and one master broker
(cluster DefaultCluster, broker-a, topic auto-creation on), data in ./data.

The broker is not built yet: for now dev runs the NameServer alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runNamesrv(cmd.Context(), g, &f, func(logger *slog.Logger, addr string) {
				logger.Warn("dev: the broker is not implemented yet; running the NameServer alone", "namesrv", addr)
			})
		},
	}
	f.addFlags(cmd, "namesrv-listen", "127.0.0.1:9876")
	return cmd
}
