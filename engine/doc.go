// Package engine is the core of aegis-host: the event model (events, their
// identifiers, types, data and filters) and the in-memory publish/subscribe
// engine that every source, step and sink plugs into.
//
// An [Event] is immutable once published: the engine hands the same event to
// every subscriber, so a subscriber that wants to change one works on a
// [Event.Clone].
//
// The [Engine] owns named channels. Publishing appends an event to a
// channel's history (bounded by its retention) and delivers it to every
// subscription whose filter matches; filtering happens before delivery, so a
// filtered-out event never wakes a subscriber. What happens when a subscriber
// falls behind is an explicit, per-channel [SlowSubscriberPolicy]; nothing is
// ever lost silently.
package engine
