package client

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/apogeemq/apogee/client/clienttest"
)

// The integration tests run against `apogee dev` (a NameServer and a broker in one process), built by
// TestMain from this module and started once, for the tests that need it.

var (
	apogeeBin string // built by TestMain; "" in -short mode

	devOnce sync.Once
	dev     *devProcess
	devErr  error
)

// devProcess is the shared `apogee dev`.
type devProcess struct {
	*clienttest.Dev
	ns string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childConsumer(spec)) // a child process of TestDevConsumerKill9
	}
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		if dir, err = os.MkdirTemp("", "apogee-client-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if apogeeBin, err = clienttest.Build("..", dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dev != nil {
		if err := dev.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping apogee dev:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// devCluster returns the shared `apogee dev`, starting it on first use; tests are skipped in -short
// mode. Transactions are checked back within about a second.
func devCluster(t *testing.T) *devProcess {
	t.Helper()
	if apogeeBin == "" {
		t.Skip("integration test: needs the apogee binary (not built in -short mode)")
	}
	devOnce.Do(func() {
		var d *clienttest.Dev
		if d, devErr = clienttest.StartDev(apogeeBin, "transactionCheckInterval=300", "transactionTimeOut=500"); devErr == nil {
			dev = &devProcess{Dev: d, ns: d.NameServer}
		}
	})
	if devErr != nil {
		t.Fatal(devErr)
	}
	return dev
}
