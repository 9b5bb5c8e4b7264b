package namesrv

import (
	"context"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

func (s *Server) handlePutKV(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	ns, key, value := ext.String("namespace"), ext.String("key"), ext.String("value")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	if err := s.kv.Put(ns, key, value); err != nil {
		return remoting.Errorf(code.SystemError, "PUT_KV_CONFIG: %v", err)
	}
	return success()
}

func (s *Server) handleGetKV(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	ns, key := ext.String("namespace"), ext.String("key")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	value, ok := s.kv.Get(ns, key)
	if !ok {
		return remoting.Errorf(code.QueryNotFound, "No config item, Namespace: %s Key: %s", ns, key)
	}
	resp := success()
	resp.SetExt("value", value)
	return resp
}

func (s *Server) handleDeleteKV(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	ns, key := ext.String("namespace"), ext.String("key")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	if err := s.kv.Delete(ns, key); err != nil {
		return remoting.Errorf(code.SystemError, "DELETE_KV_CONFIG: %v", err)
	}
	return success()
}

func (s *Server) handleGetKVList(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	ext := remoting.ReadExt(req)
	ns := ext.String("namespace")
	if err := ext.Err(); err != nil {
		return badHeader(req, err)
	}
	table := s.kv.Namespace(ns)
	if table == nil {
		return remoting.Errorf(code.QueryNotFound, "No config item, Namespace: %s", ns)
	}
	resp := success()
	resp.Body = body.Marshal(body.KVTable{Table: table})
	return resp
}
