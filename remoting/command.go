package remoting

import (
	"strconv"

	"github.com/apogeemq/apogee/remoting/code"
)

// SerializeType is the header form of a frame (the high byte of the second frame word).
type SerializeType uint8

// Header forms. Part of the wire format; do not change.
const (
	JSON     SerializeType = 0 // UTF-8 JSON object
	RocketMQ SerializeType = 1 // RocketMQ's compact binary form
)

func (s SerializeType) String() string {
	switch s {
	case JSON:
		return "JSON"
	case RocketMQ:
		return "ROCKETMQ"
	}
	return "SerializeType(" + strconv.Itoa(int(s)) + ")"
}

// Flag bits. Part of the wire format; do not change.
const (
	FlagResponse int32 = 1 << 0 // set on responses; clear on requests
	FlagOneway   int32 = 1 << 1 // the request expects no response
)

// Language is the sender's implementation language as RocketMQ's LanguageCode enum.
type Language uint8

// Languages in RocketMQ's enum order (the binary header carries the ordinal, JSON the name).
const (
	LangJava Language = iota
	LangCPP
	LangDotNet
	LangPython
	LangDelphi
	LangErlang
	LangRuby
	LangOther
	LangHTTP
	LangGo
	LangPHP
	LangOMS
	LangRust
)

var languageNames = [...]string{"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST"}

func (l Language) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return "OTHER"
}

// parseLanguage maps an enum name to a Language; unknown names are LangOther.
func parseLanguage(s string) Language {
	for i, name := range languageNames {
		if name == s {
			return Language(i)
		}
	}
	return LangOther
}

// Version is the RocketMQ MQVersion ordinal Apogee announces: V4_9_8. Clients only compare it against
// old thresholds (PROTOCOL.md §1.6), and it must fit in int16.
const Version int16 = 409

// Command is one remoting request or response: a header and an optional body.
//
// Ext fields are strings on the wire whatever the Java type behind them; use the typed accessors to read
// them. A decoded Command's Body aliases the frame it was decoded from.
type Command struct {
	Code      int16
	Language  Language
	Version   int16
	Opaque    int32
	Flag      int32
	Remark    string
	ExtFields Fields
	Body      []byte

	// SerializeType is the header form the command was decoded from and is encoded with.
	// Servers answer in the form of the request.
	SerializeType SerializeType

	// Release, if set, is called by the transport once it has encoded the command as an answer and
	// keeps no reference to its header: a handler may hand out pooled answers and take them back
	// here. A Body longer than a small one may still be queued for writing, so Release must not
	// reuse its memory. A decoded command has none.
	Release func()

	// scratch holds the header strings an aliased decode had to unescape (DecodeFrameAliased),
	// reused by the next one.
	scratch []byte
}

// NewRequest returns a request with the given ext fields (which it keeps, not copies) and body.
func NewRequest(c code.Request, ext Fields, body []byte) *Command {
	return &Command{Code: int16(c), Language: LangGo, Version: Version, ExtFields: ext, Body: body}
}

// NewResponse returns a response with the given code and remark. The transport fills in opaque, flag
// and serialize type from the request it answers.
func NewResponse(c code.Response, remark string) *Command {
	return &Command{Code: int16(c), Language: LangJava, Version: Version, Flag: FlagResponse, Remark: remark}
}

// Errorf is NewResponse with a formatted remark, for failures.
func Errorf(c code.Response, format string, args ...any) *Command {
	return NewResponse(c, sprintf(format, args...))
}

// IsResponse reports whether the response flag is set.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether the sender expects no response.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// RequestCode returns Code as a request code.
func (c *Command) RequestCode() code.Request { return code.Request(c.Code) }

// ResponseCode returns Code as a response code.
func (c *Command) ResponseCode() code.Response { return code.Response(c.Code) }

// SetExt sets one ext field.
func (c *Command) SetExt(key, value string) { c.ExtFields.Set(key, value) }

// Ext returns an ext field, or "" when absent.
func (c *Command) Ext(key string) string { return c.ExtFields.Value(key) }

func (c *Command) String() string {
	kind := "request"
	name := c.RequestCode().String()
	if c.IsResponse() {
		kind, name = "response", c.ResponseCode().String()
	}
	return kind + " " + name + " opaque=" + strconv.Itoa(int(c.Opaque))
}
