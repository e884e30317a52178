// Package httpapi serves an [engine.Engine] over HTTP: channels are
// created, listed, inspected and deleted; events are published one at a
// time or in bulk (JSON or newline-delimited JSON) and read back from a
// channel's history; clients subscribe by Server-Sent Events or by
// WebSocket, with a filter, resuming after the last event they saw
// (Last-Event-ID), and acknowledge what they processed on durable
// subscriptions of persistent channels. Health, readiness and statistics
// endpoints and the OpenAPI document ([OpenAPI]) complete it.
//
// Requests are authenticated by bearer tokens or API keys ([Token]), each
// granted publish, subscribe or admin on channel name patterns ([Grant]).
// Every error is a JSON body with a stable code ([Error]); bodies, batch
// sizes and request times are bounded ([Config]); and a subscriber that
// cannot keep up is disconnected (in-memory channels) or left behind in
// the stream (persistent channels), never making publishers or other
// subscribers wait.
//
// [Client] is the Go client of the same API.
package httpapi
