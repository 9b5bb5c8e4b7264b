// Command apogee is Apogee's single binary: a RocketMQ-compatible NameServer, broker and tools, one
// subcommand per role. See README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "apogee:", err)
		os.Exit(1)
	}
}

// globalFlags are shared by every subcommand.
type globalFlags struct {
	logLevel  string
	logFormat string
	pprof     string
}

func newRootCommand() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "apogee",
		Short:         "Apogee: a RocketMQ-compatible message queue in one binary",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&g.pprof, "pprof", "", "serve Go profiling endpoints (/debug/pprof/) on HOST:PORT (off by default)")
	root.AddCommand(newNamesrvCommand(&g), newBrokerCommand(&g), newDevCommand(&g), newBenchCommand(&g))
	return root
}

// logger builds the process logger from the global flags.
func (g *globalFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch strings.ToLower(g.logFormat) {
	case "text":
		logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	// Every server command builds its logger first, so this is where --pprof starts.
	if _, err := startPprof(g.pprof, logger); err != nil {
		return nil, err
	}
	return logger, nil
}
