// Package body holds the JSON bodies of the remoting protocol that more than one role reads or writes:
// topic routes, broker registration, cluster info, topic configs and the small list and table bodies.
//
// RocketMQ's Java side writes bodies with fastjson, whose output is not always JSON: maps with
// numeric keys come out unquoted ({0:"10.0.0.1:10911"}). Encoders here write what the official
// clients parse (see each function), and decoders accept both forms.
package body
