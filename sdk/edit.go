package sdk

import (
	"strconv"
)

// Editor rewrites the top-level members of a JSON object: it sets, replaces
// and deletes members and copies the others as they are, without decoding
// the document. It reuses its buffers, so a map step that keeps one Editor
// allocates nothing per event once they have grown.
//
//	var ed sdk.Editor
//	doc, ok := ed.Reset().SetString("region", r).SetInt("amount_cents", c).Apply(e.Data())
type Editor struct {
	edits []edit
	vals  []byte // encoded values of the edits
	out   []byte
}

type edit struct {
	key        string
	start, end int // value in vals
	del, used  bool
}

// Reset forgets the edits, keeping the buffers.
func (ed *Editor) Reset() *Editor {
	clear(ed.edits)
	ed.edits = ed.edits[:0]
	ed.vals = ed.vals[:0]
	return ed
}

func (ed *Editor) add(key string, start int, del bool) *Editor {
	ed.edits = append(ed.edits, edit{key: key, start: start, end: len(ed.vals), del: del})
	return ed
}

// SetRaw sets key to a value given as JSON (which must be valid JSON).
func (ed *Editor) SetRaw(key string, raw []byte) *Editor {
	s := len(ed.vals)
	ed.vals = append(ed.vals, raw...)
	return ed.add(key, s, false)
}

// SetString sets key to a string.
func (ed *Editor) SetString(key, v string) *Editor {
	s := len(ed.vals)
	ed.vals = AppendString(ed.vals, v)
	return ed.add(key, s, false)
}

// SetInt sets key to an integer.
func (ed *Editor) SetInt(key string, v int64) *Editor {
	s := len(ed.vals)
	ed.vals = strconv.AppendInt(ed.vals, v, 10)
	return ed.add(key, s, false)
}

// SetFloat sets key to a number, in the shortest form that reads back the
// same. NaN and infinities, which JSON cannot spell, become null.
func (ed *Editor) SetFloat(key string, v float64) *Editor {
	s := len(ed.vals)
	if v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308 {
		ed.vals = append(ed.vals, "null"...)
	} else {
		ed.vals = strconv.AppendFloat(ed.vals, v, 'g', -1, 64)
	}
	return ed.add(key, s, false)
}

// SetBool sets key to true or false.
func (ed *Editor) SetBool(key string, v bool) *Editor {
	s := len(ed.vals)
	ed.vals = strconv.AppendBool(ed.vals, v)
	return ed.add(key, s, false)
}

// Delete removes key.
func (ed *Editor) Delete(key string) *Editor { return ed.add(key, len(ed.vals), true) }

// Apply returns doc, a JSON object, with the edits applied: members that
// are set keep their place, new ones come last, in the order they were set.
// The result is valid until the next Apply; ok is false when doc is not an
// object.
func (ed *Editor) Apply(doc []byte) (out []byte, ok bool) {
	for i := range ed.edits {
		ed.edits[i].used = false
	}
	out = append(ed.out[:0], '{')
	first := true
	ok = Members(doc, func(k, v []byte) bool {
		for i := range ed.edits {
			e := &ed.edits[i]
			if !e.used && keyEquals(k, e.key) {
				e.used = true
				if e.del {
					return true
				}
				v = ed.vals[e.start:e.end]
				break
			}
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, v...)
		return true
	})
	if !ok {
		ed.out = out
		return nil, false
	}
	for i := range ed.edits {
		e := &ed.edits[i]
		if e.used || e.del {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = AppendString(out, e.key)
		out = append(out, ':')
		out = append(out, ed.vals[e.start:e.end]...)
	}
	out = append(out, '}')
	ed.out = out
	return out, true
}
