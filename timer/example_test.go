package timer_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apogeemq/apogee/timer"
)

// The broker stores a timer message in its system topic, then adds a timer
// that names it by commit-log offset and size; Run re-appends each due
// message to its real topic and acknowledges the batch.
func Example() {
	dir, _ := os.MkdirTemp("", "timer")
	defer os.RemoveAll(dir)
	w, err := timer.Open(dir, &timer.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	const commitLogOffset, size = 4096, 312
	if err := w.Add(ctx, time.Now().Add(50*time.Millisecond), commitLogOffset, size); err != nil {
		panic(err)
	}
	w.Run(ctx, func(batch []timer.Entry) error {
		for _, e := range batch {
			fmt.Println("re-append the message at", e.Ref, "of", e.Size, "bytes")
		}
		cancel() // a broker stops Run only when it shuts down
		return nil
	})
	fmt.Println("pending:", w.Stats().Pending)
	w.Close()
	// Output:
	// re-append the message at 4096 of 312 bytes
	// pending: 0
}
