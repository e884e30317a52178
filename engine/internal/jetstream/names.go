package jetstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Stream and subject naming.
//
// An engine channel name is any printable, white-space-free UTF-8 string of
// up to 255 bytes. JetStream stream and consumer names may not contain white
// space, '.', '*', '>', '/' or '\' (they become directory names in the file
// store) and are at most 255 bytes; a subject token may not contain '.', and
// '*' or '>' as a whole token are wildcards. So names are encoded:
//
//   - 'A'-'Z', 'a'-'z', '0'-'9' and '-' stay as they are;
//   - '_' becomes "__";
//   - every other byte becomes '_' and two upper-case hex digits ("." is
//     "_2E").
//
// The encoding is reversible ([ChannelName]) and a valid stream name, consumer
// name and subject token. When the prefixed result would exceed 255 bytes it
// is cut and ends in "_Z" and 16 hex digits of the name's SHA-256 (a marker
// that no encoded byte can produce); such a name does not decode, and the
// channel name is kept in the stream's metadata instead.

const (
	// StreamPrefix starts the name of every stream that holds a channel.
	StreamPrefix = "AEGIS_"
	// SubjectPrefix starts the subject of every channel's stream.
	SubjectPrefix = "aegis.ch."
	// maxNameLen is JetStream's limit for stream and consumer names.
	maxNameLen = 255
	// hashedSuffixLen is len("_Z") plus 16 hex digits.
	hashedSuffixLen = 2 + 16
	// metaChannel is the stream metadata key that records the channel name.
	metaChannel = "aegis_channel"
)

// encodeName encodes name as described above, without any prefix, so that
// the result plus prefixLen bytes fits in maxNameLen.
func encodeName(name string, prefixLen int) string {
	const hexdig = "0123456789ABCDEF"
	limit := maxNameLen - prefixLen
	var b strings.Builder
	b.Grow(len(name) + 8)
	cut := -1 // length of the longest whole-escape prefix that leaves room for the hash
	for i := 0; i < len(name); i++ {
		c := name[i]
		before := b.Len()
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			b.WriteByte('_')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&0xf])
		}
		if cut < 0 && b.Len() > limit-hashedSuffixLen {
			cut = before
		}
	}
	enc := b.String()
	if len(enc) <= limit {
		return enc
	}
	sum := sha256.Sum256([]byte(name))
	return enc[:cut] + "_Z" + hex.EncodeToString(sum[:8])
}

// decodeName reverses encodeName. It fails on a hashed or malformed name.
func decodeName(enc string) (string, error) {
	var b strings.Builder
	b.Grow(len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(enc) && enc[i+1] == '_' {
			b.WriteByte('_')
			i++
			continue
		}
		if i+2 >= len(enc) {
			return "", fmt.Errorf("name[%s]: truncated escape at byte %d", enc, i)
		}
		if enc[i+1] == 'Z' {
			return "", fmt.Errorf("name[%s]: a shortened name does not decode", enc)
		}
		v, err := hex.DecodeString(enc[i+1 : i+3])
		if err != nil || enc[i+1:i+3] != strings.ToUpper(enc[i+1:i+3]) {
			return "", fmt.Errorf("name[%s]: bad escape %q at byte %d", enc, enc[i:i+3], i)
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), nil
}

// StreamName is the name of the stream that holds channel.
func StreamName(channel string) string {
	return StreamPrefix + encodeName(channel, len(StreamPrefix))
}

// Subject is the subject that channel's events are published on.
func Subject(channel string) string {
	return SubjectPrefix + encodeName(channel, len(StreamPrefix))
}

// ConsumerName is the JetStream name of a durable consumer called name.
func ConsumerName(name string) string {
	return encodeName(name, 0)
}

// ChannelName decodes a stream name made by [StreamName]. It fails for
// streams that are not channels and for shortened names (whose channel name
// is in the stream's metadata; see [StreamInfo.Channel]).
func ChannelName(stream string) (string, error) {
	enc, ok := strings.CutPrefix(stream, StreamPrefix)
	if !ok {
		return "", fmt.Errorf("stream[%s]: not a channel stream (no %s prefix)", stream, StreamPrefix)
	}
	return decodeName(enc)
}
