package namesrv

import (
	"context"
	"strconv"

	"github.com/apogeemq/apogee/internal/props"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// handleGetConfig answers GET_NAMESRV_CONFIG with the configuration as properties text.
func (s *Server) handleGetConfig(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	config := map[string]string{
		"orderMessageEnable":          strconv.FormatBool(s.orderMessageEnable()),
		"scanNotActiveBrokerInterval": strconv.FormatInt(s.opts.ScanInterval.Milliseconds(), 10),
		"brokerChannelExpiredTime":    strconv.FormatInt(s.opts.BrokerTimeout.Milliseconds(), 10),
		"kvConfigPath":                s.opts.KVConfigPath,
	}
	resp := success()
	resp.Body = []byte(props.Format(config))
	return resp
}

// handleUpdateConfig applies UPDATE_NAMESRV_CONFIG. Only settings that are safe to change remotely
// are accepted; paths in particular never are (a remote write of kvConfigPath is how Java NameServers
// were made to write arbitrary files, CVE-2023-37582).
func (s *Server) handleUpdateConfig(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	updates, err := props.Parse(string(req.Body))
	if err != nil {
		return remoting.Errorf(code.SystemError, "UPDATE_NAMESRV_CONFIG: %v", err)
	}
	var order *bool
	for k, v := range updates {
		switch k {
		case "orderMessageEnable":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return remoting.Errorf(code.SystemError, "UPDATE_NAMESRV_CONFIG: orderMessageEnable=%q is not true or false", v)
			}
			order = &b
		default:
			return remoting.Errorf(code.NoPermission, "UPDATE_NAMESRV_CONFIG: %q cannot be changed at run time; set it at start", k)
		}
	}
	if order != nil {
		s.mu.Lock()
		s.mu.orderMessageEnable = *order
		s.mu.Unlock()
		s.log.Info("config updated", "orderMessageEnable", *order)
	}
	return success()
}
