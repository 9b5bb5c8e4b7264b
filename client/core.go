package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// MessageQueue names one queue of a topic on one broker group.
type MessageQueue = body.MessageQueue

// instanceCounter tells apart the clients of one process in their default client ids. It is the
// package's only variable, and only ever incremented.
var instanceCounter atomic.Int64

// core is what every client is built on: the connections, the routes, the client id and the
// goroutines it owns. Close stops them all.
type core struct {
	cfg      commonCfg
	tc       *transport.Client
	clientID string
	localIP  netip.Addr
	routes   *routeTable

	ctx       context.Context // canceled by close; the parent of every background call
	cancel    context.CancelFunc
	done      <-chan struct{} // ctx.Done()
	closeOnce sync.Once
	wg        sync.WaitGroup // every goroutine started with spawn
}

func newCore(cfg commonCfg, handler transport.Handler) *core {
	c := &core{cfg: cfg, localIP: localIPv4()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.done = c.ctx.Done()
	if handler == nil {
		handler = transport.NewMux()
	}
	c.tc = transport.NewClient(transport.ClientOptions{Handler: handler, DialTimeout: cfg.dialTimeout, Logger: cfg.logger})
	inst := cfg.instanceName
	if inst == "" {
		inst = strconv.Itoa(os.Getpid()) + "#" + strconv.FormatInt(instanceCounter.Add(1), 10)
	}
	c.clientID = c.localIP.String() + "@" + inst
	c.routes = newRouteTable(c)
	return c
}

// spawn runs fn on a goroutine that close waits for.
func (c *core) spawn(fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

// every runs fn every d until close; fn gets a context canceled by close.
func (c *core) every(d time.Duration, fn func(ctx context.Context)) {
	c.spawn(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				fn(c.ctx)
			}
		}
	})
}

func (c *core) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close stops the goroutines, then the connections. It is safe to call more than once.
func (c *core) close() {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.tc.Close()
	})
}

// invoke sends req to addr and waits for the answer, bounded by the request timeout and by ctx.
func (c *core) invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	return c.invokeTimeout(ctx, addr, req, c.cfg.requestTimeout)
}

// invokeTimeout is invoke with a timeout of the caller's (none if not positive).
func (c *core) invokeTimeout(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	if c.closed() {
		return nil, ErrClosed
	}
	resp, err := c.tc.InvokeTimeout(ctx, addr, req, timeout)
	if err != nil {
		return nil, transportErr(req.RequestCode(), addr, err)
	}
	return resp, nil
}

// invokeAsync sends req to addr and calls cb with the answer or the failure, on a goroutine of the
// transport's pool, once timeout (if positive) or ctx ends the wait. A failure reaches cb as the
// transport reported it (map it with transportErr); cb is not wrapped, as that would cost an
// allocation per send. If invokeAsync returns an error, cb is not called.
func (c *core) invokeAsync(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, cb func(*remoting.Command, error)) error {
	if c.closed() {
		return ErrClosed
	}
	if err := c.tc.InvokeAsync(ctx, addr, req, timeout, cb); err != nil {
		return transportErr(req.RequestCode(), addr, err)
	}
	return nil
}

// transportErr is how the client reports a transport error of a request with code c to addr.
func transportErr(c code.Request, addr string, err error) error {
	if errors.Is(err, transport.ErrClientClosed) {
		return ErrClosed
	}
	return fmt.Errorf("client: %s to %s: %w", c, addr, err)
}

// call is invoke that turns an answer other than SUCCESS into a *ResponseError.
func (c *core) call(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	resp, err := c.invoke(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	if err := responseErr(req.RequestCode(), addr, resp.ResponseCode(), resp.Remark); err != nil {
		return nil, err
	}
	return resp, nil
}

// callNameServer sends req to the NameServers in turn until one answers SUCCESS; the last failure is
// returned. A ResponseError ends the loop, since every NameServer holds the same data.
func (c *core) callNameServer(ctx context.Context, req *remoting.Command) (*remoting.Command, error) {
	if len(c.cfg.nameServers) == 0 {
		return nil, ErrNoNameServer
	}
	var last error
	for _, addr := range c.cfg.nameServers {
		resp, err := c.call(ctx, addr, req)
		if err == nil {
			return resp, nil
		}
		last = err
		var re *ResponseError
		if errors.As(err, &re) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// heartbeat announces hb to every master broker the routes know (and to the replicas too when
// allReplicas, as consumers do).
func (c *core) heartbeat(ctx context.Context, hb *body.HeartbeatData, allReplicas bool) {
	data := body.Marshal(hb)
	for _, addr := range c.routes.brokerAddrs(allReplicas) {
		if _, err := c.call(ctx, addr, remoting.NewRequest(code.HeartBeat, nil, data)); err != nil {
			c.cfg.logger.Warn("heartbeat failed", "broker", addr, "err", err)
		}
	}
}

// localIPv4 returns the first non-loopback IPv4 address of the host, or 127.0.0.1.
func localIPv4() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok {
					ip = ip.Unmap()
					if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
						return ip
					}
				}
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
